"""The distributed engine's documents: the plan a state machine fans out, each batch's results, the merge.

One run of the Step Functions engine (docs/runner.md) keeps everything under one location, the
directory of the plan object (`s3://<state bucket>/runner-plans/<execution>/`):

| object | written by | read by |
| --- | --- | --- |
| `plan.json` | `runner plan --plan-json <location>/plan.json` | every child (`apply --from-plan`), `merge-reports` |
| `items.json` | the same plan step: one item per runnable operation, in batch order | the Distributed Map's `ItemReader` |
| `batches/batch-<i>.json` | the same plan step: batch `i`'s operations (configs included) | the child given batch `i` |
| `results/batch-<i>.json` | the child that ran batch `i` | `merge-reports` |

`plan.json` is the plan's usual JSON (`operations`, `heldReason`, ...) plus the run id, the batch
size and a digest over all of it; each batch document carries its own digest and the plan's. A
child reads its batch document only (not the whole plan: at 5,000 accounts that is megabytes per
child) and refuses one that changed after it was written, items that are not in it, and items of
more than one batch (the map's `MaxItemsPerBatch` must equal the plan's batch size). The plan is
computed once, so the mass-retire guard judges the whole organization, never one batch. `merge-reports` turns the plan and every batch's results into one run
report; a batch with no results (its build failed before writing them, or never started) counts
its operations as failed, so a lost child never passes for a success.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Optional

from botocore.exceptions import ClientError

from components.shared.errors import UsageError

from .ledger import content_digest
from .model import OperationResult, Plan, PlannedOperation, Result
from .report import ReportStore
from .shards import shard_items, shard_plan

log = logging.getLogger(__name__)

PLAN_VERSION = 1
PLAN_FILE = "plan.json"
ITEMS_FILE = "items.json"


def split_location(uri: str) -> tuple[str, str]:
    """`s3://bucket/runner-plans/x/plan.json` → (`s3://bucket/runner-plans/x`, `plan.json`)."""
    location, _, name = uri.rstrip("/").rpartition("/")
    if not location or not name.endswith(".json") or location in ("s3:", "s3:/"):
        raise UsageError(f"plan location {uri!r}: name a JSON object, for example s3://my-state-bucket/runner-plans/run-1/plan.json")
    return location, name


def batch_result_name(index: int) -> str:
    return f"results/batch-{index}.json"


def batch_document_name(index: int) -> str:
    return f"batches/batch-{index}.json"


def _sealed(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "digest": content_digest(document)}


def plan_document(plan: Plan, run_id: str, batch_size: int) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The plan document (with its digest), the items file of the Distributed Map, and one document per batch."""
    shards = shard_plan(plan, batch_size)
    items = shard_items(shards)
    document = _sealed({**plan.to_json(), "version": PLAN_VERSION, "runId": run_id, "batchSize": batch_size, "batches": len(shards)})
    batches = [
        _sealed({"version": PLAN_VERSION, "runId": run_id, "planDigest": document["digest"], "batch": shard.index,
                 "operations": [op.to_json() for op in shard.operations]})
        for shard in shards
    ]
    return document, items, batches


def write_plan(store: ReportStore, name: str, plan: Plan, run_id: str, batch_size: int) -> tuple[dict[str, Any], str]:
    """Writes `plan.json` (named `name`), then each batch's document and `items.json` beside it."""
    document, items, batches = plan_document(plan, run_id, batch_size)
    where = store.put_json(name, document)
    for batch in batches:
        store.put_json(batch_document_name(batch["batch"]), batch)
    store.put_json(ITEMS_FILE, items)
    log.info("plan %s: %d operations to run in %d batches of up to %d", where, len(items), document["batches"], batch_size)
    return document, where


def _read_sealed(store: ReportStore, name: str, what: str) -> dict[str, Any]:
    try:
        document = store.get_json(name)
    except ClientError as exc:
        raise UsageError(f"cannot read the {what} {store.location}/{name}: {exc.response.get('Error', {}).get('Code', exc)}") from None
    except UsageError:
        raise UsageError(f"cannot read the {what} {store.location}/{name}: it does not exist; was the plan step run with --plan-json?") from None
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("version") != PLAN_VERSION:
        raise UsageError(f"{store.location}/{name} is not a runner {what} of version {PLAN_VERSION}; write it with `runner plan --plan-json`")
    body = {key: value for key, value in document.items() if key != "digest"}
    if content_digest(body) != document.get("digest"):
        raise UsageError(f"{store.location}/{name} changed after the plan step wrote it (digest mismatch); run the plan step again")
    return document


def read_plan(store: ReportStore, name: str) -> dict[str, Any]:
    """The plan document, refused when it is not one or changed after it was written."""
    return _read_sealed(store, name, "plan")


def _operations(document: dict[str, Any]) -> list[PlannedOperation]:
    return [PlannedOperation.from_json(data) for data in document["operations"]]


def _plan_of(document: dict[str, Any]) -> Plan:
    return Plan(
        tuple(_operations(document)),
        existing_stacks=document["existingStacks"],
        discovered_accounts=document["discoveredAccounts"],
        held_reason=document.get("heldReason", ""),
    )


