"""The runner's ledger during a run: what it reads once, what it records after each operation.

- `LedgerBook.load()` reads every entry once (one listing, parallel reads);
- `LedgerBook.stacks(ops)` lists the backend's stacks with one listing and takes each stack's silo
  name from its entry; only a stack the ledger does not know costs a read of its own (its tag);
- `LedgerBook.record_tags(discovery)` keeps the opt-out verdicts discovery just read;
- `RecordingOperations` wraps the stack operations and records each outcome the moment it is known:
  a successful `up` stores the fingerprint it deployed, a failed one clears it, a drift check stores
  its verdict, a removed stack its retirement. Each record re-reads the entry first, so what another
  run wrote meanwhile (a targeted run's tag verdict) is kept.

A stack that met another run's lock is, before its retry, checked against the ledger again: when the
other run deployed the same desired state meanwhile, the retry does not deploy it a second time
(`coalesced`), which is how two events for one account, or an event during a schedule, coalesce.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Optional, TextIO

from components.shared.errors import StackLockedError

from .ledger import SUCCEEDED, Ledger, LedgerEntry
from .model import Action, Discovery, OperationResult, PlannedOperation, Result, StackInfo, account_of_stack, stack_name
from .stack_ops import SILO_NAME_READERS, StackOperations
from .unchanged import coalesced, tag_verdicts

log = logging.getLogger(__name__)


class LedgerBook:
    """One run's ledger; `ledger=None` (`--ledger off`) makes every method a no-op, as before the ledger.

    `environment` is the run's (None: the default one): entries of other environments' stacks, which
    may share the ledger's location, are left out.
    """

    def __init__(self, ledger: Optional[Ledger], environment: Optional[str] = None):
        self.ledger = ledger
        self.environment = environment
        self.entries: dict[str, LedgerEntry] = {}

    def load(self) -> dict[str, LedgerEntry]:
        found = self.ledger.entries() if self.ledger else {}
        self.entries = {name: entry for name, entry in found.items() if account_of_stack(name, self.environment)}
        return self.entries

    def verdicts(self) -> dict:
        return tag_verdicts(self.entries)

    def stacks(self, ops: StackOperations) -> list[StackInfo]:
        """The backend's stacks (of this environment's naming), silo names from the ledger (a per-stack read only for unknown ones)."""
        if self.ledger is None or not hasattr(ops, "list_stack_names"):
            return [replace(s, environment=self.environment) for s in ops.list_stacks()]
        names = ops.list_stack_names()
        known = {name: entry.silo_name for name, entry in self.entries.items() if entry.silo_name}
        unknown = [name for name in names if account_of_stack(name, self.environment) and name not in known]
        if unknown:
            log.info("%d stack(s) have no silo name in the ledger; reading them from the backend", len(unknown))
            with ThreadPoolExecutor(max_workers=SILO_NAME_READERS, thread_name_prefix="stack-tags") as pool:
                known.update(zip(unknown, pool.map(ops.silo_name, unknown)))
        return [StackInfo(name=name, silo_name=known.get(name), environment=self.environment) for name in names]

    def record_tags(self, discovery: Discovery) -> None:
        """Stores every opt-out verdict this run read (entries of accounts without a stack included)."""
        if self.ledger is None or not discovery.tags_read:
            return
        ledger = self.ledger

        def record(item: tuple[str, Any]) -> None:
            account_id, verdict = item
            stack = stack_name(account_id, self.environment)
            ledger.record_tags(stack=stack, account_id=account_id, opted_out=verdict.opted_out, profile=verdict.profile)

        with ThreadPoolExecutor(max_workers=ledger.readers, thread_name_prefix="ledger") as pool:
            list(pool.map(record, sorted(discovery.tags_read.items())))


class RecordingOperations:
    """`StackOperations` that record each outcome in the ledger (see the module docstring).

    `operations` are the run's planned operations by stack, `wanted` their fingerprints.
    """

    def __init__(self, inner: StackOperations, ledger: Ledger, operations: Mapping[str, PlannedOperation], wanted: Mapping[str, str]):
        self._inner = inner
        self._ledger = ledger
        self._operations = dict(operations)
        self._wanted = dict(wanted)
        self._locked: set[str] = set()
        self._lock = threading.Lock()
        self.coalesced: dict[str, str] = {}
        """Stacks whose retry found the work done by another run, and why."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _op(self, stack: str) -> PlannedOperation:
        return self._operations[stack]

    def up(self, stack: str, log_file: TextIO) -> int:
        op = self._op(stack)
        wanted = self._wanted.get(stack, "")
        with self._lock:
            retry = stack in self._locked
        if retry:
            reason = coalesced(self._ledger.get(stack), wanted)
            if reason:
                log_file.write(f"# {reason}; not deployed again\n")
                with self._lock:
                    self.coalesced[stack] = reason
                return 0
        try:
            changed = self._inner.up(stack, log_file)
        except StackLockedError:
            with self._lock:
                self._locked.add(stack)
            raise
        except BaseException:
            self._deployed(op, wanted, succeeded=False)
            raise
        self._deployed(op, wanted, succeeded=True)
        return changed

    def _deployed(self, op: PlannedOperation, wanted: str, *, succeeded: bool) -> None:
        self._ledger.record_deployment(stack=op.stack, account_id=op.account_id, silo_name=op.silo_name,
                                       action=op.action.value, succeeded=succeeded, wanted=wanted)

    def preview_drift(self, stack: str, log_file: TextIO) -> list[str]:
        changes = self._inner.preview_drift(stack, log_file)  # a failed check proves nothing: nothing recorded
        op = self._op(stack)
        self._ledger.record_drift(stack=stack, account_id=op.account_id, clean=not changes)
        return changes

    def remove(self, stack: str, *, force: bool) -> None:
        self._inner.remove(stack, force=force)
        op = self._op(stack)
        # Kept, not deleted: the silo name and what happened stay on record; the stack is gone from
        # the backend, which is what listing goes by.
        self._ledger.update(stack, lambda entry: replace(
            entry or LedgerEntry(stack=stack, account_id=op.account_id, silo_name=op.silo_name),
            action=op.action.value, result=SUCCEEDED, fingerprint="", drift=None,
        ))


def coalesced_results(results: list[OperationResult], recorder: Optional[RecordingOperations]) -> list[OperationResult]:
    """Results of operations whose retry found their work done, turned into `unchanged` results."""
    if recorder is None or not recorder.coalesced:
        return results
    fixed = []
    for result in results:
        reason = recorder.coalesced.get(result.operation.stack)
        if reason and result.result is Result.SUCCEEDED and result.operation.action in (Action.CREATE, Action.UPDATE):
            result = OperationResult(result.operation, Result.UNCHANGED, result.seconds, 0, reason, result.attempts, result.log_file)
        fixed.append(result)
    return fixed
