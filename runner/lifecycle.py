"""A silo's life after the plan: the grace period before a destroy, and adoption when an account returns.

Both are pure functions over the plan and the ledger (`runner/ledger.py`), applied after
`build_plan` and before execution, plus `record_run`, which writes what a run changed back into the
ledger. Nothing here calls AWS or Pulumi.

**Grace period.** A retire-destroy first revokes the silo's dropzone partners, at once, and only
destroys the stack `runner.retireGraceDays` days (default 7) after the first successful revocation,
kept as `grace_started` in the stack's ledger entry. Until then the plan shows `retire-destroy
pending (destroys on <date>)`, and every run revokes again (the dropzone API still runs, so someone
could have made a partner since). An account that returns inside the window is an update: nothing
was destroyed, and the grace start is cleared. `retireGraceDays: 0` destroys at once.

**Adoption.** A retirement records the retained resources' ids (`runner/retained.py`). When the
account comes back, its create keeps the old silo name (the retained buckets' names contain it) and
passes the ids to the program as `datalake:adopt` (`<type>::<logical name>` → id), so the program
imports those resources (`import_`) instead of failing with AlreadyExists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from components.stack_config import parse_stack_config

from .ledger import GRACE_STARTED, Ledger, LedgerEntry
from .model import Action, OperationResult, Plan, PlannedOperation, Result, StackInfo
from .planning import SILO_NAME_PLACEHOLDER
from .retained import RETAINED, RetainedSilo, Usage, record_retirement

log = logging.getLogger(__name__)

ADOPT_KEY = "datalake:adopt"
"""Stack config key of the retained resources a returning silo imports."""
DEFAULT_GRACE_DAYS = 7


def parse_time(text: Any) -> Optional[datetime]:
    """An ISO 8601 time from the ledger (UTC when it names no zone); None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def destroy_date(entry: Optional[LedgerEntry], now: datetime, grace_days: int) -> str:
    """'' when a retire-destroy may destroy now; else the date (UTC) its grace period ends.

    The grace starts at the first successful revocation; until one succeeded it has not started, so
    the destroy is `grace_days` from now. An unreadable start restarts the grace (never shortens it).
    """
    if grace_days <= 0:
        return ""
    started = parse_time((entry.extra if entry else {}).get(GRACE_STARTED)) or now
    deadline = started + timedelta(days=grace_days)
    return "" if now >= deadline else deadline.date().isoformat()


def _adopting(op: PlannedOperation, entry: Optional[LedgerEntry], template: Mapping[str, Any], taken: set[str]) -> PlannedOperation:
    silo = RetainedSilo.from_entry(entry) if entry else None
    if silo is None or not silo.resources or not silo.silo_name:
        return op
    if silo.silo_name != op.silo_name and silo.silo_name in taken:
        return replace(op, reason=f"{op.reason}; the retained resources of silo {silo.silo_name} are not adopted: "
                                  f"that silo name now belongs to another account")
    # The planned config (template, profile, account file) with the old silo name where the template
    # puts the silo name; validated again, like every planned config.
    config = {**(op.config or {}), **{key: silo.silo_name for key, value in template.items() if value == SILO_NAME_PLACEHOLDER}}
    parse_stack_config(op.stack, config)
    config[ADOPT_KEY] = silo.adoptable
    return replace(op, silo_name=silo.silo_name, config=config,
                   reason=f"account returned: adopts {len(silo.adoptable)} retained resources of silo {silo.silo_name}")


def apply_lifecycle(
    plan: Plan, stacks: Iterable[StackInfo], entries: Mapping[str, LedgerEntry], template: Mapping[str, Any], *,
    now: datetime, grace_days: int = DEFAULT_GRACE_DAYS,
) -> Plan:
    """The plan with grace periods on retire-destroys and adoption on creates of returning accounts."""
    names_in_use = {s.silo_name for s in stacks if s.silo_name} | {
        op.silo_name for op in plan.operations if op.silo_name and op.action is not Action.CREATE
    }
    operations = []
    for op in plan.operations:
        entry = entries.get(op.stack)
        if op.action is Action.RETIRE_DESTROY:
            op = replace(op, destroys_on=destroy_date(entry, now, grace_days))
        elif op.action is Action.CREATE:
            others = names_in_use | {o.silo_name for o in operations if o.silo_name and o.stack != op.stack}
            op = _adopting(op, entry, template, {n for n in others if n})
        elif op.action is Action.UPDATE and entry is not None and GRACE_STARTED in entry.extra:
            op = replace(op, reason=f"account returned within the grace period (retire-destroy pending since "
                                    f"{entry.extra[GRACE_STARTED]}); nothing was destroyed")
        operations.append(op)
    return Plan(tuple(operations), plan.existing_stacks, plan.discovered_accounts, plan.held_reason)


