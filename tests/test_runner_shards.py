"""The shard planner and the distributed engine's documents: batches, the guard, plan integrity, the merge."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from components.shared.errors import UsageError
from offline.stacks import PROJECT_DIR
from runner.distributed import ITEMS_FILE, merge_reports, read_plan, select_batch, split_location, write_batch_results, write_plan
from runner.model import Account, Action, Discovery, OperationResult, Plan, Result, StackInfo
from runner.planning import PlanSettings, build_plan, load_template
from runner.report import ReportStore
from runner.shards import shard_items, shard_plan

TEMPLATE = load_template(PROJECT_DIR / "Pulumi.silo-template.yaml")


def acct(n: int, **kw) -> Account:
    return Account(id=f"{n:012d}", name=f"Team {n}", status=kw.pop("status", "ACTIVE"), ou_path="silos", **kw)


def stack(n: int) -> StackInfo:
    return StackInfo(name=f"silo-{n:012d}", silo_name=f"team-{n}")


def fleet_plan(*, allow_mass_retire: bool = False) -> Plan:
    """Accounts 1-12: 1-4 new (create), 5-12 with stacks (update); stacks 13-15 of gone accounts (3 of 11 = 27%)."""
    accounts = [acct(i) for i in range(1, 13)]
    stacks = [stack(i) for i in range(5, 16)]
    discovery = Discovery("ou-ab12-11111111", tuple(accounts), {f"{i:012d}": None for i in range(13, 16)})
    return build_plan(discovery, stacks, TEMPLATE, PlanSettings(allow_mass_retire=allow_mass_retire))


def test_batches_cover_every_runnable_operation_exactly_once_for_every_size():
    plan = fleet_plan(allow_mass_retire=True)
    runnable = {op.stack for op in plan.runnable()}
    assert len(runnable) == 15
    for size in range(1, 18):
        shards = shard_plan(plan, size)
        stacks = [s for shard in shards for s in shard.stacks]
        assert sorted(stacks) == sorted(runnable), size  # every one, none twice
        assert [shard.index for shard in shards] == list(range(len(shards)))
        assert all(1 <= len(shard.operations) <= size for shard in shards)
        assert len(shards) == -(-15 // size)


def test_held_retirements_are_in_no_batch_and_allowed_ones_come_last():
    held = fleet_plan()
    assert "retires 3 of 11 stacks" in held.held_reason
    assert {op.action for shard in shard_plan(held, 4) for op in shard.operations} == {Action.CREATE, Action.UPDATE}
    # Even an operation that lost its `held` mark stays out while the plan's guard holds retirements.
    unmarked = replace(held, operations=tuple(replace(op, held="") for op in held.operations))
    assert all(not op.action.retires for shard in shard_plan(unmarked, 4) for op in shard.operations)

    allowed = shard_plan(fleet_plan(allow_mass_retire=True), 4)
    order = [op.action for shard in allowed for op in shard.operations]
    assert order == [Action.CREATE] * 4 + [Action.UPDATE] * 8 + [Action.RETIRE_FORGET] * 3
    assert [shard.stacks for shard in allowed][0] == tuple(f"silo-{i:012d}" for i in range(1, 5))


def test_unchanged_operations_are_in_no_batch_and_bad_sizes_are_refused():
    plan = fleet_plan()
    quiet = replace(plan, operations=tuple(replace(op, unchanged="unchanged (since 2026-11-30)") if op.action is Action.UPDATE else op
                                           for op in plan.operations))
    assert [s for shard in shard_plan(quiet, 3) for s in shard.stacks] == [f"silo-{i:012d}" for i in range(1, 5)]
    with pytest.raises(UsageError, match="batch size 0: must be 1 or more"):
        shard_plan(plan, 0)
    twice = replace(plan, operations=plan.operations + plan.operations[:1])
    with pytest.raises(UsageError, match="two operations on silo-000000000001"):
        shard_plan(twice, 3)


def test_items_carry_their_batch_in_item_batcher_order():
    items = shard_items(shard_plan(fleet_plan(), 5))
    assert [item["batch"] for item in items] == [k // 5 for k in range(len(items))]
    assert items[0] == {"stack": "silo-000000000001", "accountId": "000000000001", "action": "create", "batch": 0}


def test_plan_document_round_trip_and_batch_selection(tmp_path):
    store = ReportStore(str(tmp_path / "run-1"))
    document, where = write_plan(store, "plan.json", fleet_plan(), "run-1", 5)
    assert where == str(tmp_path / "run-1" / "plan.json")
    items = json.loads((tmp_path / "run-1" / ITEMS_FILE).read_text())
    assert len(items) == 12 and document["batches"] == 3
    assert read_plan(store, "plan.json") == document

    index, ops, batch = select_batch(store, batch=1)
    assert index == 1 and [op.stack for op in ops] == [f"silo-{i:012d}" for i in range(6, 11)]
    assert ops[0].config == fleet_plan().operations[5].config  # the child gets the full config back
    assert batch["planDigest"] == document["digest"]
    # A child reads its batch's document only: the whole plan stays with the plan and merge steps.
    assert sorted(p.name for p in (tmp_path / "run-1" / "batches").iterdir()) == ["batch-0.json", "batch-1.json", "batch-2.json"]
    # What the Distributed Map hands a child: its batch's items, as States.JsonToString writes them.
    chosen = json.dumps([i for i in items if i["batch"] == 2][::-1], separators=(",", ":"))
    index, ops, _ = select_batch(store, items=chosen)
    assert index == 2 and [op.stack for op in ops] == ["silo-000000000011", "silo-000000000012"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch": 3}, "batch 3: cannot read the batch .*batches/batch-3.json: it does not exist"),
        ({"batch": -1}, "batches are numbered from 0"),
        ({}, "exactly one of --batch"),
        ({"batch": 0, "items": "[]"}, "exactly one of --batch"),
        ({"items": "not json"}, "--items is not JSON"),
        ({"items": "[]"}, "non-empty JSON array"),
        ({"items": '[{"stack": "silo-000000000001"}]'}, "non-empty JSON array"),
        ({"items": '[{"stack": "silo-000000000013", "batch": 0}]'}, "stacks batch 0 of the plan does not run: silo-000000000013"),
        ({"items": '[{"stack": "silo-000000000001", "batch": 0}, {"stack": "silo-000000000009", "batch": 1}]'}, r"spans batches \[0, 1\]"),
        ({"items": '[{"stack": "silo-000000000001", "batch": 2}]'}, "stacks batch 2 of the plan does not run: silo-000000000001"),
    ],
)
def test_a_child_refuses_items_the_plan_does_not_shard_that_way(tmp_path, kwargs, message):
    store = ReportStore(str(tmp_path))
    write_plan(store, "plan.json", fleet_plan(), "run-1", 5)
    with pytest.raises(UsageError, match=message):
        select_batch(store, **kwargs)


def test_a_changed_or_foreign_plan_is_refused(tmp_path):
    store = ReportStore(str(tmp_path))
    write_plan(store, "plan.json", fleet_plan(), "run-1", 5)
    document = json.loads((tmp_path / "plan.json").read_text())
    document["heldReason"] = ""  # someone lifts the guard by hand
    (tmp_path / "plan.json").write_text(json.dumps(document))
    with pytest.raises(UsageError, match="changed after the plan step wrote it"):
        read_plan(store, "plan.json")
    (tmp_path / "plan.json").write_text(json.dumps({"operations": []}))
    with pytest.raises(UsageError, match="is not a runner plan of version 1"):
        read_plan(store, "plan.json")
    (tmp_path / "plan.json").write_text("{")
    with pytest.raises(UsageError, match="is not a runner plan"):
        read_plan(store, "plan.json")
    batch = json.loads((tmp_path / "batches" / "batch-0.json").read_text())
    batch["operations"][0]["config"]["datalake:siloName"] = "someone-else"
    (tmp_path / "batches" / "batch-0.json").write_text(json.dumps(batch))
    with pytest.raises(UsageError, match="batch 0: .*changed after the plan step wrote it"):
        select_batch(store, batch=0)


def test_split_location():
    assert split_location("s3://state/runner-plans/x/plan.json") == ("s3://state/runner-plans/x", "plan.json")
    assert split_location("out/plans/plan.json") == ("out/plans", "plan.json")
    for bad in ("s3://state/runner-plans/x/", "plan.json", "s3://plan.json"):
        with pytest.raises(UsageError, match="name a JSON object"):
            split_location(bad)


def _results(ops, outcome=Result.SUCCEEDED):
    return [OperationResult(op, outcome, seconds=1.0, changed=3) for op in ops]


def test_merge_makes_one_report_and_a_lost_batch_fails_its_operations(tmp_path):
    store = ReportStore(str(tmp_path))
    plan = fleet_plan()
    plan = replace(plan, operations=tuple(replace(op, unchanged="unchanged (since 2026-11-30)") if op.account_id == f"{12:012d}" else op
                                          for op in plan.operations))
    document, _ = write_plan(store, "plan.json", plan, "run-1", 5)
    assert document["batches"] == 3  # 11 runnable: 5 + 5 + 1
    for index in (0, 2):
        _, ops, batch = select_batch(store, batch=index)
        write_batch_results(store, batch, index, _results(ops), {"execution": 10.0 + index}, build=f"runner-shard:{index}")
    # A stale result file of another plan under batch 1 does not count.
    elsewhere = ReportStore(str(tmp_path / "other"))
    write_plan(elsewhere, "plan.json", fleet_plan(), "run-0", 5)
    _, ops, other = select_batch(elsewhere, batch=1)
    write_batch_results(store, other, 1, _results(ops), {})

    report = merge_reports(store, document)

    by_stack = {r["stack"]: r for r in report["results"]}
    assert [r["stack"] for r in report["results"]] == [op.stack for op in plan.operations]
    assert by_stack["silo-000000000001"]["result"] == "succeeded" and by_stack["silo-000000000001"]["changed"] == 3
    lost = [s for s, r in by_stack.items() if r["result"] == "failed"]
    assert lost == [f"silo-{i:012d}" for i in range(6, 11)]
    assert by_stack["silo-000000000006"]["error"] == "the results of batch 1 belong to another plan"
    assert by_stack["silo-000000000012"]["result"] == "unchanged"
    assert {by_stack[f"silo-{i:012d}"]["result"] for i in (13, 14, 15)} == {"skipped"}
    assert report["counts"] == {"succeeded": 6, "failed": 5, "skipped": 3, "unchanged": 1, "drifted": 0}
    assert report["exitCode"] == 1 and report["runId"] == "run-1"
    assert [b["build"] for b in report["batches"]] == ["runner-shard:0", "", "runner-shard:2"]


def test_merge_of_a_clean_run_exits_zero_and_names_a_missing_batch(tmp_path):
    store = ReportStore(str(tmp_path))
    plan = fleet_plan(allow_mass_retire=True)
    document, _ = write_plan(store, "plan.json", plan, "run-2", 8)
    _, ops, batch = select_batch(store, batch=0)
    write_batch_results(store, batch, 0, _results(ops), {})
    partial = merge_reports(store, document)
    assert partial["exitCode"] == 1
    assert partial["batches"][1]["problem"].startswith("no results from batch 1 (its build failed before writing them, or never started)")
    _, ops, batch = select_batch(store, batch=1)
    write_batch_results(store, batch, 1, _results(ops), {})
    assert merge_reports(store, document)["exitCode"] == 0


@mock_aws
def test_plan_items_and_results_live_under_one_s3_prefix():
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    location, name = split_location("s3://state/runner-plans/exec-1/plan.json")
    store = ReportStore(location, lambda: s3)
    document, where = write_plan(store, name, fleet_plan(), "exec-1", 5)
    assert where == "s3://state/runner-plans/exec-1/plan.json"
    items = json.loads(s3.get_object(Bucket="state", Key="runner-plans/exec-1/items.json")["Body"].read())
    assert isinstance(items, list) and len(items) == 12  # ItemReader with InputType JSON reads a top-level array
    assert read_plan(store, name) == document
    report = merge_reports(store, document)  # no batch has written yet: every runnable operation failed, none passed
    assert report["counts"]["failed"] == 12 and report["counts"]["succeeded"] == 0
    with pytest.raises(UsageError, match="cannot read the plan s3://state/runner-plans/exec-1/missing.json: NoSuchKey"):
        read_plan(store, "missing.json")
