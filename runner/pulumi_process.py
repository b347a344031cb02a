"""How the runner drives the `pulumi` CLI so that parallel operations share nothing and none runs forever.

- `IsolatedWorkspace` never selects a stack: every command names its stack (`--stack`, or the
  positional name of `stack init`/`stack rm`), `stack init` gets `--no-select`, and `stack export`
  leaves secrets encrypted (the SDK's `export_stack` always adds `--show-secrets`).
- `private_pulumi_home` gives each operation its own `PULUMI_HOME` whose entries, except
  `workspaces/`, link to the shared one: `stack rm` rewrites the project's current-stack file
  (`workspaces/<project>-<hash>-workspace.json`) whatever flags it gets (pkg/cmd/pulumi/stack/stack_rm.go
  calls `state.SetCurrentStack(ws, "")`), and that file is read by every CLI process; the plugin
  cache (`plugins/`) and credentials stay shared, so providers are downloaded once.
- `DeadlineCommand` is the SDK's `PulumiCommand` with a per-thread deadline: a command still running
  at the deadline gets SIGINT (the CLI's graceful cancel, which releases the stack lock) and, after a
  grace period, SIGKILL for it and every process below it (language host, provider plugins).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult, OnOutput
from pulumi.automation.errors import create_command_error

from components.shared.errors import StackOperationError

WORKSPACES_DIR = "workspaces"
PLUGINS_DIR = "plugins"


class StackTimeoutError(StackOperationError):
    """A stack operation outlived its deadline; its CLI process was stopped."""


def shared_pulumi_home(env: Mapping[str, str]) -> Path:
    """The PULUMI_HOME every operation would otherwise share: `$PULUMI_HOME`, else `~/.pulumi`."""
    return Path(env.get("PULUMI_HOME") or os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")


@contextlib.contextmanager
def private_pulumi_home(shared: Path, parent: Optional[Path] = None) -> Iterator[Path]:
    """A fresh PULUMI_HOME linking every entry of `shared` except `workspaces/`; removed afterwards."""
    shared.mkdir(parents=True, exist_ok=True)
    # Created up front so that the first operation's plugin downloads land in the shared cache.
    (shared / PLUGINS_DIR).mkdir(exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="pulumi-home-", dir=parent))
    try:
        for entry in shared.iterdir():
            if entry.name != WORKSPACES_DIR:
                (private / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)  # unlinks the links, never what they point to


class IsolatedWorkspace(auto.LocalWorkspace):
    """A `LocalWorkspace` that never changes or relies on the project's current stack."""

    def _cli(self, args: list[str]) -> CommandResult:
        env = {**({"PULUMI_HOME": self.pulumi_home} if self.pulumi_home else {}), **self.env_vars}
        return self.pulumi_command.run(args, self.work_dir, env)

    def select_stack(self, stack_name: str) -> None:
        # `Stack.select` calls this; `pulumi stack select` would write the shared current-stack file.
        # Every later command passes `--stack`, and one naming a missing stack fails with
        # "no stack named ... found" (StackNotFoundError) by itself.
        return None

    def create_stack(self, stack_name: str) -> None:
        args = ["stack", "init", stack_name, "--no-select"]
        if self.secrets_provider:
            args.extend(["--secrets-provider", self.secrets_provider])
        self._cli(args)

    def export_stack(self, stack_name: str) -> auto.Deployment:
        # Without `--show-secrets`: secret values stay ciphertext under the stack's secrets provider
        # (the master key), so a stored export holds no plaintext secret.
        state = json.loads(self._cli(["stack", "export", "--stack", stack_name]).stdout)
        return auto.Deployment(version=state.get("version"), deployment=state.get("deployment"))


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux `/proc`; elsewhere none are found and only `pid` is signalled)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


class DeadlineCommand(auto.PulumiCommand):
    """`PulumiCommand` whose `run` stops a command that outlives the calling thread's deadline."""

    def __init__(self, *, kill_grace_seconds: float = 60.0):
        super().__init__()
        self.kill_grace_seconds = kill_grace_seconds
        self._local = threading.local()

    @contextlib.contextmanager
    def deadline(self, seconds: float, what: str) -> Iterator[None]:
        """Every command this thread runs inside the block must end within `seconds` in total."""
        self._local.deadline, self._local.seconds, self._local.what = time.monotonic() + seconds, seconds, what
        try:
            yield
        finally:
            self._local.deadline = None

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: Optional[OnOutput] = None,
        on_error: Optional[OnOutput] = None,
    ) -> CommandResult:
        # As the SDK's `PulumiCommand.run` (3.272.0), plus the deadline.
        separator = args.index("--") if "--" in args else len(args)
        if "--non-interactive" not in args[:separator]:
            args.insert(0, "--non-interactive")
        env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
        stdout_chunks: list[str] = []
        stderr_chunks: list[str] = []

        def consume(stream: Any, callback: Optional[OnOutput], chunks: list[str]) -> None:
            for line in iter(stream.readline, ""):
                if callback:
                    callback(line.rstrip())
                chunks.append(line.rstrip())
            stream.close()

        deadline: Optional[float] = getattr(self._local, "deadline", None)
        with subprocess.Popen(
            [self.command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env, encoding="utf-8"
        ) as process:
            readers = [
                threading.Thread(target=consume, args=(process.stdout, on_output, stdout_chunks), daemon=True),
                threading.Thread(target=consume, args=(process.stderr, on_error, stderr_chunks), daemon=True),
            ]
            for reader in readers:
                reader.start()
            stopped = self._wait(process, deadline)
            for reader in readers:
                reader.join(timeout=5)
        if stopped:
            seconds, what = self._local.seconds, self._local.what
            line = f"{what} timed out after {_duration(seconds)}; {stopped}"
            raise StackTimeoutError(line, line)
        result = CommandResult(stdout="\n".join(stdout_chunks), stderr="\n".join(stderr_chunks), code=process.returncode)
        if process.returncode != 0:
            raise create_command_error(result)
        return result

    def _wait(self, process: subprocess.Popen, deadline: Optional[float]) -> str:
        """Waits for the process; at the deadline stops it and says how ('' if it ended in time)."""
        try:
            process.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            return ""
        except subprocess.TimeoutExpired:
            pass
        tree = _descendants(process.pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=self.kill_grace_seconds)
            _signal(tree, signal.SIGKILL)  # whatever the cancelled CLI left behind
            return f"the pulumi process (pid {process.pid}) was interrupted and stopped"
        except subprocess.TimeoutExpired:
            tree = sorted(set(tree) | set(_descendants(process.pid)))
            process.kill()
            _signal(tree, signal.SIGKILL)
            process.wait()
            return (
                f"the pulumi process (pid {process.pid}) ignored the interrupt for {_duration(self.kill_grace_seconds)} "
                f"and was killed with {len(tree)} child process(es); the stack may keep a stale lock"
            )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
