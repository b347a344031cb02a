"""Grace periods and adoption as pure functions over the plan and the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from runner.ledger import Ledger, LedgerEntry
from runner.lifecycle import ADOPT_KEY, GRACE_STARTED, apply_lifecycle, destroy_date, only_present, record_run
from runner.model import Action, OperationResult, Plan, PlannedOperation, Result, StackInfo
from runner.planning import load_template, seed_config
from runner.report import plan_table
from runner.retained import RETAINED, Usage

TEMPLATE = load_template(Path(__file__).resolve().parent.parent / "Pulumi.silo-template.yaml")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
ACCOUNT, OTHER = "111111111111", "222222222222"
STACK = f"silo-{ACCOUNT}"


def entry(**extra) -> LedgerEntry:
    return LedgerEntry(stack=STACK, account_id=ACCOUNT, silo_name="sales", extra=extra)


def retire() -> PlannedOperation:
    return PlannedOperation(ACCOUNT, "Sales", STACK, Action.RETIRE_DESTROY, "account moved out of the silo OU", silo_name="sales")


def create(silo: str = "sales-2") -> PlannedOperation:
    return PlannedOperation(ACCOUNT, "Sales Renamed", STACK, Action.CREATE, "new ACTIVE account in the silo OU", silo, seed_config(TEMPLATE, ACCOUNT, silo))


def plan_of(*ops: PlannedOperation) -> Plan:
    return Plan(tuple(ops), existing_stacks=1, discovered_accounts=1)


@pytest.mark.parametrize(
    "started, days, expected",
    [
        (None, 7, "2026-03-17"),  # the grace starts with the first revocation: this run
        ((NOW - timedelta(days=3)).isoformat(), 7, "2026-03-14"),
        ((NOW - timedelta(days=7, seconds=1)).isoformat(), 7, ""),  # over: destroy now
        ((NOW - timedelta(days=7)).isoformat(), 7, ""),
        ((NOW - timedelta(days=6, hours=23)).isoformat(), 7, "2026-03-10"),  # one hour left: destroys later today
        ("not a time", 7, "2026-03-17"),  # unreadable restarts the grace, never shortens it
        (None, 0, ""),  # retireGraceDays 0: destroy at once
        ("2026-03-01T00:00:00", 30, "2026-03-31"),  # a time without a zone is UTC
    ],
)
def test_the_destroy_date_follows_the_grace_start(started, days, expected):
    ledger_entry = entry(**({GRACE_STARTED: started} if started else {}))
    assert destroy_date(ledger_entry, NOW, days) == expected


def test_a_retire_destroy_in_its_grace_shows_pending_with_the_date():
    plan = apply_lifecycle(plan_of(retire()), [StackInfo(STACK, "sales")], {}, TEMPLATE, now=NOW, grace_days=7)
    [op] = plan.operations
    assert (op.action, op.destroys_on, op.label) == (Action.RETIRE_DESTROY, "2026-03-17", "retire-destroy pending (destroys on 2026-03-17)")
    assert op.partners == "revoked now, stack destroyed on 2026-03-17 (/datalake/partners/sales/)"
    assert op.to_json()["label"] == "retire-destroy pending (destroys on 2026-03-17)"
    assert "retire-destroy pending (destroys on 2026-03-17)" in plan_table(plan)
    later = apply_lifecycle(plan_of(retire()), [], {STACK: entry(**{GRACE_STARTED: "2026-03-01T12:00:00+00:00"})}, TEMPLATE, now=NOW)
    assert later.operations[0].destroys_on == "" and later.operations[0].label == "retire-destroy"


def test_an_account_back_within_the_grace_is_an_update_that_says_so():
    update = PlannedOperation(ACCOUNT, "Sales", STACK, Action.UPDATE, "ACTIVE account with a stack", "sales", seed_config(TEMPLATE, ACCOUNT, "sales"))
    plan = apply_lifecycle(plan_of(update), [], {STACK: entry(**{GRACE_STARTED: "2026-03-08T12:00:00+00:00"})}, TEMPLATE, now=NOW)
    assert plan.operations[0].action is Action.UPDATE
    assert plan.operations[0].reason == "account returned within the grace period (retire-destroy pending since 2026-03-08T12:00:00+00:00); nothing was destroyed"


RETAINED_RECORD = {
    "action": "retire-destroy", "retired_at": "2026-02-01T00:00:00+00:00", "region": "eu-west-1",
    "resources": [
        {"urn": "urn:a", "type": "aws:s3/bucket:Bucket", "name": "silo-sales-storage-raw-bucket", "id": f"datalake-sales-raw-{ACCOUNT}"},
        {"urn": "urn:b", "type": "aws:kms/key:Key", "name": "silo-sales-storage-key-key", "id": "1234abcd"},
    ],
}


def test_a_returning_account_keeps_its_silo_name_and_adopts_the_retained_ids():
    plan = apply_lifecycle(plan_of(create("sales-2")), [], {STACK: entry(**{RETAINED: RETAINED_RECORD})}, TEMPLATE, now=NOW)
    [op] = plan.operations
    assert op.silo_name == "sales" and op.config["datalake:siloName"] == "sales"
    assert op.config[ADOPT_KEY] == {
        "aws:s3/bucket:Bucket::silo-sales-storage-raw-bucket": f"datalake-sales-raw-{ACCOUNT}",
        "aws:kms/key:Key::silo-sales-storage-key-key": "1234abcd",
    }
    assert op.reason == "account returned: adopts 2 retained resources of silo sales"


def test_no_adoption_when_the_silo_name_now_belongs_to_another_account_or_everything_was_purged():
    other = PlannedOperation(OTHER, "Sales", f"silo-{OTHER}", Action.UPDATE, "ACTIVE account with a stack", "sales", {})
    plan = apply_lifecycle(plan_of(create("sales-1111"), other), [StackInfo(f"silo-{OTHER}", "sales")],
                           {STACK: entry(**{RETAINED: RETAINED_RECORD})}, TEMPLATE, now=NOW)
    op = plan.operations[0]
    assert op.silo_name == "sales-1111" and ADOPT_KEY not in op.config
    assert op.reason.endswith("the retained resources of silo sales are not adopted: that silo name now belongs to another account")
    purged = {**RETAINED_RECORD, "resources": [], "purged_at": "2026-03-01T00:00:00+00:00"}
    plan = apply_lifecycle(plan_of(create("sales-2")), [], {STACK: entry(**{RETAINED: purged})}, TEMPLATE, now=NOW)
    assert plan.operations[0].silo_name == "sales-2" and ADOPT_KEY not in plan.operations[0].config


def test_only_retained_resources_that_still_exist_are_adopted():
    [op] = apply_lifecycle(plan_of(create()), [], {STACK: entry(**{RETAINED: RETAINED_RECORD})}, TEMPLATE, now=NOW).operations
    asked = []

    def present(account, adopt):
        asked.append((account, dict(adopt)))
        return {"aws:kms/key:Key::silo-sales-storage-key-key"}

    narrowed = only_present(op, present)
    assert asked == [(ACCOUNT, op.config[ADOPT_KEY])]
    assert narrowed.config[ADOPT_KEY] == {"aws:kms/key:Key::silo-sales-storage-key-key": "1234abcd"}
    assert narrowed.reason.endswith("(1 still there, 1 gone: created anew)")
    assert ADOPT_KEY not in only_present(op, lambda account, adopt: set()).config
    assert only_present(op, lambda account, adopt: set(adopt)) is op


def test_the_ledger_remembers_the_grace_start_once_and_forgets_it_when_the_account_returns(tmp_path):
    ledger = Ledger(str(tmp_path))
    pending = apply_lifecycle(plan_of(retire()), [], {}, TEMPLATE, now=NOW).operations[0]

    def run(op, result, when, entries=None):
        return record_run(ledger, entries if entries is not None else ledger.entries(), [OperationResult(op, result)],
                          now=when, region="eu-west-1", exports={}, measure=lambda a, r: Usage())

    run(pending, Result.FAILED, NOW)  # the revocation failed: the grace has not started
    assert ledger.get(STACK) is None
    run(pending, Result.SUCCEEDED, NOW)
    assert ledger.get(STACK).extra[GRACE_STARTED] == "2026-03-10T12:00:00+00:00"
    run(pending, Result.SUCCEEDED, NOW + timedelta(days=2))  # later runs revoke again but do not move the start
    assert ledger.get(STACK).extra[GRACE_STARTED] == "2026-03-10T12:00:00+00:00"
    update = PlannedOperation(ACCOUNT, "Sales", STACK, Action.UPDATE, "back", "sales", {})
    run(update, Result.FAILED, NOW + timedelta(days=3))  # even a failed update means the account is back
    assert GRACE_STARTED not in ledger.get(STACK).extra


def test_a_finished_retirement_records_what_stays_and_a_returning_create_takes_it_back(tmp_path):
    ledger = Ledger(str(tmp_path))
    state = {"deployment": {"resources": [
        {"urn": "urn:pulumi:x::datalake::aws:s3/bucket:Bucket::silo-sales-storage-raw-bucket", "custom": True, "type": "aws:s3/bucket:Bucket",
         "id": "datalake-sales-raw", "retainOnDelete": True},
        {"urn": "urn:pulumi:x::datalake::aws:lambda/function:Function::f", "custom": True, "type": "aws:lambda/function:Function", "id": "f"},
    ]}}
    measured = []
    destroy = replace_op(retire(), destroys_on="")
    ledger.put(entry(**{GRACE_STARTED: "2026-03-01T00:00:00+00:00"}))
    record_run(ledger, ledger.entries(), [OperationResult(destroy, Result.SUCCEEDED)], now=NOW, region="eu-west-1",
               exports={STACK: (state, "out/exports/x.json")}, measure=lambda account, resources: measured.append((account, resources)) or Usage(measured_at="m"))
    record = ledger.get(STACK).extra[RETAINED]
    assert [r["id"] for r in record["resources"]] == ["datalake-sales-raw"] and record["exported_to"] == "out/exports/x.json"
    assert GRACE_STARTED not in ledger.get(STACK).extra
    assert measured[0][0] == ACCOUNT and [r.id for r in measured[0][1]] == ["datalake-sales-raw"]

    [back] = apply_lifecycle(plan_of(create()), [], ledger.entries(), TEMPLATE, now=NOW).operations
    assert back.config[ADOPT_KEY] == {"aws:s3/bucket:Bucket::silo-sales-storage-raw-bucket": "datalake-sales-raw"}
    record_run(ledger, ledger.entries(), [OperationResult(back, Result.FAILED)], now=NOW, region="eu-west-1", exports={}, measure=None)
    assert ledger.get(STACK).extra[RETAINED]["resources"]  # a failed create adopted nothing yet
    record_run(ledger, ledger.entries(), [OperationResult(back, Result.SUCCEEDED)], now=NOW, region="eu-west-1", exports={}, measure=None)
    record = ledger.get(STACK).extra[RETAINED]
    assert record["resources"] == [] and record["adopted"] == ["aws:s3/bucket:Bucket::silo-sales-storage-raw-bucket"]


def test_a_retire_forget_is_recorded_without_reaching_the_account(tmp_path):
    ledger = Ledger(str(tmp_path))
    forget = PlannedOperation(ACCOUNT, "Sales", STACK, Action.RETIRE_FORGET, "account is SUSPENDED", silo_name="sales")
    record_run(ledger, {}, [OperationResult(forget, Result.SUCCEEDED)], now=NOW, region="eu-west-1",
               exports={STACK: ({"deployment": {"resources": []}}, "x")}, measure=None)
    assert ledger.get(STACK).extra[RETAINED]["usage"]["error"] == "not measured: the account cannot be reached (account is SUSPENDED)"


def replace_op(op: PlannedOperation, **changes) -> PlannedOperation:
    from dataclasses import replace

    return replace(op, **changes)


def test_the_lifecycle_record_keeps_what_the_operation_recorded_during_the_run(tmp_path):
    """Two writers of one entry: the per-operation record (runner/bookkeeping.py) lands during the run,
    the lifecycle record after it; the second must not write the start-of-run snapshot back."""
    ledger = Ledger(str(tmp_path))
    ledger.put(entry(**{GRACE_STARTED: "2026-03-08T12:00:00+00:00"}))
    snapshot = ledger.entries()  # what the run read at its start
    update = PlannedOperation(ACCOUNT, "Sales", STACK, Action.UPDATE, "back", "sales", {})
    ledger.record_deployment(stack=STACK, account_id=ACCOUNT, silo_name="sales", action="update",
                             succeeded=True, wanted="sha256:deployed")
    record_run(ledger, snapshot, [OperationResult(update, Result.SUCCEEDED)], now=NOW, region="eu-west-1",
               exports={}, measure=lambda a, r: Usage())
    stored = ledger.get(STACK)
    assert GRACE_STARTED not in stored.extra  # the account is back
    assert (stored.fingerprint, stored.result, stored.action) == ("sha256:deployed", "succeeded", "update")


def test_an_update_without_lifecycle_news_reads_and_writes_nothing(tmp_path):
    ledger = Ledger(str(tmp_path))
    reads = []
    ledger.get = lambda stack: reads.append(stack)  # type: ignore[method-assign]
    update = PlannedOperation(ACCOUNT, "Sales", STACK, Action.UPDATE, "ACTIVE account with a stack", "sales", {})
    written = record_run(ledger, {STACK: entry()}, [OperationResult(update, Result.SUCCEEDED)], now=NOW, region="eu-west-1",
                         exports={}, measure=lambda a, r: Usage())
    assert written == {} and reads == [] and not list(tmp_path.iterdir())
