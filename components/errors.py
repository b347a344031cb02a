"""The project's one error hierarchy.

`DatalakeError` derives from `pulumi.RunError` so that when it escapes a Pulumi program the engine
prints only its message: a user who mistyped a config value sees what to fix, not a traceback.
"""

from __future__ import annotations

import pulumi


class DatalakeError(pulumi.RunError):
    """Base class of every error this project raises on purpose."""


class ConfigError(DatalakeError):
    """A stack's configuration is missing, malformed or inconsistent.

    `problems` holds one line per bad key, each naming the key, what was wrong and a right example.
    """

    def __init__(self, stack: str, problems: list[str]):
        self.stack = stack
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"Invalid configuration for stack '{stack}' ({len(self.problems)} problem"
            f"{'s' if len(self.problems) != 1 else ''}):\n{lines}"
        )
