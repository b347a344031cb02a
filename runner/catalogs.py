"""The master's per-silo Athena catalogs follow the silos: a targeted master update after silo changes.

The master program declares one GLUE data catalog per ACTIVE account of the silo OU, asked from
Organizations at deploy time (`components/master/analytics.py`). So a new silo is queryable from the master
only after the master is deployed again, and a retired silo's catalog stays until then. After a run
in which a create or a retirement (a destroy or a forget, not a pending one) succeeded, the runner
updates the master stack through the same `StackOperations` interface, **targeted at exactly the
catalogs of the accounts that changed** (`pulumi up --target <urn>`, creating or deleting them):

- nothing else in the master is deployed by a silo run (a master change waiting for its pipeline
  stays waiting), and the runner's build role needs only `athena:*DataCatalog` on the prefix's
  catalogs, not the master's whole deploy permissions;
- the catalog set is still the master program's own rule, evaluated in that update, so the runner
  and `pulumi up -s master` never disagree about which catalogs exist.

The URNs come from the master's `OrgAnalytics` component as the master's export records it (its
logical name is the master's, `<component>-catalog-<account id>`), so they stay right if the
component is renamed with an alias. The report gets, per changed account, the seconds from the
account event (the event time the trigger passes, else when discovery read the account) to the end
of that update: "catalog registered".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional, TextIO

from components.shared.errors import StackOperationError

from .model import Action, OperationResult, Result

log = logging.getLogger(__name__)

ORG_ANALYTICS = "datalake:analytics:OrgAnalytics"
DATA_CATALOG = "aws:athena/dataCatalog:DataCatalog"


def changed_accounts(results: Iterable[OperationResult]) -> list[str]:
    """Accounts whose catalog may change: a create, a retire-forget or a finished retire-destroy that succeeded."""
    changed = set()
    for r in results:
        op = r.operation
        if r.result is not Result.SUCCEEDED:
            continue
        if op.action is Action.CREATE or op.action is Action.RETIRE_FORGET or (op.action is Action.RETIRE_DESTROY and not op.destroys_on):
            changed.add(op.account_id)
    return sorted(changed)


def catalog_urns(master_state: Mapping[str, Any], account_ids: Sequence[str]) -> dict[str, str]:
    """Account id → URN of its catalog in the master stack, built from the master's `OrgAnalytics` URN.

    Raises `StackOperationError` when the master state has no `OrgAnalytics` (not deployed yet).
    """
    resources = (master_state.get("deployment") or {}).get("resources") or []
    parents = [r["urn"] for r in resources if r.get("type") == ORG_ANALYTICS]
    if len(parents) != 1:
        raise StackOperationError(
            f"master state has {len(parents)} {ORG_ANALYTICS} components",
            f"master catalogs not updated: the master stack's state has {len(parents)} {ORG_ANALYTICS}; deploy the master first",
        )
    chain, name = parents[0].rsplit("::", 1)
    return {account: f"{chain}${DATA_CATALOG}::{name}-catalog-{account}" for account in account_ids}


@dataclass
class CatalogUpdate:
    """What the master catalog update did."""

    accounts: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    changed: int = 0
    registered_at: str = ""
    seconds: float = 0.0
    since_event: dict[str, float] = field(default_factory=dict)
    """Account id → seconds from its account event to the end of the update ("catalog registered")."""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "targets": self.targets,
            "changed": self.changed,
            "registeredAt": self.registered_at,
            "seconds": round(self.seconds, 3),
            "secondsSinceEvent": {k: round(v, 3) for k, v in self.since_event.items()},
            "error": self.error,
        }


def update_master_catalogs(
    ops: Any, master_stack: str, results: Iterable[OperationResult], event_times: Mapping[str, datetime], out: TextIO,
    *, now: Callable[[], datetime],
) -> Optional[CatalogUpdate]:
    """Targeted `up` of the master's catalogs of the accounts this run changed; None when none changed.

    `event_times` maps an account to when its change happened (the triggering event's time, else the
    discovery time). A failure is recorded in the result, never raised: the silos are done either way.
    """
    accounts = changed_accounts(results)
    if not accounts:
        return None
    update = CatalogUpdate(accounts=accounts)
    started = time.perf_counter()
    try:
        urns = catalog_urns(ops.export(master_stack), accounts)
        update.targets = [urns[a] for a in accounts]
        out.write(f"# master catalogs: up {master_stack} --target {' --target '.join(update.targets)}\n")
        update.changed = ops.up(master_stack, out, targets=update.targets)
    except StackOperationError as exc:
        update.error = exc.log_line if exc.log_line.startswith("master catalogs") else f"master catalogs not updated: {exc.log_line}"
        log.error("%s", update.error)
        return update
    finally:
        update.seconds = time.perf_counter() - started
    registered = now()
    update.registered_at = registered.replace(microsecond=0).isoformat()
    update.since_event = {a: (registered - event_times[a]).total_seconds() for a in accounts if a in event_times}
    log.info("master catalogs of %d account(s) brought up to date in %.1fs (%d changed)", len(accounts), update.seconds, update.changed)
    return update
