"""The `pulumi` commands of the acceptance run (master stack and teardown), one process each.

The backend comes from `PULUMI_BACKEND_URL` (never `pulumi login`, which would change the person's
own login), secrets from a run-local passphrase (`PULUMI_CONFIG_PASSPHRASE`, so the run creates no
extra KMS key). Every command's output is appended to `<work>/logs/pulumi.log`; a failure raises
with the command and its last `error:` line.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from .aws import AcceptanceError


def last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "error:" in line.lower():
            return line[line.lower().index("error:"):]
    return lines[-1] if lines else "no output"


class PulumiCli:
    def __init__(self, project_dir: Path, log_file: Path, env: Mapping[str, str], executable: str = "pulumi",
                 timeout_seconds: float = 3600.0):
        self.project_dir = project_dir
        self.log_file = log_file
        self.env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true", **env}
        self.executable = executable
        self.timeout_seconds = timeout_seconds

    def run(self, *args: str, stack: Optional[str] = None) -> str:
        argv = [self.executable, *args, *(("--stack", stack) if stack else ()), "--non-interactive"]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(argv, cwd=self.project_dir, env=self.env, capture_output=True, text=True,
                                  timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            raise AcceptanceError(f"`{' '.join(argv[:3])}` did not finish in {self.timeout_seconds:.0f}s; see {self.log_file}") from None
        with self.log_file.open("a") as log:
            log.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n[exit {done.returncode}]\n")
        if done.returncode != 0:
            raise AcceptanceError(f"`pulumi {' '.join(args[:2])}` failed: {last_error_line(done.stderr + done.stdout)} "
                                  f"(full output in {self.log_file})")
        return done.stdout

    def init_stack(self, stack: str, secrets_provider: str = "passphrase") -> None:
        self.run("stack", "init", stack, "--secrets-provider", secrets_provider)

    def up(self, stack: str) -> None:
        self.run("up", "--yes", "--skip-preview", stack=stack)

    def outputs(self, stack: str) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json", stack=stack) or "{}")

    def export(self, stack: str) -> dict[str, Any]:
        """The state, secrets left encrypted (no `--show-secrets`)."""
        return json.loads(self.run("stack", "export", stack=stack))

    def destroy(self, stack: str) -> None:
        self.run("destroy", "--yes", "--skip-preview", stack=stack)

    def remove(self, stack: str) -> None:
        self.run("stack", "rm", "--yes", stack=stack)

    def stacks(self) -> list[str]:
        return [s["name"] for s in json.loads(self.run("stack", "ls", "--json") or "[]")]


def runner_argv(python: str, project_dir: Path, work_dir: Path, settings: Any, *extra: str) -> Sequence[str]:
    """`python -m runner apply …` as the acceptance run calls it (one account, the run's backend and files)."""
    return [
        python, "-m", "runner", "apply",
        "--project-dir", str(project_dir),
        "--master-config", str(project_dir / "Pulumi.master.yaml"),
        "--template", str(project_dir / "Pulumi.silo-template.yaml"),
        "--allow", settings.silo_account,
        "--backend-url", settings.backend_url,
        "--secrets-provider", "passphrase",
        "--report-to", str(work_dir / "reports"),
        "--log-dir", str(work_dir / "logs" / "runner"),
        "--region", settings.region,
        *extra,
    ]
