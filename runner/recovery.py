"""Recovery from interrupted runs: stale stack locks, pending operations, and the run markers behind both.

A runner build can be killed at any moment (build timeout, container loss, a CLI killed at its
deadline). On a DIY backend (S3, or a directory) that leaves two things behind:

**Stack locks.** Every `up`, `destroy`, `refresh`, `stack rm` and `stack import` writes
`.pulumi/locks/<org>/<project>/<stack>/<uuid>.json` (`{"pid", "username", "hostname", "timestamp"}`,
pkg/backend/diy/lock.go) and deletes it when done; a killed CLI never deletes it, and every later
update of the stack fails with "the stack is currently locked by 1 lock(s)". A lock is *stale* when

1. it is older than `StaleLockRule.stale_after_seconds`, the longest any holder can live:
   `max(operation timeout + kill grace, longest CodeBuild build timeout) + margin`. A live runner
   stops each CLI at its operation deadline (SIGINT, SIGKILL after the grace), and a runner that
   died inside CodeBuild takes its orphaned CLIs with it when the build ends; the margin absorbs
   clock skew between hosts. The lock's age counts from the later of its own timestamp and the
   storage's modification time.
2. and the run that took it is known and not alive: every runner run writes a *run marker*,
   `runner-runs/<run-id>.json` beside the state, with its host, start and a heartbeat every
   `heartbeat_seconds`; a lock belongs to a run when it was created on the run's host while the run
   lived. A run is alive while unfinished and beating within `dead_after_seconds`. A lock that no
   run marker accounts for (a person's `pulumi up`, a run from before run markers) is never cleared:
   the runner cannot tell whether its process is alive.

A stale lock is cleared by deleting exactly its object. `pulumi cancel` on a DIY backend deletes
*every* lock file of the stack (`CancelCurrentUpdate` in pkg/backend/diy/backend.go), so a lock a
live run took between the runner's check and the cancel would go too, and two updates would run at
once; a lock key is unique per CLI process and written once, so deleting the key that was judged
stale touches nothing else. Clearing is recorded in the operation's notes (the run report) and the
operation is retried at once; a lock that is not stale is waited for as before.

**Pending operations.** The engine writes a pending operation into the checkpoint as each resource
step begins and removes it when the step ends; a killed CLI leaves them in `pending_operations`.
Before an update, destroy or drift check, `settle_pending` reads them from the stack's state (the
checkpoint object the export prints, read directly: no CLI process per stack; `pulumi stack export`
where the backend's objects cannot be read):
pending updates, deletes, reads and imports are resolved by `pulumi refresh` (it re-reads those
resources; pkg/backend/snapshot.go drops every pending operation of the base snapshot except
creates). A pending *create* may have left a resource in AWS that Pulumi does not know: an `up`
would create it again (a name collision, or a silent duplicate), and Pulumi carries pending creates
forward until a person decides. So the operation fails with each one listed by type and name, and
the commands to import or clear it, unless an `AbsenceCheck` proves every one absent, in which case
`refresh --clear-pending-creates` drops them. A drift check changes nothing and only reports them.

**A rollout killed half way.** Each `apply` run journals every create or update the moment it
succeeds (`runner-runs/<run-id>/done/<stack>.json`: the desired state it deployed, a digest of the
program bundle and the stack's rendered config). The next `apply` looks at the latest earlier
`apply` marker of its environment: when that run never finished (killed), every operation it
journalled with the same desired state is not run again but reported as succeeded, with a note
naming the run (and carried
into the new run's journal, so a second interruption loses nothing). Anything else runs as usual: a
changed config or program, a retirement (its steps resume on their own: export, destroy, remove
are each safe to repeat), a stack that failed or had not started. A run that finishes deletes its
journal; its marker stays (`finished`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Protocol, TextIO

from components.shared.errors import StackLockedError, StackOperationError, UsageError

from .model import Action, PlannedOperation

log = logging.getLogger(__name__)

RUNS_PREFIX = "runner-runs/"
LOCKS_PREFIX = ".pulumi/locks/"
CREATING = "creating"
PENDING_VERBS = {"creating": "create", "updating": "update", "deleting": "delete", "reading": "read", "importing": "import"}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _parse_time(value: Any) -> Optional[datetime]:
    """An RFC 3339 time (Go's `time.Time` JSON, nanoseconds and offsets allowed) in UTC; None if unreadable."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


# --- the backend's objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: datetime


class BackendObjects(Protocol):
    """The objects of a DIY backend, keyed as the CLI keys them (`.pulumi/...`), relative to its root."""

    def list(self, prefix: str, *, shallow: bool = False) -> list[StoredObject]:
        """Objects whose key starts with `prefix`; `shallow`: none below a further `/`."""

    def read(self, key: str) -> Optional[bytes]:
        """The object's content; None when it does not exist."""

    def write(self, key: str, body: bytes) -> None: ...

    def delete(self, key: str) -> None: ...

    def where(self, key: str) -> str:
        """The object's address for messages (`s3://bucket/key`, a path)."""


class DirectoryObjects:
    """A `file://<dir>` backend."""

    def __init__(self, root: Path):
        self.root = root

    def list(self, prefix: str, *, shallow: bool = False) -> list[StoredObject]:
        base = self.root / prefix.rstrip("/")
        if not base.is_dir():
            return []
        found = []
        for path in sorted(base.iterdir() if shallow else base.rglob("*")):
            if path.is_file():
                key = path.relative_to(self.root).as_posix()
                found.append(StoredObject(key, datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)))
        return found

    def read(self, key: str) -> Optional[bytes]:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def write(self, key: str, body: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(body)
        partial.replace(path)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def where(self, key: str) -> str:
        return str(self.root / key)


class S3Objects:
    """An `s3://bucket[/prefix]` backend (the CLI prefixes every key with the URL's path)."""

    def __init__(self, bucket: str, prefix: str, s3_client: Callable[[], Any]):
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._factory = s3_client
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def list(self, prefix: str, *, shallow: bool = False) -> list[StoredObject]:
        paginator = self._s3().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix, **({"Delimiter": "/"} if shallow else {}))
        return [
            StoredObject(item["Key"][len(self.prefix):], item["LastModified"].astimezone(timezone.utc))
            for page in pages
            for item in page.get("Contents", [])
        ]

    def read(self, key: str) -> Optional[bytes]:
        s3 = self._s3()
        try:
            return s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None

    def write(self, key: str, body: bytes) -> None:
        # No encryption headers: the state bucket's default (SSE-KMS with the state key) applies, and
        # its policy refuses an upload asking for another key.
        self._s3().put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body, ContentType="application/json")

    def delete(self, key: str) -> None:
        self._s3().delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


