"""Pending operations an interrupted update left in a stack's state: settled by `pulumi refresh`, or,
for pending creates, failed with the commands that resolve them (`settle_pending`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TextIO

from components.shared.errors import StackLockedError, StackOperationError

from .model import Action, PlannedOperation
from .recovery_locks import LockRecovery

# The logger of the module these parts came from: log configuration keeps working.
log = logging.getLogger("runner.recovery")

CREATING = "creating"
PENDING_VERBS = {"creating": "create", "updating": "update", "deleting": "delete", "reading": "read", "importing": "import"}


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
