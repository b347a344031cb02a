"""Execution: run planned operations with bounded concurrency, a failure tolerance and lock retries.

- At most `max_concurrency` operations run at once (each one CLI process in production).
- After more than `failure_tolerance` failures no new operation starts; running ones finish and
  the rest are reported as skipped (StackSets' "failure tolerance", without its stuck operations).
- A stack locked by another update (`StackLockedError`) goes back into the queue with a growing
  delay instead of failing: the schedule and an Organizations event can start runs that overlap.
- Every operation writes its own log file; progress (done/running/failed/remaining) is logged at
  every change.
- With a `Recovery` (runner/recovery.py), pending operations an interrupted update left are settled
  before a stack is changed, and a stale lock (a killed run's) is cleared and the operation retried
  at once; a lock that is not stale is waited for as above. A create or update a killed earlier
  run already finished is reported succeeded without running again.
- A retire-destroy revokes the silo's dropzone partners (`runner/partners.py`) before `destroy`;
  if that fails, or no revocation step was given, the stack is not destroyed. In its grace period
  (`destroys_on` set, `runner/lifecycle.py`) it only revokes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

from components.shared.errors import StackLockedError, StackOperationError

from .model import Action, OperationResult, PlannedOperation, Result
from .partners import RevokePartners, unreachable_note
from .recovery import Recovery
from .stack_ops import ACCOUNT_ID_TAG, ACCOUNT_NAME_TAG, SILO_NAME_TAG, StackOperations

log = logging.getLogger(__name__)

ExportSaver = Callable[[str, dict[str, Any]], str]
"""Stores a retired stack's exported state; returns where it went."""


@dataclass(frozen=True)
class ExecutionSettings:
    """How operations are scheduled."""

    log_dir: Path
    """Directory of the per-operation log files (one `<stack>.log` each)."""
    max_concurrency: int = 8
    """Operations running at once (default 8)."""
    failure_tolerance: int = 3
    """Failures tolerated before no new operation starts (default 3)."""
    lock_attempts: int = 5
    """Attempts of an operation whose stack is locked by another update (default 5)."""
    lock_retry_seconds: float = 30.0
    """Delay before the first retry of a locked stack, doubled at each further one (default 30 s)."""


@dataclass
class Progress:
    """Counts shown while a run goes on."""

    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    history: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.running

    def report(self) -> None:
        snapshot = (self.done, self.running, self.failed, self.remaining)
        self.history.append(snapshot)
        log.info("progress: %d done, %d running, %d failed, %d remaining", *snapshot)


def _tags(op: PlannedOperation) -> dict[str, str]:
    return {ACCOUNT_ID_TAG: op.account_id, ACCOUNT_NAME_TAG: op.account_name or "-", SILO_NAME_TAG: op.silo_name or ""}


@dataclass
class Outcome:
    """What one operation did: resources changed, drift lines, notes for the report.

    Kept across the lock retries of one operation: `steps` names the side effects already done
    (stack created, config written, state exported, partners revoked), so a retry after a locked
    `up`, `destroy` or `remove` resumes at the step that met the lock instead of repeating them.
    """

    changed: int = 0
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: set[str] = field(default_factory=set)

    def once(self, step: str, call: Callable[[], Any]) -> None:
        """Runs `call` unless `step` already succeeded in an earlier attempt."""
        if step not in self.steps:
            call()
            self.steps.add(step)


