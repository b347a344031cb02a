"""Skipping unchanged stacks: per-operation fingerprints, the ledger's verdict, --force, coalescing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from offline.stacks import PROJECT_DIR
from runner.ledger import GRACE_STARTED, DriftCheck, Ledger, LedgerEntry
from runner.model import Account, Action, Discovery, StackInfo
from runner.planning import PlanSettings, build_plan, load_template
from runner.unchanged import ALL, DesiredState, coalesced, mark_unchanged, tag_verdicts

TEMPLATE = load_template(PROJECT_DIR / "Pulumi.silo-template.yaml")
DESIRED = DesiredState(bundle="sha256:b1", cli_version="3.272.0", plugins={"aws": "7.51.1", "awsx": "3.11.0"})


def plan_of(n_new: int = 1, n_existing: int = 4, template=TEMPLATE):
    accounts = [Account(f"{i:012d}", f"Team {i}", "ACTIVE", "silos") for i in range(1, n_new + n_existing + 1)]
    stacks = [StackInfo(f"silo-{i:012d}", f"team-{i}") for i in range(n_new + 1, n_new + n_existing + 1)]
    return build_plan(Discovery("ou-ab12-11111111", tuple(accounts)), stacks, template, PlanSettings())


def deployed(ledger: Ledger, plan, desired=DESIRED):
    """Every create/update of `plan` recorded as a successful deployment of its fingerprint."""
    entries = {}
    for op in plan.operations:
        entries[op.stack] = ledger.record_deployment(stack=op.stack, account_id=op.account_id, silo_name=op.silo_name,
                                                     action=op.action.value, succeeded=True, wanted=desired.of(op))
    return entries


def unchanged(plan) -> dict[str, str]:
    return {op.account_id[-1]: op.unchanged for op in plan.operations}


def test_an_update_whose_entry_matches_is_marked_unchanged_and_a_create_never_is(tmp_path):
    plan = plan_of()
    entries = deployed(Ledger(str(tmp_path)), plan)
    marked, wanted = mark_unchanged(plan, entries, DESIRED)
    reasons = unchanged(marked)
    assert reasons["1"] == ""  # create: the stack does not exist, whatever the ledger says
    assert all(reasons[d].startswith("unchanged (since 20") for d in "2345")
    assert [op.stack for op in marked.runnable()] == ["silo-000000000001"]
    assert set(wanted) == {op.stack for op in plan.operations} and len(set(wanted.values())) == 5


@pytest.mark.parametrize(
    "change",
    [
        lambda d: replace(d, bundle="sha256:b2"),
        lambda d: replace(d, cli_version="3.273.0"),
        lambda d: replace(d, plugins={**d.plugins, "aws": "7.52.0"}),
        lambda d: replace(d, upstream={"masterOutputs": "sha256:m2"}),
    ],
)
def test_any_change_of_program_versions_or_upstream_outputs_runs_every_update(tmp_path, change):
    plan = plan_of()
    entries = deployed(Ledger(str(tmp_path)), plan)
    marked, _ = mark_unchanged(plan, entries, change(DESIRED))
    assert len(marked.runnable()) == 5


def test_a_template_change_runs_every_update_and_reordering_it_does_not(tmp_path):
    plan = plan_of()
    entries = deployed(Ledger(str(tmp_path)), plan)
    reordered = dict(reversed(list(TEMPLATE.items())))
    assert len(mark_unchanged(plan_of(template=reordered), entries, DESIRED)[0].runnable()) == 1
    changed = {**TEMPLATE, "datalake:storage": {**TEMPLATE["datalake:storage"], "dropzoneExpirationDays": 14}}
    assert len(mark_unchanged(plan_of(template=changed), entries, DESIRED)[0].runnable()) == 5


def test_missing_corrupt_failed_or_drifted_entries_are_never_skipped(tmp_path):
    ledger = Ledger(str(tmp_path))
    plan = plan_of(n_new=0, n_existing=5)
    deployed(ledger, plan)
    stacks = [op.stack for op in plan.operations]
    ledger.delete(stacks[0])  # missing
    (tmp_path / f"{stacks[1]}.json").write_text('{"version": 1, "stack": "x"}')  # corrupt
    ledger.record_deployment(stack=stacks[2], account_id="3", silo_name="team-3", action="update",
                             succeeded=False, wanted=DESIRED.of(plan.operations[2]))  # failed
    ledger.record_drift(stack=stacks[3], account_id="4", clean=False)  # drifted

    marked, _ = mark_unchanged(plan, ledger.entries(), DESIRED)

    assert [op.stack for op in marked.runnable()] == stacks[:4]
    assert marked.operations[4].unchanged.startswith("unchanged (since ")


def test_an_account_back_from_a_grace_period_is_deployed_even_when_unchanged(tmp_path):
    """Its partners were revoked while it was leaving: an `up` must run, whatever the fingerprint says."""
    ledger = Ledger(str(tmp_path))
    plan = plan_of(n_new=0, n_existing=2)
    entries = deployed(ledger, plan)
    back = plan.operations[0].stack
    entries[back] = ledger.put(replace(entries[back], extra={GRACE_STARTED: "2026-03-08T12:00:00+00:00"}))
    marked, _ = mark_unchanged(plan, entries, DESIRED)
    assert [op.stack for op in marked.runnable()] == [back]


def test_force_all_or_named_accounts(tmp_path):
    plan = plan_of()
    entries = deployed(Ledger(str(tmp_path)), plan)
    assert len(mark_unchanged(plan, entries, DESIRED, force={ALL})[0].runnable()) == 5
    named = mark_unchanged(plan, entries, DESIRED, force={"000000000003"})[0]
    assert [op.account_id for op in named.runnable()] == ["000000000001", "000000000003"]


def test_held_and_retiring_operations_are_not_marked(tmp_path):
    plan = plan_of()
    entries = deployed(Ledger(str(tmp_path)), plan)
    held = replace(plan, operations=tuple(replace(op, held="guard") if op.action is Action.UPDATE else op for op in plan.operations))
    assert all(not op.unchanged for op in mark_unchanged(held, entries, DESIRED)[0].operations)


def test_tag_verdicts_come_from_entries_that_read_tags(tmp_path):
    ledger = Ledger(str(tmp_path))
    ledger.record_tags(stack="silo-000000000001", account_id="000000000001", opted_out=True)
    ledger.put(LedgerEntry(stack="silo-000000000002", account_id="000000000002", result="succeeded"))
    verdicts = tag_verdicts(ledger.entries())
    assert list(verdicts) == ["000000000001"] and verdicts["000000000001"].opted_out is True


def test_coalescing_needs_the_same_state_deployed_and_clean():
    entry = LedgerEntry(stack="silo-1", account_id="1", result="succeeded", fingerprint="sha256:f", deployed_at="2026-12-01T10:00:00+00:00")
    assert coalesced(entry, "sha256:f") == "coalesced: another run deployed this state at 2026-12-01T10:00:00+00:00"
    assert coalesced(entry, "sha256:g") == ""
    assert coalesced(entry, "") == ""
    assert coalesced(None, "sha256:f") == ""
    assert coalesced(replace(entry, drift=DriftCheck("2026-12-01T11:00:00+00:00", clean=False)), "sha256:f") == ""
