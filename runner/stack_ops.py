"""The stack-operations interface, its Automation API implementation and a read-only file-backend lister.

The planner and the executor only see `StackOperations`; tests hand them a fake with latencies and
failures, production hands them `AutomationStackOperations`: a `LocalWorkspace` over the project
directory, so every operation runs in its own `pulumi` CLI and language-host process. Parallel
*inline* programs in one Python process share the SDK's global state and are unsafe (pulumi#6052).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, TextIO

import yaml

from components.shared.errors import StackLockedError, StackOperationError, UsageError

from .model import StackInfo, account_of_stack

log = logging.getLogger(__name__)

SILO_NAME_TAG = "datalake:silo-name"
ACCOUNT_ID_TAG = "datalake:account-id"
ACCOUNT_NAME_TAG = "datalake:account-name"
# Stack operations that change something; `same` and `read` do not.
SILO_NAME_READERS = 8
"""Stacks whose silo name `list_stacks` reads at once (one CLI call each)."""
CHANGING_OPS = ("create", "update", "delete", "replace", "create-replacement", "delete-replaced", "import")


class StackOperations(Protocol):
    """What the runner needs from a Pulumi backend. Stack names are short (`silo-<account-id>`)."""

    def list_stacks(self) -> list[StackInfo]:
        """Every stack of the project in the backend (silo stacks and others)."""

    def create_stack(self, stack: str, tags: Mapping[str, str]) -> None:
        """Creates the stack with these tags; an existing stack is kept (its tags are updated)."""

    def set_config(self, stack: str, config: Mapping[str, Any]) -> None:
        """Replaces the stack's config with `config` (full keys, structured values allowed)."""

    def up(self, stack: str, log: TextIO, *, targets: Sequence[str] = ()) -> int:
        """Deploys the stack (only the `targets` URNs when given); returns how many resources changed.

        Raises `StackLockedError` when locked."""

    def preview_drift(self, stack: str, log: TextIO) -> list[str]:
        """Refresh + preview without changing anything; returns `<op> <urn>` per differing resource."""

    def destroy(self, stack: str, log: TextIO) -> int:
        """Destroys the stack's resources (retained ones stay); returns how many were deleted."""

    def refresh(self, stack: str, log: TextIO, *, clear_pending_creates: bool = False) -> int:
        """Reads every resource of the state from the cloud (`pulumi refresh`), which closes pending
        updates, deletes and imports; `clear_pending_creates` also drops pending creates. Returns how many changed."""

    def export(self, stack: str) -> dict[str, Any]:
        """The stack's state (`pulumi stack export`)."""

    def remove(self, stack: str, *, force: bool) -> None:
        """Removes the stack from the backend; `force` removes it even if it still has resources."""

    def import_state(self, stack: str, deployment: Mapping[str, Any]) -> None:
        """Replaces the stack's state with `deployment` (`pulumi stack import`; the `export` format)."""

    def list_stack_names(self) -> list[str]:
        """Names of every stack of the project: one backend listing, nothing read per stack."""

    def silo_name(self, stack: str) -> Optional[str]:
        """The silo name a stack was created with (its tag, else its `siloName` output); one stack's read."""

    def versions(self) -> "Versions":
        """The Pulumi CLI version and the provider plugin versions `up` would run with."""


@dataclass(frozen=True)
class Versions:
    """What a deployment runs with besides the program: part of every stack's fingerprint."""

    cli: str
    plugins: dict[str, str]
    """Resource plugin name → version (`aws` → `7.51.1`)."""


def plugin_versions(listing: str) -> dict[str, str]:
    """`pulumi plugin ls --json` → resource plugin versions; several versions of one plugin are all kept."""
    found: dict[str, list[str]] = {}
    for plugin in json.loads(listing or "[]"):
        if plugin.get("kind") == "resource" and plugin.get("name") and plugin.get("version"):
            found.setdefault(plugin["name"], []).append(str(plugin["version"]))
    return {name: ",".join(sorted(set(versions))) for name, versions in found.items()}