def backend_objects(backend_url: Optional[str], s3_client: Callable[[], Any]) -> Optional[BackendObjects]:
    """The objects behind a DIY backend URL (`file://<dir>`, `s3://bucket[/prefix][?region=...]`); None for others."""
    if not backend_url:
        return None
    address = backend_url.split("?", 1)[0]
    if address.startswith("file://"):
        return DirectoryObjects(Path(address[len("file://"):]))
    if address.startswith("s3://"):
        bucket, _, prefix = address[len("s3://"):].partition("/")
        return S3Objects(bucket, prefix, s3_client) if bucket else None
    return None


# --- run markers ----------------------------------------------------------------------------------


def this_host() -> tuple[str, str]:
    """Host and user as the CLI writes them into its locks (Go's `os.Hostname()`, `user.Current()`)."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = os.environ.get("USER", "")
    return socket.gethostname(), user


@dataclass(frozen=True)
class RunMarker:
    """One runner run as its marker records it."""

    run_id: str
    command: str
    hostname: str
    username: str
    pid: int
    started: datetime
    heartbeat: datetime
    finished: Optional[datetime]
    modified: datetime
    """When the store last saw the marker written (its own clock, not the writer's)."""

    @property
    def last_seen(self) -> datetime:
        return max(self.heartbeat, self.modified, self.finished or self.heartbeat)

    def alive(self, now: datetime, dead_after_seconds: float) -> bool:
        return self.finished is None and (now - self.last_seen).total_seconds() <= dead_after_seconds

    def status(self, now: datetime, dead_after_seconds: float) -> str:
        if self.finished is not None:
            return f"finished at {self.finished:%Y-%m-%d %H:%M:%S}Z"
        if self.alive(now, dead_after_seconds):
            return f"alive (heartbeat {_duration((now - self.last_seen).total_seconds())} ago)"
        return f"stopped: its last heartbeat was at {self.last_seen:%Y-%m-%d %H:%M:%S}Z, {_duration((now - self.last_seen).total_seconds())} ago"

    @classmethod
    def from_json(cls, document: Any, modified: datetime) -> Optional["RunMarker"]:
        if not isinstance(document, dict):
            return None
        started, heartbeat = _parse_time(document.get("started")), _parse_time(document.get("heartbeat"))
        if started is None or heartbeat is None or not isinstance(document.get("runId"), str):
            return None
        return cls(
            run_id=document["runId"],
            command=str(document.get("command", "")),
            hostname=str(document.get("hostname", "")),
            username=str(document.get("username", "")),
            pid=int(document.get("pid") or 0),
            started=started,
            heartbeat=heartbeat,
            finished=_parse_time(document.get("finished")) if document.get("finished") else None,
            modified=modified,
        )


class RunMarkers:
    """`runner-runs/<run-id>.json` beside the state: which runs exist, on which host, and whether they live."""

    def __init__(self, objects: BackendObjects, *, clock: Callable[[], datetime] = utc_now):
        self.objects = objects
        self.clock = clock

    def _key(self, run_id: str) -> str:
        return f"{RUNS_PREFIX}{run_id}.json"

    def write(self, run_id: str, command: str, started: datetime, *, finished: bool = False,
              host: Optional[tuple[str, str]] = None, pid: Optional[int] = None) -> None:
        hostname, username = host or this_host()
        now = self.clock()
        document = {
            "runId": run_id, "command": command, "hostname": hostname, "username": username, "pid": pid or os.getpid(),
            "started": started.isoformat(), "heartbeat": now.isoformat(), "finished": now.isoformat() if finished else None,
        }
        self.objects.write(self._key(run_id), json.dumps(document, indent=2).encode())

    def runs(self) -> list[RunMarker]:
        """Every readable marker (an unreadable one accounts for no lock, so its locks are never cleared)."""
        found = []
        for item in self.objects.list(RUNS_PREFIX, shallow=True):  # not the journals below each run
            if not item.key.endswith(".json"):
                continue
            try:
                marker = RunMarker.from_json(json.loads(self.objects.read(item.key) or b"null"), item.modified)
            except ValueError:
                marker = None
            if marker is not None:
                found.append(marker)
        return found

    @contextlib.contextmanager
    def running(self, run_id: str, command: str, heartbeat_seconds: float) -> Iterator[None]:
        """Marks the run alive for the block: a marker now, a heartbeat every `heartbeat_seconds`, `finished` at the end."""
        started = self.clock()
        try:
            self.write(run_id, command, started)
        except Exception as exc:  # noqa: BLE001 - without a marker this run's locks are never judged stale: safe, so go on
            log.warning("could not write run marker %s: %s; locks this run leaves will need a person", self.objects.where(self._key(run_id)), exc)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(heartbeat_seconds):
                try:
                    self.write(run_id, command, started)
                except Exception as exc:  # noqa: BLE001 - a missed beat must not stop the run; enough of them make it look dead
                    log.warning("run marker heartbeat failed: %s", exc)

        thread = threading.Thread(target=beat, name="run-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)
            try:
                self.write(run_id, command, started, finished=True)
            except Exception as exc:  # noqa: BLE001 - the run's outcome stands; its marker then stops beating and reads as dead
                log.warning("could not mark run %s finished: %s", run_id, exc)


# --- stack locks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaleLockRule:
    """When a stack lock is stale (see the module docstring for the formula)."""

    stale_after_seconds: float
    heartbeat_seconds: float = 60.0
    dead_after_seconds: float = 600.0
    """A run whose marker was not written for this long (and is not finished) is not alive."""
    slack_seconds: float = 120.0
    """How far a lock's timestamp may lie outside its run's start and last heartbeat (the next beat had not come)."""

    @classmethod
    def derive(cls, *, update_seconds: float, kill_grace_seconds: float, build_timeout_minutes: Sequence[float],
               margin_seconds: float = 300.0, **settings: float) -> "StaleLockRule":
        """`max(update_seconds + kill_grace_seconds, max(build_timeout_minutes) × 60) + margin_seconds`."""
        operation = update_seconds + kill_grace_seconds
        build = max(build_timeout_minutes, default=0.0) * 60
        return cls(stale_after_seconds=max(operation, build) + margin_seconds, **settings)


@dataclass(frozen=True)
class StackLock:
    """One lock file of a stack."""

    key: str
    where: str
    pid: Optional[int]
    username: str
    hostname: str
    created: Optional[datetime]
    modified: datetime

    @property
    def holder(self) -> str:
        return f"{self.username or '?'}@{self.hostname or '?'} (pid {self.pid if self.pid is not None else '?'})"

    def age(self, now: datetime) -> float:
        # The later of the two: a skewed writer clock or a copied object never makes a lock look older.
        newest = max(self.created, self.modified) if self.created else self.modified
        return (now - newest).total_seconds()


def lock_dir(org: str, project: str, stack: str) -> str:
    """`.pulumi/locks/<org>/<project>/<stack>/` (stackLockDir of the stack's fully qualified name)."""
    return f"{LOCKS_PREFIX}{org}/{project}/{stack}/"


def read_locks(objects: BackendObjects, org: str, project: str, stack: str) -> list[StackLock]:
    locks = []
    for item in objects.list(lock_dir(org, project, stack), shallow=True):
        if "/" in item.key[len(lock_dir(org, project, stack)):] or not item.key.endswith(".json"):
            continue
        try:
            content = json.loads(objects.read(item.key) or b"null")
        except ValueError:
            content = None
        content = content if isinstance(content, dict) else {}
        pid = content.get("pid")
        locks.append(StackLock(
            key=item.key,
            where=objects.where(item.key),
            pid=pid if isinstance(pid, int) else None,
            username=str(content.get("username") or ""),
            hostname=str(content.get("hostname") or ""),
            created=_parse_time(content.get("timestamp")),
            modified=item.modified,
        ))
    return locks


@dataclass(frozen=True)
class LockVerdict:
    lock: StackLock
    stale: bool
    why: str


@dataclass
class LockCheck:
    """What `LockRecovery.clear_stale` found: locks it cleared (report notes) and locks still held."""

    cleared: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

    @property
    def retry_now(self) -> bool:
        return bool(self.cleared) and not self.held


class LockRecovery:
    """Judges and clears the stack locks of one DIY backend."""

    def __init__(self, objects: BackendObjects, rule: StaleLockRule, *, org: str, project: str,
                 markers: Optional[RunMarkers] = None, clock: Callable[[], datetime] = utc_now):
        self.objects = objects
        self.rule = rule
        self.org = org
        self.project = project
        self.markers = markers or RunMarkers(objects, clock=clock)
        self.clock = clock
        self._lock = threading.Lock()

    def locks(self, stack: str) -> list[StackLock]:
        return read_locks(self.objects, self.org, self.project, stack)

    def _owner(self, lock: StackLock, runs: Sequence[RunMarker]) -> list[RunMarker]:
        """The runs that could have taken the lock: same host, and alive when it was created."""
        if lock.created is None or not lock.hostname:
            return []
        slack = self.rule.slack_seconds
        return [
            run for run in runs
            if run.hostname == lock.hostname
            and (run.started - lock.created).total_seconds() <= slack
            and (lock.created - run.last_seen).total_seconds() <= slack
        ]

    def judge(self, lock: StackLock, runs: Sequence[RunMarker]) -> LockVerdict:
        now = self.clock()
        age = lock.age(now)
        limit = self.rule.stale_after_seconds
        owners = self._owner(lock, runs)
        alive = [run for run in owners if run.alive(now, self.rule.dead_after_seconds)]
        created = f"{lock.created:%Y-%m-%d %H:%M:%S}Z" if lock.created else "an unreadable time"
        if alive:
            return LockVerdict(lock, False, f"held by run {alive[0].run_id} on {lock.hostname}, {alive[0].status(now, self.rule.dead_after_seconds)}")
        if age <= limit:
            return LockVerdict(lock, False, f"{_duration(age)} old, not older than the longest an operation can take ({_duration(limit)}): waited for")
        if not owners:
            return LockVerdict(lock, False, f"{_duration(age)} old, but no runner run accounts for it (created by {lock.holder} at {created}): "
                                            "the runner cannot tell whether that process is alive, so it is not cleared")
        run = owners[-1]
        return LockVerdict(lock, True, f"{_duration(age)} old (limit {_duration(limit)}), taken by run {run.run_id} which is "
                                       f"{run.status(now, self.rule.dead_after_seconds)}")

    def inspect(self, stack: str) -> list[LockVerdict]:
        locks = self.locks(stack)
        if not locks:
            return []
        runs = self.markers.runs()
        return [self.judge(lock, runs) for lock in locks]

    def clear_stale(self, stack: str, out: Optional[TextIO] = None) -> LockCheck:
        """Deletes the stack's stale locks; says what it cleared and what still holds the stack."""
        check = LockCheck()
        for verdict in self.inspect(stack):
            lock = verdict.lock
            if not verdict.stale:
                check.held.append(f"{lock.where}: created by {lock.holder}; {verdict.why}")
                continue
            with self._lock:
                self.objects.delete(lock.key)
            line = f"stale lock cleared: {lock.where}, created by {lock.holder}; {verdict.why}"
            log.warning("%s: %s", stack, line)
            check.cleared.append(line)
        if out is not None:
            for line in check.cleared:
                out.write(f"# {line}\n")
            for line in check.held:
                out.write(f"# still locked: {line}\n")
        return check


# --- pending operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingOperation:
    """One entry of a checkpoint's `pending_operations`."""

    kind: str
    """`creating`, `updating`, `deleting`, `reading` or `importing`."""
    urn: str
    type: str
    name: str
    id: str
    inputs: Mapping[str, Any]

    def describe(self) -> str:
        verb = PENDING_VERBS.get(self.kind, self.kind)
        return f"pending {verb} of {self.type} '{self.name}'" + (f" (id {self.id})" if self.id else "")


def pending_operations(state: Mapping[str, Any]) -> list[PendingOperation]:
    """The pending operations of a `pulumi stack export` document."""
    found = []
    for entry in (state.get("deployment") or {}).get("pending_operations") or []:
        resource = entry.get("resource") or {}
        urn = str(resource.get("urn") or "")
        parts = urn.split("::")
        found.append(PendingOperation(
            kind=str(entry.get("type") or ""),
            urn=urn,
            type=str(resource.get("type") or (parts[2].rsplit("$", 1)[-1] if len(parts) > 3 else "")),
            name=parts[-1] if len(parts) > 3 else urn,
            id=str(resource.get("id") or ""),
            inputs=dict(resource.get("inputs") or {}),
        ))
    return found


AbsenceCheck = Callable[[PlannedOperation, Sequence[PendingOperation]], Mapping[str, str]]
"""Given an operation and its pending creates, the URNs of those that provably do not exist, with the evidence."""


class PendingCreatesError(StackOperationError):
    """The stack has pending creates from an interrupted update; a person must import or clear them."""


def pending_create_help(stack: str, creates: Sequence[PendingOperation]) -> list[str]:
    """Log lines naming each pending create and the commands that resolve it."""
    lines = []
    for create in creates:
        lines += [
            f"{create.describe()}: {create.urn}",
            "  the create was interrupted: the resource may exist in AWS without Pulumi knowing it. Look for it, then",
            f"  if it exists:         pulumi refresh --stack {stack} --yes --import-pending-creates '{create.urn}' --import-pending-creates <its id>",
            f"  if it does not exist: pulumi refresh --stack {stack} --yes --clear-pending-creates   (clears every pending create of the stack)",
        ]
    return lines


def settle_pending(op: PlannedOperation, ops: Any, out: TextIO, notes: list[str], *, qualified: str,
                   read_state: Optional[Callable[[str], Mapping[str, Any]]] = None, locks: Optional[LockRecovery] = None,
                   absent: Optional[AbsenceCheck] = None) -> None:
    """Resolves what an interrupted update left in the stack's state before `op` runs, adding to `notes` (the report's).

    Raises `StackLockedError` when an update holds the lock (its pending operations are in flight,
    not interrupted), `PendingCreatesError` when pending creates need a person, and
    `StackOperationError` when a refresh left pending updates or deletes behind.
    """
    pending = pending_operations((read_state or ops.export)(op.stack))
    if not pending:
        return
    if locks is not None and locks.locks(op.stack):
        raise StackLockedError(f"{op.stack}: {len(pending)} pending operation(s) belong to an update that holds the lock")
    listing = "; ".join(p.describe() for p in pending)
    out.write(f"# {len(pending)} pending operation(s) left by an interrupted update: {listing}\n")
    if op.action is Action.DRIFT:
        # A drift check changes nothing; the next update resolves or reports them.
        notes.append(f"{len(pending)} pending operation(s) left by an interrupted update (not resolved by a drift check): {listing}")
        return
    creates = [p for p in pending if p.kind == CREATING]
    others = [p for p in pending if p.kind != CREATING]
    proven = dict(absent(op, creates)) if creates and absent is not None else {}
    clear = bool(creates) and all(create.urn in proven for create in creates)
    if others or clear:
        out.write(f"# pulumi refresh{' --clear-pending-creates' if clear else ''}: re-reading the resources\n")
        ops.refresh(op.stack, out, clear_pending_creates=clear)
        left = pending_operations((read_state or ops.export)(op.stack))
        if others:
            notes.append(f"refresh resolved {len(others)} pending operation(s) of an interrupted update: "
                         + "; ".join(p.describe() for p in others))
        if clear:
            notes.append(f"cleared {len(creates)} pending create(s) that provably do not exist: "
                         + "; ".join(f"{c.describe()} ({proven[c.urn]})" for c in creates))
        unresolved = [p for p in left if p.kind != CREATING]
        if unresolved:
            line = f"refresh left {len(unresolved)} pending operation(s): " + "; ".join(p.describe() for p in unresolved)
            raise StackOperationError(f"{op.stack}: {line}", line)
        creates = [p for p in left if p.kind == CREATING]
    if creates:
        for line in pending_create_help(qualified, creates):
            out.write(f"# {line}\n")
        listing = "; ".join(c.describe() for c in creates)
        line = (f"not deployed: {len(creates)} pending create(s) from an interrupted update need a person "
                f"(import or clear them; the commands are in the log): {listing}")
        raise PendingCreatesError(f"{op.stack}: {line}", line)


# --- resuming a rollout ---------------------------------------------------------------------------


def desired_state(op: PlannedOperation, bundle: str) -> str:
    """What a create or update deploys: the program bundle and the stack's rendered config ('' for other actions)."""
    from .ledger import fingerprint

    if op.action not in (Action.CREATE, Action.UPDATE) or op.config is None:
        return ""
    return fingerprint(bundle=bundle, config=op.config, cli_version="", plugins={})


class RunJournal:
    """The creates and updates one run finished: `runner-runs/<run-id>/done/<stack>.json`."""

    def __init__(self, objects: BackendObjects, run_id: str):
        self.objects = objects
        self.run_id = run_id

    def _prefix(self, run_id: str) -> str:
        return f"{RUNS_PREFIX}{run_id}/done/"

    def record(self, stack: str, action: str, desired: str, done_by: str = "") -> None:
        document = {"stack": stack, "action": action, "desired": desired, "at": utc_now().isoformat(), "doneBy": done_by or self.run_id}
        self.objects.write(f"{self._prefix(self.run_id)}{stack}.json", json.dumps(document).encode())

    def entries(self, run_id: str) -> dict[str, dict[str, Any]]:
        found = {}
        for item in self.objects.list(self._prefix(run_id), shallow=True):
            try:
                document = json.loads(self.objects.read(item.key) or b"null")
            except ValueError:
                continue
            if isinstance(document, dict) and isinstance(document.get("stack"), str) and document.get("desired"):
                found[document["stack"]] = document
        return found

    def clear(self) -> None:
        for item in self.objects.list(self._prefix(self.run_id), shallow=True):
            self.objects.delete(item.key)


@dataclass
class Resumption:
    """What the latest earlier `apply`, killed before it finished, already deployed."""

    journal: RunJournal
    bundle: str
    interrupted: str = ""
    """Run id of that run ('' when the latest earlier apply finished, or there is none)."""
    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, journal: RunJournal, markers: RunMarkers, bundle: str, command: str = "apply") -> "Resumption":
        earlier = sorted((m for m in markers.runs() if m.command == command and m.run_id < journal.run_id), key=lambda m: m.run_id)
        if not earlier or earlier[-1].finished is not None:
            return cls(journal, bundle)
        previous = earlier[-1]
        done = journal.entries(previous.run_id)
        log.info("the previous apply, run %s, did not finish (%s); %d create(s)/update(s) it finished are not repeated if unchanged",
                 previous.run_id, previous.status(utc_now(), 600), len(done))
        return cls(journal, bundle, previous.run_id, done)

    def done_earlier(self, op: PlannedOperation) -> str:
        """Why `op` needs not run (done by the interrupted run with this desired state), or ''."""
        entry = self.done.get(op.stack)
        desired = desired_state(op, self.bundle)
        if not entry or not desired or entry.get("desired") != desired:
            return ""
        done_by = str(entry.get("doneBy") or self.interrupted)
        self.journal.record(op.stack, op.action.value, desired, done_by)
        return f"not repeated: run {done_by} {entry.get('action', 'deployed')} this stack with the same program and config at {entry.get('at')} and was interrupted before it finished"

    def succeeded(self, op: PlannedOperation) -> None:
        desired = desired_state(op, self.bundle)
        if desired:
            self.journal.record(op.stack, op.action.value, desired)


# --- what the executor asks -----------------------------------------------------------------------


@dataclass
class Recovery:
    """The executor's recovery hooks: `before` an operation changes a stack, `on_locked` when it met a lock."""

    qualify: Callable[[str], str] = lambda stack: stack
    """Stack name as a person types it in a `pulumi` command (`organization/<project>/<stack>`)."""
    locks: Optional[LockRecovery] = None
    """None when the backend's objects cannot be read (not a DIY backend): locks are only waited for."""
    absent: Optional[AbsenceCheck] = None
    project: str = ""
    resumption: Optional[Resumption] = None
    """None when the run journals nothing (not an apply, or no DIY backend)."""

    def done_earlier(self, op: PlannedOperation) -> str:
        """A note when an interrupted earlier run already did `op` (the executor then reports it succeeded), else ''."""
        if self.resumption is None:
            return ""
        try:
            return self.resumption.done_earlier(op)
        except Exception as exc:  # noqa: BLE001 - resuming saves time; when its bookkeeping fails the operation simply runs
            log.warning("%s: could not carry over the interrupted run's result: %s", op.stack, exc)
            return ""

    def succeeded(self, op: PlannedOperation) -> None:
        if self.resumption is None:
            return
        try:
            self.resumption.succeeded(op)
        except Exception as exc:  # noqa: BLE001 - a missing entry only means the next run repeats this operation
            log.warning("%s: could not journal its success: %s", op.stack, exc)

    def read_state(self, ops: Any, stack: str) -> Mapping[str, Any]:
        """The stack's state in the export form: its checkpoint object when readable, else `pulumi stack export`."""
        from .restore import CHECKPOINT_SUFFIXES, STACKS_DIR, as_deployment, parse_state

        if self.locks is not None and self.project:
            for suffix in CHECKPOINT_SUFFIXES[:2]:  # zstd checkpoints go through the CLI
                key = f"{STACKS_DIR}/{self.project}/{stack}{suffix}"
                try:
                    raw = self.locks.objects.read(key)
                except Exception as exc:  # noqa: BLE001 - the CLI may still read what this client cannot
                    log.warning("%s: could not read %s (%s); asking the CLI", stack, self.locks.objects.where(key), exc)
                    break
                if raw is not None:
                    try:
                        return as_deployment(parse_state(raw, key), key)
                    except UsageError:
                        break
        return ops.export(stack)

    def before(self, op: PlannedOperation, ops: Any, out: TextIO, notes: list[str]) -> None:
        settle_pending(op, ops, out, notes, qualified=self.qualify(op.stack), read_state=lambda stack: self.read_state(ops, stack),
                       locks=self.locks, absent=self.absent)

    def on_locked(self, stack: str, out: TextIO) -> LockCheck:
        if self.locks is None:
            return LockCheck()
        try:
            return self.locks.clear_stale(stack, out)
        except Exception as exc:  # noqa: BLE001 - reading locks is best effort; the lock is then waited for as before
            log.warning("%s: could not inspect its locks: %s", stack, exc)
            out.write(f"# could not inspect the stack's locks: {exc}\n")
            return LockCheck()


def for_run(run_id: str, command: str, *, backend_url: Optional[str], s3_client: Callable[[], Any], org: str, project: str,
            update_seconds: float, kill_grace_seconds: float, build_timeout_minutes: Sequence[float],
            project_dir: Optional[Path] = None, environment: Optional[str] = None, absent: Optional[AbsenceCheck] = None,
            clock: Callable[[], datetime] = utc_now) -> tuple[Recovery, contextlib.AbstractContextManager[None]]:
    """The recovery hooks of one run and the block that keeps its run marker beating.

    An `apply` given its `project_dir` journals its creates and updates and resumes a killed predecessor
    of the same environment (the marker's command names it: `apply --env staging`).

    Without a DIY backend URL (Pulumi Cloud, or the CLI's own login) no lock is judged: Pulumi Cloud
    keeps its own update leases, and pending operations are still settled through the CLI.
    """
    qualify = (lambda stack: f"{org}/{project}/{stack}") if org else (lambda stack: stack)
    objects = backend_objects(backend_url, s3_client)
    if objects is None:
        log.info("no DIY backend objects to read (%s): stack locks are waited for, never cleared", backend_url or "the CLI's login")
        return Recovery(qualify=qualify, absent=absent), contextlib.nullcontext()
    rule = StaleLockRule.derive(update_seconds=update_seconds, kill_grace_seconds=kill_grace_seconds, build_timeout_minutes=build_timeout_minutes)
    markers = RunMarkers(objects, clock=clock)
    locks = LockRecovery(objects, rule, org=org, project=project, markers=markers, clock=clock)
    log.info("run marker %s; a lock older than %s whose run is not alive is cleared", objects.where(f"{RUNS_PREFIX}{run_id}.json"),
             _duration(rule.stale_after_seconds))
    resumption = None
    label = f"{command} --env {environment}" if environment else command
    if command == "apply" and project_dir is not None:
        from .ledger import bundle_digest

        journal = RunJournal(objects, run_id)
        try:
            resumption = Resumption.load(journal, markers, bundle_digest(project_dir), label)
        except Exception as exc:  # noqa: BLE001 - without the predecessor's journal every operation simply runs
            log.warning("could not read the earlier runs' markers (%s): nothing is resumed", exc)
            resumption = Resumption(journal, bundle_digest(project_dir))
    recovery = Recovery(qualify=qualify, locks=locks, absent=absent, project=project, resumption=resumption)
    return recovery, _alive(markers, run_id, label, rule.heartbeat_seconds, resumption)


@contextlib.contextmanager
def _alive(markers: RunMarkers, run_id: str, command: str, heartbeat_seconds: float, resumption: Optional[Resumption]) -> Iterator[None]:
    with markers.running(run_id, command, heartbeat_seconds):
        yield
    if resumption is not None:
        # Finished: the next apply resumes nothing, so the journal has served.
        try:
            resumption.journal.clear()
        except Exception as exc:  # noqa: BLE001 - leftover entries of a finished run are never read
            log.warning("could not delete the journal of run %s: %s", run_id, exc)