def select_batch(store: ReportStore, *, batch: Optional[int] = None, items: Optional[str] = None) -> tuple[int, list[PlannedOperation], dict[str, Any]]:
    """The batch a child runs, by index (`--batch`) or by the map's items (`--items`, a JSON array).

    Returns its index, its operations and its document. Items must all belong to one batch and be
    operations of that batch's document.
    """
    if (batch is None) == (items is None):
        raise UsageError("--from-plan needs exactly one of --batch INDEX or --items JSON")
    wanted: list[dict[str, Any]] = []
    if items is not None:
        try:
            wanted = json.loads(items)
        except ValueError:
            raise UsageError(f"--items is not JSON: {items[:80]!r}; the state machine passes States.JsonToString($.Items)") from None
        if not isinstance(wanted, list) or not wanted or not all(isinstance(i, dict) and "stack" in i and isinstance(i.get("batch"), int) for i in wanted):
            raise UsageError('--items must be a non-empty JSON array of the plan\'s items, like {"stack": "silo-123456789012", "batch": 0}')
        indexes = sorted({i["batch"] for i in wanted})
        if len(indexes) != 1:
            raise UsageError(f"--items spans batches {indexes}: the map's ItemBatcher MaxItemsPerBatch must equal the plan's batch size")
        batch = indexes[0]
    assert batch is not None
    if batch < 0:
        raise UsageError(f"--batch {batch}: batches are numbered from 0")
    try:
        document = _read_sealed(store, batch_document_name(batch), "batch")
    except UsageError as exc:
        raise UsageError(f"batch {batch}: {exc}") from None
    if document.get("batch") != batch:
        raise UsageError(f"{store.location}/{batch_document_name(batch)} holds batch {document.get('batch')}, not {batch}")
    operations = _operations(document)
    if wanted:
        known = {op.stack for op in operations}
        unknown = [str(i["stack"]) for i in wanted if i["stack"] not in known]
        if unknown:
            raise UsageError(f"--items names stacks batch {batch} of the plan does not run: {', '.join(unknown[:5])}")
        named = {i["stack"] for i in wanted}
        operations = [op for op in operations if op.stack in named]
    return batch, operations, document


def write_batch_results(store: ReportStore, batch_document: dict[str, Any], index: int, results: Sequence[OperationResult],
                        timings: dict[str, float], build: str = "") -> str:
    """What one child did, for `merge-reports` (`batch_document` as `select_batch` returned it)."""
    return store.put_json(
        batch_result_name(index),
        {
            "runId": batch_document["runId"],
            "planDigest": batch_document["planDigest"],
            "batch": index,
            "build": build,
            "timings": {key: round(value, 3) for key, value in timings.items()},
            "results": [r.to_json() for r in results],
        },
    )


def _batch_results(store: ReportStore, document: dict[str, Any], index: int) -> tuple[Optional[dict[str, Any]], str]:
    try:
        found = store.get_json(batch_result_name(index))
    except (UsageError, ClientError) as exc:
        return None, f"no results from batch {index} (its build failed before writing them, or never started): {exc}"
    if not isinstance(found, dict) or found.get("planDigest") != document["digest"] or found.get("batch") != index:
        return None, f"the results of batch {index} belong to another plan"
    return found, ""


def merged_results(document: dict[str, Any], report: dict[str, Any]) -> list[OperationResult]:
    """The merged report's results as `OperationResult`s of the plan's operations (what the catalog update reads)."""
    by_stack = {r["stack"]: r for r in report["results"]}
    return [
        OperationResult(op, Result(by_stack[op.stack]["result"]), error=by_stack[op.stack].get("error", ""))
        for op in _plan_of(document).operations
        if op.stack in by_stack
    ]


def merge_reports(store: ReportStore, document: dict[str, Any]) -> dict[str, Any]:
    """One run report from the plan and every batch's results (the state machine's last step)."""
    plan = _plan_of(document)
    shards = shard_plan(plan, int(document["batchSize"]))
    merged: dict[str, dict[str, Any]] = {}
    batches: list[dict[str, Any]] = []
    for shard in shards:
        found, problem = _batch_results(store, document, shard.index)
        reported = {r["stack"]: r for r in (found or {}).get("results", [])}
        batches.append({"batch": shard.index, "operations": len(shard.operations), "build": (found or {}).get("build", ""),
                        "timings": (found or {}).get("timings", {}), "problem": problem})
        for op in shard.operations:
            if op.stack in reported:
                merged[op.stack] = reported[op.stack]
            else:
                missing = problem or f"batch {shard.index} reported no result for {op.stack}"
                merged[op.stack] = OperationResult(op, Result.FAILED, error=missing).to_json()
    for op in plan.operations:
        if op.stack in merged:
            continue
        if op.unchanged:
            merged[op.stack] = OperationResult(op, Result.UNCHANGED, error=op.unchanged).to_json()
        else:
            merged[op.stack] = OperationResult(op, Result.SKIPPED, error=f"held: {op.held or plan.held_reason}").to_json()
    results = [merged[op.stack] for op in plan.operations]
    counts = {result.value: sum(1 for r in results if r["result"] == result.value) for result in Result}
    bad = counts[Result.FAILED.value] + counts[Result.SKIPPED.value]
    return {
        "runId": document["runId"],
        "command": "apply (stepfunctions)",
        "options": {"batchSize": document["batchSize"], "batches": len(shards)},
        "exitCode": 1 if bad or plan.held_reason else 0,
        "error": plan.held_reason,
        "timings": {"batchSecondsMax": max((b["timings"].get("execution", 0.0) for b in batches), default=0.0)},
        "plan": {key: document[key] for key in ("existingStacks", "discoveredAccounts", "heldReason", "operations")},
        "batches": batches,
        "results": results,
        "counts": counts,
    }
