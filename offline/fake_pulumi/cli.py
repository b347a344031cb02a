"""A fake `pulumi` CLI: answers the subcommands the Automation API uses and records every call.

Run through the `pulumi` wrapper that `FakePulumi` writes (`offline/fake_pulumi/__init__.py`); the
wrapper sets `FAKE_PULUMI_ROOT`. Behaviour, state layout and how to script failures are described
in `offline/fake_pulumi/README.md`. Standard library only, except `yaml` (stack config files) and,
for `--event-log tcp://...`, the SDK's generated gRPC stubs, both imported only when needed: every
call starts a process, and the suite makes hundreds.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(os.environ["FAKE_PULUMI_ROOT"])
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # resource.SecretSig: the key that marks a secret value
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
DIY_LOCKED = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
    "or delete the lock file with `pulumi cancel`."
)

# Flags that take a value; every other flag is boolean. `--flag=value` is accepted for both.
VALUE_FLAGS = {
    "--stack", "-s", "--secrets-provider", "--color", "--exec-kind", "--event-log", "--page-size", "--page",
    "--parallel", "-p", "--message", "-m", "--client", "--config-file", "--target", "--replace", "--exclude",
    "--policy-pack", "--policy-pack-config", "--tracing", "--verbose", "-v", "--plan", "--save-plan",
    "--import-file", "--file", "--copy-config-from", "--teams", "--run-program", "--cwd", "-C",
}
GLOBAL_FLAGS = {"--non-interactive", "--color", "--logtostderr", "--logflow", "--verbose", "-v", "--tracing", "--cwd", "-C"}
OPERATION_FLAGS = {
    "--stack", "-s", "--yes", "-y", "--skip-preview", "-f", "--exec-kind", "--event-log", "--client", "--parallel", "-p",
    "--message", "-m", "--target", "--replace", "--exclude", "--diff", "--expect-no-changes", "--refresh", "-r",
    "--policy-pack", "--policy-pack-config", "--suppress-outputs", "--suppress-progress", "--config-file",
    "--run-program", "--show-secrets", "--debug", "-d", "--continue-on-error", "--target-dependents",
    "--exclude-dependents", "--plan", "--attach-debugger",
}
# command → the flags it accepts besides GLOBAL_FLAGS (the real CLI's, for the parts the SDK uses).
COMMANDS: dict[str, set[str]] = {
    "version": set(),
    "whoami": {"--json"},
    "stack": {"--stack", "-s", "--show-ids", "--show-urns", "--show-secrets", "--show-name", "-i", "-u"},
    "stack ls": {"--json", "-j", "--all", "-a", "--project", "--organization", "--tag"},
    "stack init": {"--stack", "-s", "--secrets-provider", "--copy-config-from", "--no-select", "--teams"},
    "stack select": {"--stack", "-s", "--create", "-c", "--secrets-provider"},
    "stack rm": {"--stack", "-s", "--yes", "-y", "--force", "-f", "--preserve-config", "--remove-backups"},
    "stack tag set": {"--stack", "-s"},
    "stack tag get": {"--stack", "-s"},
    "stack tag rm": {"--stack", "-s"},
    "stack tag ls": {"--stack", "-s", "--json", "-j"},
    "stack output": {"--stack", "-s", "--json", "-j", "--show-secrets", "--shell"},
    "stack history": {"--stack", "-s", "--json", "-j", "--show-secrets", "--page-size", "--page", "--full-dates"},
    "stack export": {"--stack", "-s", "--file", "--show-secrets", "--version"},
    "stack import": {"--stack", "-s", "--file", "--force", "-f"},
    "config": {"--stack", "-s", "--json", "-j", "--show-secrets", "--config-file"},
    "cancel": {"--stack", "-s", "--yes", "-y"},
    "plugin ls": {"--json", "-j", "--project", "-p"},
    "__seed": set(),
    "up": OPERATION_FLAGS,
    "preview": (OPERATION_FLAGS - {"--yes", "-y", "--skip-preview", "-f", "--continue-on-error"}) | {"--json", "-j", "--save-plan", "--import-file"},
    "destroy": OPERATION_FLAGS | {"--remove", "--preview-only", "--exclude-protected"},
    # pkg/cmd/pulumi/operations/refresh.go; `--import-pending-creates` (a string array) is not answered.
    "refresh": (OPERATION_FLAGS - {"--refresh", "-r", "--replace", "--plan", "--policy-pack", "--policy-pack-config"})
    | {"--preview-only", "--clear-pending-creates", "--skip-pending-creates", "--skip-plugin-pre-install"},
}
# Commands that take the DIY backend's stack lock (pkg/backend/diy: Update, Destroy, RemoveStack; Preview does not).
LOCKING = {"up", "destroy", "refresh", "stack rm", "stack import"}
# Pending operation types (sdk/go/common/apitype: OperationType; pkg/resource: also `importing`).
CREATING = "creating"


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


def parse(argv: list[str]) -> tuple[str, dict[str, Any], list[str]]:
    """`[--non-interactive, stack, tag, ls, --json, --stack, x]` → ("stack tag ls", {"--json": True, "--stack": "x"}, [])."""
    flags: dict[str, Any] = {}
    words: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            words.extend(args)
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg.partition("=")
            if not eq and name in VALUE_FLAGS:
                if not args:
                    raise Fail(f"flag needs an argument: {name}")
                value, eq = args.pop(0), "="
            flags[name] = value if eq else True
        else:
            words.append(arg)
    command = ""
    for size in (3, 2, 1):
        candidate = " ".join(words[:size])
        if candidate in COMMANDS:
            command = candidate
            break
    if not command:
        raise Fail(f"unknown command {' '.join(words)!r} for \"pulumi\"")
    positionals = words[len(command.split()):]
    unknown = sorted(set(flags) - COMMANDS[command] - GLOBAL_FLAGS)
    if unknown:
        raise Fail(f"unknown flag: {unknown[0]}")
    return command, flags, positionals


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


# --- commands -------------------------------------------------------------------------------------


def cmd_version(ctx: Context) -> None:
    print(f"v{ctx.behaviour.version}")


def cmd_plugin_ls(ctx: Context) -> None:
    """The plugins under `$PULUMI_HOME/plugins` (`<kind>-<name>-v<version>` directories), as `pulumi plugin ls --json` lists them."""
    plugins = []
    root = pulumi_home() / "plugins"
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        kind, _, rest = path.name.partition("-")
        name, _, version = rest.rpartition("-v")
        if path.is_dir() and kind in ("resource", "language", "analyzer") and name and version:
            plugins.append({"name": name, "kind": kind, "version": version, "size": 0, "installTime": now_iso(), "lastUsedTime": now_iso()})
    if ctx.flag("--json", "-j"):
        print(json.dumps(plugins, indent=4))
    else:
        for plugin in plugins:
            print(f"{plugin['name']:<10} {plugin['kind']:<10} {plugin['version']}")


def cmd_whoami(ctx: Context) -> None:
    user = user_name()
    print(json.dumps({"user": user, "url": ctx.backend.url, "organizations": []}) if ctx.flag("--json") else user)


def cmd_stack_ls(ctx: Context) -> None:
    current = (read_json(workspace_file(ctx.project), {}) or {}).get("stack")
    rows = []
    for stack in ctx.backend.stacks(ctx.flag("--all", "-a")):
        history = ctx.backend.meta(stack)["history"]
        row: dict[str, Any] = {"name": ctx.backend.display(stack), "current": current in (stack, short_name(stack)),
                               "updateInProgress": any(ctx.backend.lock_dir(stack).glob("*.json"))}
        if history:
            row["lastUpdate"] = history[-1]["endTime"]
            row["resourceCount"] = len(ctx.backend.resources(stack))
        rows.append(row)
    print(json.dumps(rows, indent=4))


def cmd_stack_init(ctx: Context) -> None:
    stack = ctx.stack_argument(positional=True)
    if stack is None:
        raise Fail("missing stack name")
    ctx.call.record["stack"] = stack
    provider = ctx.flags.get("--secrets-provider") or "default"
    with fake_lock():
        if ctx.backend.exists(stack):
            raise Fail(f"stack '{stack}' already exists")
        ctx.backend.save_resources(stack, [], {"type": "cloud" if provider.startswith("aws") else provider, "state": {"url": provider}})
    ctx.backend.save_meta(stack, {"tags": {}, "history": []})
    if provider not in ("default", "passphrase"):
        # A cloud secrets provider is recorded in the stack's config file (`secretsprovider`, `encryptedkey`).
        path = ctx.project.stack_file(stack)
        settings = load_yaml(path) if path.exists() else {}
        settings.update(secretsprovider=provider, encryptedkey="ZmFrZS1lbmNyeXB0ZWQta2V5")
        dump_yaml(path, settings)
    if not ctx.flag("--no-select"):
        set_current_stack(ctx.call, ctx.project, stack)
    print(f"Created stack '{ctx.backend.display(stack)}'")


def cmd_stack_select(ctx: Context) -> None:
    stack = ctx.stack(positional=True)
    ctx.backend.require(stack)
    set_current_stack(ctx.call, ctx.project, stack)


def cmd_stack(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    print(f"Current stack is {ctx.backend.display(stack)}:\n    Managed by {os.uname().nodename}")
    print(f"    {len(ctx.backend.resources(stack))} resources")


def cmd_stack_rm(ctx: Context) -> None:
    stack = ctx.stack(positional=True)
    ctx.backend.require(stack)
    if not ctx.flag("--yes", "-y"):
        raise Fail("non-interactive mode requires --yes flag")
    with ctx.backend.locked(stack, ctx.call):
        if ctx.backend.resources(stack) and not ctx.flag("--force", "-f"):
            raise Fail(f"'{stack}' still has resources; removal rejected. Possible actions:\n"
                       f"- Make sure that '{stack}' is the stack that you want to destroy\n"
                       "- Run `pulumi destroy` to delete the resources, then run `pulumi stack rm`\n"
                       "- Run `pulumi stack rm --force` to override this error")
        ctx.backend.checkpoint_path(stack).unlink()
        ctx.backend.meta_path(stack).unlink(missing_ok=True)
    if not ctx.flag("--preserve-config"):
        ctx.project.stack_file(stack).unlink(missing_ok=True)
    print(f"Stack '{stack}' has been removed!")
    set_current_stack(ctx.call, ctx.project, "")


def cmd_stack_tag(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    with fake_lock():
        meta = ctx.backend.meta(stack)
        tags = {"pulumi:project": ctx.project.name, **meta["tags"]}
        sub = ctx.command.split()[-1]
        if sub == "ls":
            print(json.dumps(tags, indent=4) if ctx.flag("--json", "-j") else "\n".join(f"{k}  {v}" for k, v in tags.items()))
        elif sub == "get":
            if ctx.positionals[0] not in tags:
                raise Fail(f"stack tag '{ctx.positionals[0]}' not found for stack '{ctx.backend.display(stack)}'")
            print(tags[ctx.positionals[0]])
        elif sub == "set":
            if len(ctx.positionals) != 2:
                raise Fail("accepts 2 arg(s), received %d" % len(ctx.positionals))
            meta["tags"][ctx.positionals[0]] = ctx.positionals[1]
            ctx.backend.save_meta(stack, meta)
        else:
            meta["tags"].pop(ctx.positionals[0], None)
            ctx.backend.save_meta(stack, meta)


def stack_outputs(backend: Backend, stack: str) -> dict[str, Any]:
    for resource in backend.resources(stack):
        if resource.get("type") == "pulumi:pulumi:Stack":
            return dict(resource.get("outputs") or {})
    return {}


def cmd_stack_output(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    show = ctx.flag("--show-secrets")
    outputs = {k: plain(v, show) for k, v in stack_outputs(ctx.backend, stack).items()}
    if ctx.positionals:
        if ctx.positionals[0] not in outputs:
            raise Fail(f"current stack does not have output property '{ctx.positionals[0]}'")
        print(json.dumps(outputs[ctx.positionals[0]]) if ctx.flag("--json", "-j") else outputs[ctx.positionals[0]])
    else:
        print(json.dumps(outputs, indent=2))


def cmd_stack_history(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    history = list(reversed(ctx.backend.meta(stack)["history"]))
    size = int(ctx.flags.get("--page-size") or 0)
    if size:
        page = int(ctx.flags.get("--page") or 1)
        history = history[(page - 1) * size: page * size]
    print(json.dumps(history, indent=4))


def cmd_stack_export(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    deployment = {
        "manifest": {"time": now_iso(), "magic": "fake", "version": "v" + ctx.behaviour.version},
        "secrets_providers": ctx.backend.secrets_providers(stack),
        "resources": ctx.backend.resources(stack),
    }
    pending = ctx.backend.pending_operations(stack)
    if pending:
        deployment["pending_operations"] = pending
    document = {"version": 3, "deployment": reveal(deployment) if ctx.flag("--show-secrets") else deployment}
    text = json.dumps(document, indent=4)
    if ctx.flags.get("--file"):
        Path(ctx.flags["--file"]).write_text(text)
    else:
        print(text)


def cmd_stack_import(ctx: Context) -> None:
    """Replaces the stack's state with an export file's deployment (refusing another stack's URNs, as the CLI does)."""
    stack = ctx.stack()
    ctx.backend.require(stack)
    if not ctx.flags.get("--file"):
        raise Fail("--file is required by the fake (the real CLI would read stdin)")
    deployment = (json.loads(Path(ctx.flags["--file"]).read_text()).get("deployment") or {})
    resources = list(deployment.get("resources") or [])
    foreign = [r["urn"] for r in resources if r.get("urn", "").split("::")[0] != f"urn:pulumi:{short_name(stack)}"]
    if foreign and not ctx.flag("--force", "-f"):
        other = foreign[0].split("::")[0][len("urn:pulumi:"):]
        raise Fail(f"resource '{foreign[0]}' is from a different stack ({other} != {short_name(stack)})")
    # pkg/cmd/pulumi/stack/io.go SaveSnapshot: "Explicitly clear-out any pending operations", each with a warning.
    for op in deployment.get("pending_operations") or []:
        print(f"warning: removing pending operation '{op.get('type')}' on '{(op.get('resource') or {}).get('urn')}' from snapshot",
              file=sys.stderr)
    with ctx.backend.locked(stack, ctx.call):
        ctx.backend.save_resources(stack, resources, deployment.get("secrets_providers"), pending=[])
    print("Import complete.")


def cmd_config(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    config = ctx.project.stack_config(stack)
    print(json.dumps({k: {"value": v if isinstance(v, str) else json.dumps(v), "secret": False, "objectValue": v}
                      for k, v in config.items()}, indent=4))


def cmd_cancel(ctx: Context) -> None:
    """The DIY backend's `cancel`: deletes the stack's lock files (inferred from its lock message)."""
    stack = ctx.stack()
    ctx.backend.require(stack)
    if not ctx.flag("--yes", "-y"):
        raise Fail("non-interactive mode requires --yes flag")
    for lock in ctx.backend.lock_dir(stack).glob("*.json"):
        lock.unlink()
    print(f"The currently running update for '{ctx.backend.display(stack)}' has been canceled!")


class Events:
    """The engine event stream: JSON lines into a file, or gRPC to the SDK's server (`tcp://host:port`, CLI > 3.205)."""

    def __init__(self, target: Optional[str]):
        self.target = target
        self.events: list[dict[str, Any]] = []

    def add(self, **event: Any) -> None:
        self.events.append({"sequence": len(self.events) + 1, "timestamp": int(time.time()), **event})

    def send(self) -> None:
        if not self.target:
            return
        if self.target.startswith("tcp://"):
            import grpc
            from pulumi.runtime.proto import events_pb2, events_pb2_grpc

            with grpc.insecure_channel(self.target[len("tcp://"):]) as channel:
                stub = events_pb2_grpc.EventsStub(channel)
                stub.StreamEvents(iter([events_pb2.EventRequest(event=json.dumps(e)) for e in self.events]), timeout=30)
        else:
            with open(self.target, "a", encoding="utf-8") as log:
                for event in self.events:
                    log.write(json.dumps(event) + "\n")


def program_resources(ctx: Context, stack: str) -> list[dict[str, Any]]:
    """What "running the program" yields: the stack resource with outputs from config, and a few children."""
    config = ctx.project.stack_config(stack)
    _, project, name = stack.split("/")
    outputs_from = ctx.behaviour.data.get("outputs", {"siloName": "datalake:siloName"})
    outputs: dict[str, Any] = {out: config[key] for out, key in outputs_from.items() if key in config}
    outputs["fakeSecret"] = secret(f"secret-of-{name}")
    root_urn = f"urn:pulumi:{name}::{project}::pulumi:pulumi:Stack::{project}-{name}"
    resources = [{"urn": root_urn, "custom": False, "type": "pulumi:pulumi:Stack", "outputs": outputs}]
    for index in range(int(ctx.behaviour.data.get("resources_per_stack", 2))):
        resources.append({
            "urn": f"urn:pulumi:{name}::{project}::datalake:fake:Resource::r{index}", "custom": False,
            "type": "datalake:fake:Resource", "parent": root_urn, "inputs": {}, "outputs": {},
        })
    return resources


def summary_line(changes: dict[str, int]) -> str:
    words = {"create": "created", "same": "unchanged", "delete": "deleted", "update": "updated"}
    return ", ".join(f"{n} {words.get(op, op)}" for op, n in changes.items())


def run_operation(ctx: Context, kind: str) -> None:
    """`up`, `destroy` and `preview`: lock (not for preview), change the state, emit events, write history."""
    stack = ctx.stack()
    ctx.backend.require(stack)
    events = Events(ctx.flags.get("--event-log"))
    display = ctx.backend.display(stack)
    heading = {"up": "Updating", "destroy": "Destroying", "preview": "Previewing update", "refresh": "Refreshing"}[kind]
    started = now_iso()
    lock = ctx.backend.locked(stack, ctx.call) if kind in LOCKING else contextlib.nullcontext()
    with lock:
        print(f"{heading} ({display})", flush=True)
        pending_before = ctx.backend.pending_operations(stack)
        if ctx.pending_hang:
            interrupted = list(ctx.pending_hang.get("pending") or [])
            # The engine writes a pending operation into the checkpoint as each step begins; a killed CLI leaves them there.
            ctx.backend.save_resources(stack, ctx.backend.resources(stack), pending=pending_before + interrupted)
            try:
                hang(ctx, ctx.pending_hang)
            finally:
                # A graceful cancel lets in-flight steps finish, so their pending operations are closed.
                ctx.backend.save_resources(stack, ctx.backend.resources(stack), pending=pending_before)
        events.add(preludeEvent={"config": {}})
        old = {r["urn"]: r for r in ctx.backend.resources(stack)}
        if pending_before and kind == "up":
            # pkg/resource/deploy/deployment_executor.go printPendingOperationsWarning
            listing = "".join(f"  * {op['resource']['urn']}, interrupted while {op['type']}\n" for op in pending_before)
            print(f"warning: Attempting to deploy or update resources with {len(pending_before)} pending operations "
                  f"from previous deployment.\n{listing}", file=sys.stderr)
        if kind == "refresh":
            steps = [("refresh", urn) for urn in old]
            new = list(old.values())
        elif kind == "destroy":
            steps = [("delete", urn) for urn in old]
            new: list[dict[str, Any]] = []
        else:
            new = program_resources(ctx, stack)
            drift = {urn: op for op, urn in ctx.behaviour.data.get("drift", {}).get(short_name(stack), [])}
            steps = [(drift.get(r["urn"], "same" if r["urn"] in old else "create"), r["urn"]) for r in new]
        changes: dict[str, int] = {}
        for op, urn in steps:
            counted = "same" if op == "refresh" else op  # a refresh that finds a resource as recorded
            changes[counted] = changes.get(counted, 0) + 1
            events.add(resourcePreEvent={"metadata": {"op": op, "urn": urn, "type": urn.split("::")[2], "provider": ""}})
            print(f"    {op} {urn}")
        events.add(summaryEvent={"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": changes, "PolicyPacks": {}})
        events.add(cancelEvent={})
        if kind != "preview":
            # pkg/backend/snapshot.go: pending CREATEs of the base snapshot are carried into the new one (they need a
            # person); every other pending operation is dropped (refresh re-read those resources).
            kept = [op for op in pending_before if op.get("type") == CREATING]
            if kind == "refresh" and ctx.flag("--clear-pending-creates"):
                kept = []
            ctx.backend.save_resources(stack, new, pending=kept)
            with fake_lock():
                meta = ctx.backend.meta(stack)
                meta["history"].append({
                    "kind": {"up": "update"}.get(kind, kind), "startTime": started, "endTime": now_iso(),
                    "message": ctx.flags.get("--message", ""), "environment": {"exec.kind": ctx.flags.get("--exec-kind", "cli")},
                    "config": {}, "result": "succeeded", "version": len(meta["history"]) + 1, "resourceChanges": changes,
                })
                ctx.backend.save_meta(stack, meta)
            install_plugin_once(ctx)
    events.send()
    print(f"\nResources:\n    {summary_line(changes)}\n\nDuration: 0s")


def install_plugin_once(ctx: Context) -> None:
    """What a first `up` does on a fresh machine: download the provider plugin into `$PULUMI_HOME/plugins`."""
    plugin = pulumi_home() / "plugins" / "resource-aws-v7.51.1"
    with fake_lock():
        if not plugin.exists():
            plugin.mkdir(parents=True)
            (plugin / "pulumi-resource-aws").write_text(f"installed by pid {os.getpid()}\n")
            ctx.call.record["pluginInstalled"] = str(plugin)
            ctx.call.save()


def cmd_seed(ctx: Context) -> None:
    """Fake-only `pulumi __seed '<json>'`: creates deployed stacks in one call, `{stack: {"tags": {...}, "config": {...}}}`."""
    for name, spec in json.loads(ctx.positionals[0]).items():
        stack = ctx.backend.parse(name)
        if spec.get("config"):
            dump_yaml(ctx.project.stack_file(stack), {"config": spec["config"]})
        ctx.backend.save_resources(stack, program_resources(ctx, stack), {"type": "passphrase", "state": {}},
                                   pending=list(spec.get("pending_operations") or []))
        entry = {"kind": "update", "startTime": now_iso(), "endTime": now_iso(), "message": "seeded", "environment": {},
                 "config": {}, "result": "succeeded", "version": 1, "resourceChanges": {"create": 1 + int(ctx.behaviour.data.get("resources_per_stack", 2))}}
        ctx.backend.save_meta(stack, {"tags": dict(spec.get("tags", {})), "history": [entry]})


# --- scripted failures ----------------------------------------------------------------------------


def hang(ctx: Context, rule: dict[str, Any]) -> None:
    """Hangs like a stuck update, with a child process (a language host or provider plugin) beside it."""
    ignore = bool(rule.get("ignore_sigint"))
    code = "import signal, time\n" + ("signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if ignore else "") + "time.sleep(3600)\n"
    import subprocess

    child = subprocess.Popen([sys.executable, "-S", "-c", code])
    ctx.call.record["children"].append(child.pid)
    ctx.call.record["hanging"] = True
    ctx.call.save()

    def cancelled(signum: int, frame: Any) -> None:
        # The real CLI's first SIGINT cancels gracefully: the update stops and its lock is released.
        child.terminate()
        raise Fail("update canceled")

    signal.signal(signal.SIGINT, signal.SIG_IGN if ignore else cancelled)
    print("  creating (hanging, as scripted)...", flush=True)
    time.sleep(float(rule.get("seconds", 3600)))
    child.terminate()


def apply_rule(ctx: Context, stack: Optional[str]) -> None:
    """Applies the first matching rule of `behaviour.json`; a hang of up/destroy/preview waits until the lock is held."""
    rule = ctx.behaviour.rule_for(ctx.command, stack)
    if rule is None:
        return
    ctx.call.record["rule"] = rule
    ctx.call.save()
    effect = rule.get("effect")
    if effect == "locked":
        where = f"{(os.environ.get('PULUMI_BACKEND_URL') or '').rstrip('/')}/.pulumi/locks/{stack}/{uuid.uuid4()}.json"
        raise Fail(DIY_LOCKED[len("error: "):] + f"\n  {where}: created by runner@elsewhere (pid 4242) at {now_iso()}")
    if effect == "fail":
        raise Fail(rule.get("message", "scripted failure"))
    if effect == "delay":
        time.sleep(float(rule.get("seconds", 1)))
    elif effect == "hang":
        if ctx.command in ("up", "destroy", "preview", "refresh") and rule.get("after_lock", True):
            ctx.pending_hang = rule
        else:
            hang(ctx, rule)
    elif effect is not None:
        raise Fail(f"fake pulumi: unknown effect {effect!r} in behaviour.json")


HANDLERS: dict[str, Callable[[Context], None]] = {
    "version": cmd_version,
    "whoami": cmd_whoami,
    "plugin ls": cmd_plugin_ls,
    "stack": cmd_stack,
    "stack ls": cmd_stack_ls,
    "stack init": cmd_stack_init,
    "stack select": cmd_stack_select,
    "stack rm": cmd_stack_rm,
    "stack tag set": cmd_stack_tag,
    "stack tag get": cmd_stack_tag,
    "stack tag rm": cmd_stack_tag,
    "stack tag ls": cmd_stack_tag,
    "stack output": cmd_stack_output,
    "stack history": cmd_stack_history,
    "stack export": cmd_stack_export,
    "stack import": cmd_stack_import,
    "config": cmd_config,
    "cancel": cmd_cancel,
    "__seed": cmd_seed,
    "up": lambda ctx: run_operation(ctx, "up"),
    "destroy": lambda ctx: run_operation(ctx, "destroy"),
    "preview": lambda ctx: run_operation(ctx, "preview"),
    "refresh": lambda ctx: run_operation(ctx, "refresh"),
}


def main(argv: list[str]) -> int:
    call = Call(argv)
    code = 0
    try:
        behaviour = Behaviour()
        command, flags, positionals = parse(argv)
        call.record["command"] = command
        call.save()
        ctx = Context(call, behaviour, command, flags, positionals)
        named = None
        if command not in ("version", "whoami", "stack ls", "plugin ls", "__seed"):
            with contextlib.suppress(Fail):
                named = ctx.stack_argument(positional=command in ("stack init", "stack select", "stack rm"))
        apply_rule(ctx, named)
        HANDLERS[command](ctx)
    except Fail as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 255
    finally:
        sys.stdout.flush()
        call.finish(code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