def _error_line(text: str) -> str:
    """The most telling line of a CLI error output: the last `error: ...`, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        at = line.lower().find("error:")
        if at >= 0:
            return re.sub(r"""['"]?, code=-?\d+\)$""", "", line[at:]).strip()
    return lines[-1] if lines else "the pulumi CLI failed without output"


def _changed(counts: Optional[Mapping[str, int]]) -> int:
    return sum(count for op, count in (counts or {}).items() if op in CHANGING_OPS)


def write_stack_config(project_dir: Path, stack: str, config: Mapping[str, Any]) -> Path:
    """Writes `Pulumi.<stack>.yaml`, keeping its secrets-provider keys.

    Written directly rather than through `LocalWorkspace.save_stack_settings`: the SDK's
    `StackSettings` drops structured values (`datalake:storage: {...}`) when it reads a file back.
    """
    path = project_dir / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"
    current = yaml.safe_load(path.read_text()) if path.exists() else None
    settings = dict(current or {})
    settings["config"] = dict(config)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


@dataclass(frozen=True)
class OperationTimeouts:
    """How long one stack operation's CLI calls may run before the CLI is stopped and the operation fails."""

    update_seconds: float = 45 * 60
    """`up`, `destroy` and the drift check's refresh + preview (default 45 minutes)."""
    command_seconds: float = 10 * 60
    """Every other call: create, tags, outputs, export, remove, list (default 10 minutes)."""
    kill_grace_seconds: float = 60.0
    """After the timeout's SIGINT (the CLI cancels and releases the lock), how long before SIGKILL (default 60 s)."""


class AutomationStackOperations:
    """`StackOperations` over the real Automation API: one `LocalWorkspace` (and CLI process) per call.

    `backend_url` is `s3://bucket?region=...` in production, `file://<dir>` in tests; `org` qualifies
    stack names as DIY backends expect (`organization/<project>/<stack>`). `program` is only for the
    integration test, which runs an inline program sequentially.

    Operations run in parallel share no CLI state (`runner/pulumi_process.py`): no command selects a
    stack or relies on the current one, and each operation runs with its own `PULUMI_HOME` that
    shares the plugin cache of the real one but not its `workspaces/` (current-stack) files.
    `timeouts` bounds each operation: a CLI still running at its deadline is interrupted, then
    killed with its child processes, and the operation fails with `StackTimeoutError`.
    """

    def __init__(
        self,
        project_dir: Path,
        *,
        backend_url: Optional[str] = None,
        secrets_provider: Optional[str] = None,
        org: str = "organization",
        project: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        program: Optional[Callable[[], None]] = None,
        timeouts: OperationTimeouts = OperationTimeouts(),
        environment: Optional[str] = None,
    ):
        from pulumi import automation as auto

        if shutil.which("pulumi") is None:
            raise UsageError(
                "the pulumi CLI is not on PATH; install it (https://www.pulumi.com/docs/install/) "
                "or run `plan --stacks-from <file-backend-dir>` to plan without it"
            )
        from . import pulumi_process

        self._auto = auto
        self._cli = pulumi_process
        self.project_dir = project_dir
        self.environment = environment
        self.project = project or str(yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"])
        self.secrets_provider = secrets_provider
        self.org = org
        self.program = program
        self.env = {"PULUMI_SKIP_UPDATE_CHECK": "true", **(env or {})}
        # Each operation gets its own PULUMI_HOME; one given in `env` would override it.
        self.shared_home = pulumi_process.shared_pulumi_home(self.env)
        self.env.pop("PULUMI_HOME", None)
        if backend_url:
            self.env["PULUMI_BACKEND_URL"] = backend_url
        self.timeouts = timeouts
        self._command = pulumi_process.DeadlineCommand(kill_grace_seconds=timeouts.kill_grace_seconds)
        self._local = threading.local()

    def _qualified(self, stack: str) -> str:
        return f"{self.org}/{self.project}/{stack}" if self.org else stack

    def _workspace(self) -> Any:
        return self._cli.IsolatedWorkspace(
            work_dir=str(self.project_dir),
            pulumi_home=getattr(self._local, "home", None),
            program=self.program,
            env_vars=self.env,
            secrets_provider=self.secrets_provider,
            pulumi_command=self._command,
        )

    def _stack(self, stack: str) -> Any:
        # `Stack.select` on an IsolatedWorkspace runs no `pulumi stack select`; every command passes `--stack`.
        return self._auto.Stack.select(self._qualified(stack), self._workspace())

    def _run(self, what: str, stack: str, call: Callable[[], Any], *, update: bool = False) -> Any:
        """Runs one operation's CLI calls with a private PULUMI_HOME and a deadline, mapping the SDK's errors to the runner's."""
        errors = self._auto.errors
        seconds = self.timeouts.update_seconds if update else self.timeouts.command_seconds
        with self._cli.private_pulumi_home(self.shared_home) as home, self._command.deadline(seconds, what):
            self._local.home = str(home)
            try:
                return call()
            except self._cli.StackTimeoutError as exc:
                raise self._cli.StackTimeoutError(f"{stack}: {exc.log_line}", exc.log_line) from None
            except errors.ConcurrentUpdateError as exc:
                raise StackLockedError(f"{stack}: {what} found the stack locked by another update") from exc
            except errors.CommandError as exc:
                # The SDK's errors keep only `str(CommandResult(...))`, with the output's newlines escaped.
                line = _error_line(str(exc).replace("\\n", "\n"))
                raise StackOperationError(f"{stack}: {what} failed: {line}", line) from exc
            finally:
                self._local.home = None

    def list_stacks(self) -> list[StackInfo]:
        names = [summary.name.rsplit("/", 1)[-1] for summary in self._run("list", "*", lambda: self._workspace().list_stacks())]
        # Only this environment's silo stacks: another environment's are not even read.
        silo_stacks = [name for name in names if account_of_stack(name, self.environment)]
        # One CLI call per stack: read the silo names a few at a time.
        with ThreadPoolExecutor(max_workers=SILO_NAME_READERS, thread_name_prefix="stack-tags") as pool:
            silo_names = dict(zip(silo_stacks, pool.map(self._silo_name, silo_stacks)))
        return [StackInfo(name=name, silo_name=silo_names.get(name), environment=self.environment) for name in names]

    def _silo_name(self, stack: str) -> Optional[str]:
        """The silo name a stack was created with: its tag, else its `siloName` output.

        Never guessed from the account name when the stack knows it: a changed silo name would
        rename, and so replace, every bucket of the silo.
        """
        tags = self._run("list tags", stack, lambda: self._workspace().list_tags(self._qualified(stack)))
        if tags.get(SILO_NAME_TAG):
            return tags[SILO_NAME_TAG]
        outputs = self._run("outputs", stack, lambda: self._stack(stack).outputs())
        value = outputs.get("siloName")
        return str(value.value) if value is not None and value.value else None

    def create_stack(self, stack: str, tags: Mapping[str, str]) -> None:
        try:
            self._run("create", stack, lambda: self._auto.Stack.create(self._qualified(stack), self._workspace()))
        except StackOperationError as exc:
            if not isinstance(exc.__cause__, self._auto.errors.StackAlreadyExistsError):
                raise
            log.info("%s already exists; keeping it", stack)

        def tag() -> None:
            workspace = self._workspace()
            for key, value in tags.items():
                workspace.set_tag(self._qualified(stack), key, value)

        self._run("tag", stack, tag)

    def set_config(self, stack: str, config: Mapping[str, Any]) -> None:
        write_stack_config(self.project_dir, stack, config)

    def up(self, stack: str, log: TextIO, *, targets: Sequence[str] = ()) -> int:
        extra = {"target": list(targets)} if targets else {}
        result = self._run("up", stack, lambda: self._stack(stack).up(on_output=log.write, color="never", **extra), update=True)
        return _changed(result.summary.resource_changes)

    def preview_drift(self, stack: str, log: TextIO) -> list[str]:
        changes: list[str] = []

        def on_event(event: Any) -> None:
            pre = getattr(event, "resource_pre_event", None)
            if pre is not None and pre.metadata.op.value in CHANGING_OPS + ("refresh",):
                if pre.metadata.op.value != "refresh" or pre.metadata.detailed_diff:
                    changes.append(f"{pre.metadata.op.value} {pre.metadata.urn}")

        result = self._run(
            "drift preview",
            stack,
            lambda: self._stack(stack).preview(refresh=True, on_output=log.write, on_event=on_event, color="never"),
            update=True,
        )
        if not changes and _changed(result.change_summary):
            changes.append(f"{_changed(result.change_summary)} resource(s) would change (see the log)")
        return changes

    def destroy(self, stack: str, log: TextIO) -> int:
        result = self._run("destroy", stack, lambda: self._stack(stack).destroy(on_output=log.write, color="never"), update=True)
        return _changed(result.summary.resource_changes)

    def refresh(self, stack: str, log: TextIO, *, clear_pending_creates: bool = False) -> int:
        result = self._run(
            "refresh",
            stack,
            lambda: self._stack(stack).refresh(clear_pending_creates=clear_pending_creates or None, on_output=log.write, color="never"),
            update=True,
        )
        return _changed(result.summary.resource_changes)

    def export(self, stack: str) -> dict[str, Any]:
        deployment = self._run("export", stack, lambda: self._workspace().export_stack(self._qualified(stack)))
        return {"version": deployment.version, "deployment": deployment.deployment}

    def remove(self, stack: str, *, force: bool) -> None:
        self._run("remove", stack, lambda: self._workspace().remove_stack(self._qualified(stack), force=force))

    def import_state(self, stack: str, deployment: Mapping[str, Any]) -> None:
        name = self._qualified(stack)
        try:  # a retired stack was removed from the backend; `stack import` needs it to exist
            self._run("create", stack, lambda: self._workspace().create_stack(name))
        except StackOperationError as exc:
            if not isinstance(exc.__cause__, self._auto.errors.StackAlreadyExistsError):
                raise
        state = self._auto.Deployment(version=deployment.get("version"), deployment=deployment.get("deployment"))
        self._run("import", stack, lambda: self._workspace().import_stack(name, state))

    def list_stack_names(self) -> list[str]:
        return [summary.name.rsplit("/", 1)[-1] for summary in self._run("list", "*", self._workspace().list_stacks)]

    def silo_name(self, stack: str) -> Optional[str]:
        return self._silo_name(stack)

    def versions(self) -> Versions:
        """`pulumi version` (read once by the SDK) and `pulumi plugin ls --json` in the project directory."""
        listing = self._run(
            "plugin ls", "*", lambda: self._command.run(["plugin", "ls", "--json"], str(self.project_dir), self.env)
        )
        return Versions(cli=str(self._command.version), plugins=plugin_versions(listing.stdout))


class FileBackendStacks:
    """Reads the stacks of a local file backend (`file://<dir>`) without the CLI: enough to plan.

    Reads `<dir>/.pulumi/stacks/<project>/*.json[.gz]` (project-scoped DIY layout) and takes each
    silo stack's `siloName` output from the checkpoint. Any other operation raises `UsageError`:
    changing stacks needs the CLI.
    """

    def __init__(self, backend_dir: Path, project: str = "datalake"):
        self.root = backend_dir / ".pulumi" / "stacks" / project
        if not backend_dir.is_dir():
            raise UsageError(f"--stacks-from {backend_dir}: no such directory")

    def _checkpoints(self) -> dict[str, Path]:
        found = {}
        for path in sorted(self.root.glob("*.json*")):
            if path.suffix not in (".json", ".gz") or path.name.endswith(".bak"):
                continue
            found[path.name.removesuffix(".gz").removesuffix(".json")] = path
        return found

    def list_stacks(self) -> list[StackInfo]:
        return [StackInfo(name=name, silo_name=self._silo_name(path)) for name, path in self._checkpoints().items()]

    def list_stack_names(self) -> list[str]:
        return list(self._checkpoints())

    def silo_name(self, stack: str) -> Optional[str]:
        path = self._checkpoints().get(stack)
        return self._silo_name(path) if path else None

    @staticmethod
    def _silo_name(path: Path) -> Optional[str]:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return _checkpoint_output(json.loads(raw), "siloName")

    def _needs_cli(self, operation: str) -> Any:
        raise UsageError(f"{operation} needs the pulumi CLI; the file-backend reader can only list stacks")

    def create_stack(self, stack: str, tags: Mapping[str, str]) -> None:
        self._needs_cli("create")

    def set_config(self, stack: str, config: Mapping[str, Any]) -> None:
        self._needs_cli("set config")

    def up(self, stack: str, log: TextIO, *, targets: Sequence[str] = ()) -> int:
        return self._needs_cli("up")

    def preview_drift(self, stack: str, log: TextIO) -> list[str]:
        return self._needs_cli("preview")

    def destroy(self, stack: str, log: TextIO) -> int:
        return self._needs_cli("destroy")

    def refresh(self, stack: str, log: TextIO, *, clear_pending_creates: bool = False) -> int:
        return self._needs_cli("refresh")

    def export(self, stack: str) -> dict[str, Any]:
        return self._needs_cli("export")

    def remove(self, stack: str, *, force: bool) -> None:
        self._needs_cli("remove")

    def import_state(self, stack: str, deployment: Mapping[str, Any]) -> None:
        self._needs_cli("import")


def _checkpoint_output(checkpoint: Mapping[str, Any], key: str) -> Optional[str]:
    resources = (checkpoint.get("checkpoint", {}).get("latest") or {}).get("resources") or []
    for resource in resources:
        if resource.get("type") == "pulumi:pulumi:Stack":
            value = (resource.get("outputs") or {}).get(key)
            return str(value) if value else None
    return None
