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

This module holds the journal and the executor's hooks (`Recovery`, `for_run`); beside it are
`recovery_objects.py` (the backend's objects), `recovery_locks.py` (run markers, stale locks) and
`recovery_pending.py` (pending operations).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, TextIO

from components.shared.errors import UsageError

from .model import Action, PlannedOperation
from .recovery_objects import RUNS_PREFIX, BackendObjects, backend_objects, format_duration, utc_now
from .recovery_locks import LockCheck, LockRecovery, RunMarkers, StaleLockRule
from .recovery_pending import AbsenceCheck, settle_pending

log = logging.getLogger(__name__)


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
             format_duration(rule.stale_after_seconds))
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