def only_present(op: PlannedOperation, present: Callable[[str, Mapping[str, str]], set[str]]) -> PlannedOperation:
    """The create with `datalake:adopt` narrowed to the retained resources that still exist.

    `present(account_id, adopt)` answers which keys of `adopt` still exist in the account. A resource
    that is gone (a bucket deleted by hand, a key pending deletion) is created instead of imported.
    """
    if op.action is not Action.CREATE or not op.config or not op.config.get(ADOPT_KEY):
        return op
    adopt = dict(op.config[ADOPT_KEY])
    keep = present(op.account_id, adopt)
    if keep == set(adopt):
        return op
    missing = sorted(set(adopt) - keep)
    log.warning("%s: %d retained resource(s) are gone and will be created instead: %s", op.stack, len(missing), ", ".join(missing))
    config = {**op.config, ADOPT_KEY: {key: value for key, value in adopt.items() if key in keep}}
    if not config[ADOPT_KEY]:
        del config[ADOPT_KEY]
    return replace(op, config=config, reason=f"{op.reason} ({len(keep)} still there, {len(missing)} gone: created anew)")


ExportedState = tuple[Mapping[str, Any], str]
"""(the exported state of a retired stack, where it was saved)."""


def record_run(
    ledger: Ledger, entries: Mapping[str, LedgerEntry], results: Iterable[OperationResult], *, now: datetime, region: str,
    exports: Mapping[str, ExportedState], measure: Callable[[str, list[Any]], Usage],
) -> dict[str, LedgerEntry]:
    """Writes what a run changed about silos' lifecycles into the ledger; returns the entries it recorded on.

    - a pending retire-destroy whose revocation succeeded starts its grace (once);
    - a create or update of the account ends any grace (the account is back);
    - a create that adopted retained resources empties the retained record (they are managed again);
    - a finished retirement records what it left behind (measured for retire-destroy; a
      retire-forget's account cannot be reached).
    """
    from .retained import retained_resources

    stamp = now.replace(microsecond=0).isoformat()
    written: dict[str, LedgerEntry] = {}

    for result in results:
        op = result.operation
        if result.result is Result.SKIPPED:
            continue
        known = written.get(op.stack) or entries.get(op.stack)
        if op.action in (Action.CREATE, Action.UPDATE) and not (op.config or {}).get(ADOPT_KEY) and (known is None or GRACE_STARTED not in known.extra):
            continue  # nothing of the lifecycle to record: no grace to end, nothing adopted (no read either)
        # Each record goes through `update`, called here (so the closures below see this loop's `op`):
        # during the run each operation's own record (fingerprint, drift, result: runner/bookkeeping.py)
        # was written over the entry `entries` holds from the start.
        fresh = LedgerEntry(stack=op.stack, account_id=op.account_id, silo_name=op.silo_name)
        if op.action is Action.RETIRE_DESTROY and op.destroys_on:
            if result.result is not Result.SUCCEEDED:
                continue

            def start_grace(entry: Optional[LedgerEntry]) -> LedgerEntry:
                base = entry or fresh
                if GRACE_STARTED in base.extra:
                    return base  # later runs revoke again but do not move the start
                return replace(base, silo_name=op.silo_name or base.silo_name, extra={**base.extra, GRACE_STARTED: stamp})

            written[op.stack] = ledger.update(op.stack, start_grace)
        elif op.action in (Action.CREATE, Action.UPDATE):

            def end_grace(entry: Optional[LedgerEntry]) -> LedgerEntry:
                base = entry or fresh
                extra = {k: v for k, v in base.extra.items() if k != GRACE_STARTED}
                adopted = (op.config or {}).get(ADOPT_KEY)
                if op.action is Action.CREATE and adopted and result.result is Result.SUCCEEDED:
                    record = dict(extra.get(RETAINED) or {})
                    record.update(resources=[], adopted_at=stamp, adopted=sorted(adopted))
                    extra[RETAINED] = record
                return base if extra == base.extra else replace(base, extra=extra)

            written[op.stack] = ledger.update(op.stack, end_grace)
        elif op.action.retires and result.result is Result.SUCCEEDED and op.stack in exports:
            state, where = exports[op.stack]
            if op.action is Action.RETIRE_DESTROY:
                usage = measure(op.account_id, retained_resources(state))  # once, outside the write's retries
            else:
                usage = Usage(measured_at=stamp, error=f"not measured: the account cannot be reached ({op.reason})")
            written[op.stack] = record_retirement(
                ledger, stack=op.stack, account_id=op.account_id, silo_name=op.silo_name, action=op.action.value,
                state=state, region=region, exported_to=where, usage=usage,
            )
    return written
