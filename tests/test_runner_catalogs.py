"""Master catalogs follow the silos: a master update targeted at the catalogs of the accounts a run changed."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from components.shared.errors import StackOperationError
from offline.fake_stacks import FakeStackOperations, export_of
from offline.harness import DESCENDANT_ACCOUNTS, descendant_accounts
from offline.stacks import run_master
from runner.catalogs import catalog_urns, changed_accounts, update_master_catalogs
from runner.model import Action, OperationResult, PlannedOperation, Result, StackInfo

NEW, GONE, PENDING, KEPT, FAILED = "333333333333", "444444444444", "555555555555", "666666666666", "777777777777"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def result(account: str, action: Action, outcome: Result = Result.SUCCEEDED, destroys_on: str = "") -> OperationResult:
    return OperationResult(PlannedOperation(account, "x", f"silo-{account}", action, "why", "s", destroys_on=destroys_on), outcome)


RESULTS = [
    result(NEW, Action.CREATE),
    result(GONE, Action.RETIRE_DESTROY),
    result(PENDING, Action.RETIRE_DESTROY, destroys_on="2026-03-17"),  # still a silo for a week: catalog stays
    result(KEPT, Action.UPDATE),
    result(FAILED, Action.CREATE, Result.FAILED),
    result("888888888888", Action.RETIRE_FORGET),
]


def test_only_finished_creates_and_retirements_change_catalogs():
    assert changed_accounts(RESULTS) == [NEW, GONE, "888888888888"]


def master_state(*accounts: str) -> dict:
    """The master's export after a deploy that saw these ACTIVE accounts."""
    silos = [{"id": a, "name": f"silo {a}", "state": "ACTIVE"} for a in accounts]
    return export_of(run_master(invokes={DESCENDANT_ACCOUNTS: descendant_accounts(silos)}))


def test_the_targets_are_the_urns_the_master_program_gives_those_catalogs():
    before = master_state(GONE, KEPT)
    urns = catalog_urns(before, [NEW, GONE])
    after = {r["urn"] for r in master_state(NEW, KEPT)["deployment"]["resources"] if r["type"] == "aws:athena/dataCatalog:DataCatalog"}
    existing = {r["urn"] for r in before["deployment"]["resources"] if r["type"] == "aws:athena/dataCatalog:DataCatalog"}
    assert urns[NEW] in after and urns[NEW] not in existing  # created by the targeted update
    assert urns[GONE] in existing and urns[GONE] not in after  # deleted by it
    assert set(urns.values()) == after ^ existing  # exactly the difference; the kept silo's catalog is not touched


def test_the_master_is_updated_once_targeted_and_the_report_measures_event_to_catalog():
    ops = FakeStackOperations([StackInfo("master")], exports={"master": master_state(GONE, KEPT)})
    clock = iter([T0 + timedelta(seconds=95)])
    out = io.StringIO()
    update = update_master_catalogs(ops, "master", RESULTS, {NEW: T0, GONE: T0 + timedelta(seconds=5)}, out, now=lambda: next(clock))
    assert [c for c in ops.calls if c[1] == "master"] == [("export", "master"), ("up", "master")]
    assert ops.targets["master"] == update.targets and len(update.targets) == 3
    assert all(u.endswith(f"::master-analytics-catalog-{a}") for u, a in zip(update.targets, [NEW, GONE, "888888888888"]))
    assert update.since_event == {NEW: 95.0, GONE: 90.0}
    assert update.to_json()["registeredAt"] == "2026-03-10T12:01:35+00:00" and update.error == ""
    assert "--target" in out.getvalue()


def test_nothing_changed_means_no_master_update():
    ops = FakeStackOperations([StackInfo("master")])
    assert update_master_catalogs(ops, "master", [result(KEPT, Action.UPDATE)], {}, io.StringIO(), now=lambda: T0) is None
    assert ops.calls == []


def test_a_failed_master_update_is_reported_not_raised():
    ops = FakeStackOperations([StackInfo("master")], exports={"master": master_state(KEPT)}, failures={"master": "error: AccessDenied: athena:CreateDataCatalog"})
    update = update_master_catalogs(ops, "master", RESULTS, {}, io.StringIO(), now=lambda: T0)
    assert update.error == "master catalogs not updated: error: AccessDenied: athena:CreateDataCatalog"
    assert update.since_event == {}
    undeployed = FakeStackOperations([StackInfo("master")])
    update = update_master_catalogs(undeployed, "master", RESULTS, {}, io.StringIO(), now=lambda: T0)
    assert update.error.startswith("master catalogs not updated: the master stack's state has 0 datalake:analytics:OrgAnalytics")