def perform(
    op: PlannedOperation,
    ops: StackOperations,
    out: TextIO,
    save_export: ExportSaver,
    revoke_partners: Optional[RevokePartners] = None,
    done: Optional[Outcome] = None,
    recovery: Optional[Recovery] = None,
) -> Outcome:
    """Runs one operation, filling in `done` as it goes (so a failure keeps what already happened). Raises on failure.

    Given the `done` of an earlier attempt, steps it records are not run again.
    """
    done = done if done is not None else Outcome()
    out.write(f"# {op.action.value} {op.stack} ({op.account_name or 'unknown'}): {op.reason}\n")
    if done.steps:
        out.write(f"# resuming; already done: {', '.join(sorted(done.steps))}\n")
    if op.action is Action.CREATE:
        done.once("create", lambda: ops.create_stack(op.stack, _tags(op)))
    if op.action in (Action.CREATE, Action.UPDATE, Action.DRIFT):
        assert op.config is not None, f"{op.stack}: {op.action.value} needs a config"
        done.once("config", lambda: ops.set_config(op.stack, op.config))
    if recovery is not None and op.action in (Action.UPDATE, Action.DRIFT):
        recovery.before(op, ops, out, done.notes)  # every attempt: a lock met may have been an update that then died
    if op.action in (Action.CREATE, Action.UPDATE):
        done.changed = ops.up(op.stack, out)
        return done
    if op.action is Action.DRIFT:
        done.changes = ops.preview_drift(op.stack, out)
        done.changed = len(done.changes)
        return done
    if op.action is Action.RETIRE_DESTROY and revoke_partners is None:
        # Fail closed: a destroy without revocation would leave partners with keys to retained data.
        raise StackOperationError(f"{op.stack}: no partner revocation step", "stack not destroyed: the runner was given no partner revocation step")
    if op.action is Action.RETIRE_DESTROY and op.destroys_on:
        # In its grace period (runner/lifecycle.py): partners lose access now, the stack stays.
        assert revoke_partners is not None
        done.once("revoke", lambda: done.notes.extend(revoke_partners(op, out)))
        done.notes.append(f"retire-destroy pending: the stack is destroyed on {op.destroys_on} unless the account returns")
        out.write(f"# {done.notes[-1]}\n")
        return done

    def export() -> None:
        where = save_export(op.stack, ops.export(op.stack))
        out.write(f"# state exported to {where}\n")

    # Retirements: keep a copy of the state first; if that fails, nothing is removed.
    done.once("export", export)
    if op.action is Action.RETIRE_DESTROY:
        assert revoke_partners is not None
        if recovery is not None and "destroy" not in done.steps:
            recovery.before(op, ops, out, done.notes)
        # Raises, and then the stack stays as it is.
        done.once("revoke", lambda: done.notes.extend(revoke_partners(op, out)))

        def destroy() -> None:
            done.changed = ops.destroy(op.stack, out)

        done.once("destroy", destroy)
        ops.remove(op.stack, force=False)
        return done
    # Forget: the account cannot be reached, and destroy would replay the stored assumeRole
    # (pulumi/pulumi-aws#1543) and fail; remove the stack with its resources from state.
    ops.remove(op.stack, force=True)
    done.notes.append(unreachable_note(op))
    out.write(f"# {done.notes[-1]}\n")
    return done


@dataclass
class _Queued:
    op: PlannedOperation
    attempts: int = 0
    not_before: float = 0.0
    seconds: float = 0.0
    done: Outcome = field(default_factory=Outcome)
    """Kept across lock retries: what earlier attempts already did (and their notes)."""


