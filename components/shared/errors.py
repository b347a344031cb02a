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


class RunnerError(DatalakeError):
    """The runner (`python -m runner`) cannot go on; the message says what to fix."""


class UsageError(RunnerError):
    """Bad invocation or runner configuration (the runner exits 2)."""


class DiscoveryError(RunnerError):
    """Organizations could not be read completely, so no plan can be trusted (nothing is retired)."""


class StackLockedError(RunnerError):
    """Another update holds the stack's lock (`ConcurrentUpdateError`); retry later, do not fail."""


class StackOperationError(RunnerError):
    """One stack operation failed; `log_line` is the line of its output that explains why."""

    def __init__(self, message: str, log_line: str = ""):
        self.log_line = log_line or message
        super().__init__(message)
