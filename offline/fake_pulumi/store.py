"""The fake CLI's on-disk state: call records, `behaviour.json`, the DIY backend (checkpoints, stack locks,
tags and history), workspace files, secrets in state, and the `Context` of one invocation."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

ROOT = Path(os.environ["FAKE_PULUMI_ROOT"])
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # resource.SecretSig: the key that marks a secret value
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
DIY_LOCKED = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
    "or delete the lock file with `pulumi cancel`."
)



class Fail(Exception):
    """Ends the command with `error: <message>` on stderr and exit code 255."""


def user_name() -> str:
    """Go's `user.Current().Username`: the password database's name of the uid, else `$USER`."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or os.environ.get("LOGNAME") or "runner"


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_time_now() -> str:
    """`time.Now()` as Go's encoding/json writes it (RFC 3339 with nanoseconds, trailing zeros dropped)."""
    nanos = time.time_ns()
    stamp = datetime.fromtimestamp(nanos // 1_000_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos % 1_000_000_000:09d}".rstrip("0")
    return f"{stamp}{'.' + fraction if fraction else ''}Z"


def rfc3339(stamp: Any) -> str:
    """A lock's timestamp as `checkForLock` prints it (`time.RFC3339`: whole seconds)."""
    try:
        return datetime.fromisoformat(str(stamp)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return str(stamp)


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def dump_yaml(path: Path, document: dict[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(document, sort_keys=False))


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=4))
    tmp.replace(path)


def read_json(path: Path, default: Any = None) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


@contextlib.contextmanager
def fake_lock() -> Iterator[None]:
    """Serialises the fake's own bookkeeping (rule counters, lock files, plugin cache) across processes."""
    ROOT.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".fake.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Call:
    """One invocation: what was asked, recorded to `<root>/calls/` when it starts and again when it ends."""

    def __init__(self, argv: list[str]):
        self.started = time.time()
        self.record: dict[str, Any] = {
            "argv": argv,
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "env": {k: v for k, v in os.environ.items() if k.startswith(("PULUMI_", "AWS_"))},
            "started": self.started,
            "ended": None,
            "exit": None,
            "command": None,
            "stack": None,
            "workspaceWrites": [],
            "children": [],
        }
        self.path = ROOT / "calls" / f"{time.time_ns()}-{os.getpid()}.json"
        self.save()

    def save(self) -> None:
        write_json(self.path, self.record)

    def finish(self, code: int) -> None:
        self.record.update(ended=time.time(), exit=code)
        self.save()


class Behaviour:
    """`<root>/behaviour.json`: version, seeded outputs, drift and the failure rules."""

    def __init__(self) -> None:
        self.data = read_json(ROOT / "behaviour.json", {}) or {}

    @property
    def version(self) -> str:
        return str(self.data.get("version", "3.272.0"))

    def rule_for(self, command: str, stack: Optional[str]) -> Optional[dict[str, Any]]:
        """The first rule matching the command (and stack) that has uses left; counts the use."""
        rules = self.data.get("rules", [])
        with fake_lock():
            counts = read_json(ROOT / "rule-counts.json", {}) or {}
            for index, rule in enumerate(rules):
                if rule.get("command", command) != command:
                    continue
                if rule.get("stack") and (stack is None or short_name(stack) != short_name(rule["stack"])):
                    continue
                used = counts.get(str(index), 0)
                if rule.get("times") is not None and used >= rule["times"]:
                    continue
                counts[str(index)] = used + 1
                write_json(ROOT / "rule-counts.json", counts)
                return rule
        return None


def short_name(stack: str) -> str:
    return stack.rsplit("/", 1)[-1]


class Project:
    """The Pulumi project around the working directory, as the CLI finds it (walking up to `Pulumi.yaml`)."""

    def __init__(self, cwd: Path):
        for directory in (cwd, *cwd.parents):
            if (directory / "Pulumi.yaml").exists():
                self.dir = directory
                self.file = directory / "Pulumi.yaml"
                found = re.search(r"^name:\s*['\"]?([^'\"\s#]+)", self.file.read_text(), re.MULTILINE)
                self.name = found.group(1) if found else ""
                return
        raise Fail(f"no Pulumi.yaml project file found (searching upwards from {cwd}). If you have not created a "
                   "project yet, use `pulumi new` to do so: no project file found")

    def stack_file(self, stack: str) -> Path:
        return self.dir / f"Pulumi.{short_name(stack)}.yaml"

    def stack_config(self, stack: str) -> dict[str, Any]:
        path = self.stack_file(stack)
        return (load_yaml(path).get("config") or {}) if path.exists() else {}


def pulumi_home() -> Path:
    """`$PULUMI_HOME`, else `<root>/default-home` (never the real `~/.pulumi` of whoever runs the tests)."""
    return Path(os.environ["PULUMI_HOME"]) if os.environ.get("PULUMI_HOME") else ROOT / "default-home"


def workspace_file(project: Project) -> Path:
    """`$PULUMI_HOME/workspaces/<project>-<sha1 of the Pulumi.yaml path>-workspace.json` (sdk/go/common/workspace)."""
    digest = hashlib.sha1(str(project.file).encode()).hexdigest()
    return pulumi_home() / "workspaces" / f"{project.name}-{digest}-workspace.json"


def set_current_stack(call: Call, project: Project, stack: str) -> None:
    """`state.SetCurrentStack`: writes the project's workspace file; an empty name removes it (`Save` of empty settings)."""
    path = workspace_file(project)
    if stack:
        write_json(path, {"stack": stack})
    elif path.exists():
        path.unlink()
    call.record["workspaceWrites"].append(str(path))
    call.save()


class Backend:
    """A DIY backend: `file://<dir>` uses that directory, any other URL a directory under the fake's root."""

    def __init__(self, project: Project):
        url = os.environ.get("PULUMI_BACKEND_URL", "")
        if not url:
            raise Fail("PULUMI_BACKEND_URL is not set; the fake pulumi only knows DIY backends (file://, s3://)")
        if url.startswith("file://"):
            self.dir = Path(url[len("file://"):].split("?", 1)[0])
        else:
            self.dir = ROOT / "backends" / hashlib.sha1(url.encode()).hexdigest()[:12]
        self.url = url
        self.project = project

    def parse(self, reference: str) -> str:
        """The DIY backend's `ParseStackReference`: `[organization/[project/]]stack` → `organization/<project>/<stack>`."""
        parts = reference.split("/")
        if len(parts) > 3 or not reference:
            raise Fail(f"could not parse stack reference '{reference}'")
        org, project, name = ([""] * (3 - len(parts)) + parts) if len(parts) != 2 else (parts[0], "", parts[1])
        org = org or "organization"
        if org != "organization":
            raise Fail("organization name must be 'organization'")
        project = project or self.project.name
        if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
            raise Fail(f"stack names may only contain alphanumeric, hyphens, underscores, or periods: {name}")
        return f"organization/{project}/{name}"

    def checkpoint_path(self, stack: str) -> Path:
        _, project, name = stack.split("/")
        return self.dir / ".pulumi" / "stacks" / project / f"{name}.json"

    def meta_path(self, stack: str) -> Path:
        _, project, name = stack.split("/")
        return self.dir / ".fake" / project / f"{name}.json"

    def lock_dir(self, stack: str) -> Path:
        return self.dir / ".pulumi" / "locks" / stack

    def exists(self, stack: str) -> bool:
        return self.checkpoint_path(stack).exists()

    def require(self, stack: str) -> None:
        if not self.exists(stack):
            raise Fail(f"no stack named '{short_name(stack)}' found")

    def resources(self, stack: str) -> list[dict[str, Any]]:
        checkpoint = read_json(self.checkpoint_path(stack), {})
        return list(((checkpoint.get("checkpoint") or {}).get("latest") or {}).get("resources") or [])

    def pending_operations(self, stack: str) -> list[dict[str, Any]]:
        checkpoint = read_json(self.checkpoint_path(stack), {})
        return list(((checkpoint.get("checkpoint") or {}).get("latest") or {}).get("pending_operations") or [])

    def secrets_providers(self, stack: str) -> Optional[dict[str, Any]]:
        checkpoint = read_json(self.checkpoint_path(stack), {})
        return ((checkpoint.get("checkpoint") or {}).get("latest") or {}).get("secrets_providers")

    def save_resources(self, stack: str, resources: list[dict[str, Any]], secrets_providers: Optional[dict[str, Any]] = None,
                       pending: Optional[list[dict[str, Any]]] = None) -> None:
        """Writes the checkpoint; `pending` replaces its pending operations (None keeps them)."""
        pending = self.pending_operations(stack) if pending is None else pending
        latest: dict[str, Any] = {
            "manifest": {"time": now_iso(), "magic": "fake", "version": "v" + Behaviour().version},
            "secrets_providers": secrets_providers or self.secrets_providers(stack),
            "resources": resources,
        }
        if pending:  # `omitempty`, as apitype.DeploymentV3
            latest["pending_operations"] = pending
        write_json(self.checkpoint_path(stack), {"version": 3, "checkpoint": {"stack": stack, "latest": latest}})

    def meta(self, stack: str) -> dict[str, Any]:
        return read_json(self.meta_path(stack), {"tags": {}, "history": []})

    def save_meta(self, stack: str, meta: dict[str, Any]) -> None:
        write_json(self.meta_path(stack), meta)

    def stacks(self, all_projects: bool) -> list[str]:
        root = self.dir / ".pulumi" / "stacks"
        projects = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not all_projects:
            projects = [p for p in projects if p == self.project.name]
        return [f"organization/{p}/{f.name[:-5]}" for p in projects for f in sorted((root / p).glob("*.json"))]

    def display(self, stack: str) -> str:
        """How the CLI prints a stack name: the short name inside its own project, else fully qualified."""
        _, project, name = stack.split("/")
        return name if project == self.project.name else stack

    @contextlib.contextmanager
    def locked(self, stack: str, call: Call) -> Iterator[None]:
        """The DIY stack lock: refused while any lock file exists (even a dead process's), removed when done."""
        lock_dir = self.lock_dir(stack)
        with fake_lock():
            held = sorted(lock_dir.glob("*.json")) if lock_dir.is_dir() else []
            if held:
                holder = read_json(held[0], {})
                raise Fail(DIY_LOCKED[len("error: "):] + f"\n  {self.url.rstrip('/')}/.pulumi/locks/{stack}/{held[0].name}: "
                           f"created by {holder.get('username')}@{holder.get('hostname')} (pid {holder.get('pid')}) "
                           f"at {rfc3339(holder.get('timestamp'))}")
            lock = lock_dir / f"{uuid.uuid4()}.json"
            # lockContent of pkg/backend/diy/lock.go, marshalled compactly as Go's json.Marshal does.
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.write_text(json.dumps({"pid": os.getpid(), "username": user_name(), "hostname": os.uname().nodename,
                                        "timestamp": go_time_now()}, separators=(",", ":")))
        call.record["lock"] = str(lock)
        call.save()
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def secret(value: str) -> dict[str, str]:
    """How state holds a secret: the secret signature and a ciphertext (here only base64, marked fake)."""
    return {SECRET_SIG: SECRET_VALUE, "ciphertext": "fake:" + base64.b64encode(json.dumps(value).encode()).decode()}


def reveal(value: Any) -> Any:
    """`--show-secrets`: every secret in a state document decrypted in place, as the CLI does."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE and "ciphertext" in value:
            plaintext = base64.b64decode(value["ciphertext"][len("fake:"):]).decode()
            return {SECRET_SIG: SECRET_VALUE, "plaintext": plaintext}
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def plain(value: Any, show_secrets: bool) -> Any:
    """An output value as `stack output --json` prints it."""
    if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE:
        return json.loads(reveal(value)["plaintext"]) if show_secrets else "[secret]"
    return value


class Context:
    def __init__(self, call: Call, behaviour: Behaviour, command: str, flags: dict[str, Any], positionals: list[str]):
        self.call, self.behaviour, self.command, self.flags, self.positionals = call, behaviour, command, flags, positionals
        self._project: Optional[Project] = None
        self._backend: Optional[Backend] = None
        self.pending_hang: Optional[dict[str, Any]] = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = Project(Path(os.getcwd()))
        return self._project

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = Backend(self.project)
        return self._backend

    def stack_argument(self, positional: bool = False) -> Optional[str]:
        """The stack this command names (`--stack`, or the positional name where the command takes one)."""
        name = self.flags.get("--stack") or self.flags.get("-s")
        if positional and self.positionals:
            if name:
                raise Fail("only one of --stack or argument stack name may be specified, not both")
            name = self.positionals[0]
        return self.backend.parse(name) if name else None

    def stack(self, positional: bool = False) -> str:
        """The named stack, else the current one from the workspace file (`requireCurrentStack`)."""
        named = self.stack_argument(positional)
        if named:
            self.call.record["stack"] = named
            self.call.save()
            return named
        current = (read_json(workspace_file(self.project), {}) or {}).get("stack")
        self.call.record["usedCurrentStack"] = True
        self.call.save()
        if not current:
            raise Fail("no stack selected; please use `pulumi stack select` to choose one")
        return self.backend.parse(current)

    def flag(self, *names: str) -> bool:
        return any(self.flags.get(n) for n in names)
