"""Run markers (`runner-runs/<run-id>.json`, a heartbeat per run) and stack locks: which lock is stale
(`StaleLockRule`) and clearing exactly that lock (`LockRecovery`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional, TextIO

from .recovery_objects import LOCKS_PREFIX, RUNS_PREFIX, BackendObjects, format_duration, parse_time, utc_now

# The logger of the module these parts came from: log configuration keeps working.
log = logging.getLogger("runner.recovery")


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
            return f"alive (heartbeat {format_duration((now - self.last_seen).total_seconds())} ago)"
        return f"stopped: its last heartbeat was at {self.last_seen:%Y-%m-%d %H:%M:%S}Z, {format_duration((now - self.last_seen).total_seconds())} ago"

    @classmethod
    def from_json(cls, document: Any, modified: datetime) -> Optional["RunMarker"]:
        if not isinstance(document, dict):
            return None
        started, heartbeat = parse_time(document.get("started")), parse_time(document.get("heartbeat"))
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
            finished=parse_time(document.get("finished")) if document.get("finished") else None,
            modified=modified,
        )


MARKER_RETENTION_DAYS = 14
"""Days a finished run's marker and journal are kept (its report stays with the reports)."""


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

    def prune(self, keep_days: float = MARKER_RETENTION_DAYS) -> list[str]:
        """Deletes the markers, and the journals below them, of runs that finished more than `keep_days`
        ago; returns their run ids. Without it an hourly schedule leaves 8,760 markers a year, each
        read whenever a lock is judged. A run that never finished keeps its marker: it is what shows
        the locks it left as stale. Markers written since the cut-off are not even read."""
        cutoff = self.clock() - timedelta(days=keep_days)
        pruned = []
        for item in self.objects.list(RUNS_PREFIX, shallow=True):
            if not item.key.endswith(".json") or item.modified > cutoff:
                continue
            try:
                marker = RunMarker.from_json(json.loads(self.objects.read(item.key) or b"null"), item.modified)
            except ValueError:
                continue
            if marker is None or marker.finished is None or marker.finished > cutoff:
                continue
            run_id = item.key[len(RUNS_PREFIX):-len(".json")]
            for journal in self.objects.list(f"{RUNS_PREFIX}{run_id}/"):
                self.objects.delete(journal.key)
            self.objects.delete(item.key)
            pruned.append(run_id)
        return pruned

    @contextlib.contextmanager
    def running(self, run_id: str, command: str, heartbeat_seconds: float) -> Iterator[None]:
        """Marks the run alive for the block: a marker now, a heartbeat every `heartbeat_seconds`, `finished` at the end.

        Also prunes the markers of runs finished long ago (`prune`)."""
        started = self.clock()
        try:
            self.write(run_id, command, started)
        except Exception as exc:  # noqa: BLE001 - without a marker this run's locks are never judged stale: safe, so go on
            log.warning("could not write run marker %s: %s; locks this run leaves will need a person", self.objects.where(self._key(run_id)), exc)
        try:
            pruned = self.prune()
            if pruned:
                log.info("pruned the markers of %d run(s) finished over %d days ago", len(pruned), MARKER_RETENTION_DAYS)
        except Exception as exc:  # noqa: BLE001 - old markers only cost reads: never a reason to stop a run
            log.warning("could not prune old run markers: %s", exc)
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
    """When a stack lock is stale (the formula is in the docstring of runner/recovery.py)."""

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
            created=parse_time(content.get("timestamp")),
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
            return LockVerdict(lock, False, f"{format_duration(age)} old, not older than the longest an operation can take ({format_duration(limit)}): waited for")
        if not owners:
            return LockVerdict(lock, False, f"{format_duration(age)} old, but no runner run accounts for it (created by {lock.holder} at {created}): "
                                            "the runner cannot tell whether that process is alive, so it is not cleared")
        run = owners[-1]
        return LockVerdict(lock, True, f"{format_duration(age)} old (limit {format_duration(limit)}), taken by run {run.run_id} which is "
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