def execute(
    operations: Iterable[PlannedOperation],
    ops: StackOperations,
    settings: ExecutionSettings,
    save_export: ExportSaver,
    *,
    revoke_partners: Optional[RevokePartners] = None,
    progress: Optional[Progress] = None,
    clock: Callable[[], float] = time.monotonic,
    recovery: Optional[Recovery] = None,
) -> list[OperationResult]:
    """Runs every operation that is neither held nor unchanged; returns one result per operation, in plan order.

    `revoke_partners` runs before every retire-destroy's `destroy`; without it retire-destroys fail.
    """
    operations = list(operations)
    results: dict[str, OperationResult] = {}
    pending: list[_Queued] = []
    for op in operations:
        if op.held:
            results[op.stack] = OperationResult(op, Result.SKIPPED, error=f"held: {op.held}")
        elif op.unchanged:
            results[op.stack] = OperationResult(op, Result.UNCHANGED, error=op.unchanged)
        elif recovery is not None and (earlier := recovery.done_earlier(op)):
            results[op.stack] = OperationResult(op, Result.SUCCEEDED, notes=[earlier])
        else:
            pending.append(_Queued(op))
    progress = progress or Progress(total=len(pending))
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    cond = threading.Condition()

    def finish(item: _Queued, result: OperationResult) -> None:
        with cond:
            progress.running -= 1
            if result.result is Result.FAILED:
                progress.failed += 1
            progress.done += 1
            results[item.op.stack] = result
            progress.report()
            cond.notify_all()

    def work(item: _Queued) -> None:
        try:
            attempt(item)
        except Exception as exc:  # noqa: BLE001 - e.g. an unwritable log dir: the scheduler must still hear back
            log.exception("%s: the runner failed around the operation", item.op.stack)
            finish(item, OperationResult(item.op, Result.FAILED, error=f"runner error: {type(exc).__name__}: {exc}", attempts=item.attempts))

    def attempt(item: _Queued) -> None:
        item.attempts += 1
        path = settings.log_dir / f"{item.op.stack}.log"
        started = time.perf_counter()
        done = item.done
        with path.open("a") as out:
            try:
                perform(item.op, ops, out, save_export, revoke_partners, done, recovery)
                outcome, error = (Result.DRIFTED if done.changes else Result.SUCCEEDED), ""
                if recovery is not None:
                    recovery.succeeded(item.op)
            except StackLockedError as exc:
                item.seconds += time.perf_counter() - started
                check = recovery.on_locked(item.op.stack, out) if recovery is not None else None
                if check is not None:
                    done.notes.extend(check.cleared)
                if item.attempts < settings.lock_attempts:
                    delay = 0.0 if check is not None and check.retry_now else settings.lock_retry_seconds * 2 ** (item.attempts - 1)
                    out.write(f"# locked by another update; retry {item.attempts + 1} in {delay:.1f}s\n")
                    log.info("%s is locked by another update; retrying in %.1fs", item.op.stack, delay)
                    with cond:
                        item.not_before = clock() + delay
                        progress.running -= 1
                        pending.append(item)
                        cond.notify_all()
                    return
                outcome, error = Result.FAILED, f"{exc} ({item.attempts} attempts)"
                if check is not None and check.held:
                    error += f"; {check.held[0]}"
            except StackOperationError as exc:
                outcome, error = Result.FAILED, exc.log_line
            except Exception as exc:  # noqa: BLE001 - a thread boundary: record the bug against its account, keep the run going
                log.exception("%s: unexpected error", item.op.stack)
                outcome, error = Result.FAILED, f"unexpected {type(exc).__name__}: {exc}"
            if error:
                out.write(f"# FAILED: {error}\n")
        item.seconds += time.perf_counter() - started
        finish(item, OperationResult(item.op, outcome, item.seconds, done.changed, error, item.attempts, str(path), done.changes, done.notes))

    with ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="stack-op") as pool:
        with cond:
            while True:
                stopped = progress.failed > settings.failure_tolerance
                now = clock()
                ready = [item for item in pending if item.not_before <= now]
                if not stopped and ready and progress.running < settings.max_concurrency:
                    item = ready[0]
                    pending.remove(item)
                    progress.running += 1
                    pool.submit(work, item)
                    continue
                if progress.running == 0 and (stopped or not pending):
                    break
                waits = [item.not_before - now for item in pending if item.not_before > now]
                cond.wait(timeout=min(waits) if waits and not stopped else None)

    for item in pending:
        results[item.op.stack] = OperationResult(
            item.op,
            Result.SKIPPED,
            attempts=item.attempts,
            error=f"not started: {progress.failed} failures exceeded the failure tolerance ({settings.failure_tolerance})",
        )
    return [results[op.stack] for op in operations]
