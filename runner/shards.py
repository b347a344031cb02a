"""The shard planner: a plan's runnable operations in batches of N, for the distributed engine.

The Step Functions engine (`datalake:runner.engine: stepfunctions`) runs one CodeBuild build per
batch; each build runs the same executor over its batch as the local engine runs over the whole
plan. The shard planner decides what each batch holds:

- every runnable operation exactly once (held and unchanged ones are in no batch);
- retirements only when the plan's mass-retire guard let them through (a plan whose guard held
  retirements contributes none, whatever its operations say);
- creates first, then updates, then retirements, each by account id: a new account waits for no
  update, and the batches are the same for the same plan.

The Distributed Map's `ItemBatcher` (`MaxItemsPerBatch` = the batch size) groups the items file in
its order, so item `k` lands in batch `k // N` on both sides; each item carries its batch index and a
child refuses items of more than one batch (see `runner/distributed.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.shared.errors import UsageError

from .model import Action, Plan, PlannedOperation

ORDER = {Action.CREATE: 0, Action.UPDATE: 1, Action.RETIRE_DESTROY: 2, Action.RETIRE_FORGET: 3, Action.DRIFT: 4}


@dataclass(frozen=True)
class Shard:
    """One batch: the operations one child build runs."""

    index: int
    operations: tuple[PlannedOperation, ...]

    @property
    def stacks(self) -> tuple[str, ...]:
        return tuple(op.stack for op in self.operations)


def shard_plan(plan: Plan, batch_size: int) -> list[Shard]:
    """The plan's runnable operations split into batches of at most `batch_size`."""
    if batch_size < 1:
        raise UsageError(f"batch size {batch_size}: must be 1 or more; for example: 10 (datalake:runner.batchSize)")
    runnable = [op for op in plan.runnable() if not (op.action.retires and plan.held_reason)]
    seen: set[str] = set()
    for op in runnable:
        if op.stack in seen:
            raise UsageError(f"the plan has two operations on {op.stack}; refusing to shard it")
        seen.add(op.stack)
    runnable.sort(key=lambda op: (ORDER[op.action], op.account_id))
    return [
        Shard(index, tuple(runnable[start:start + batch_size]))
        for index, start in enumerate(range(0, len(runnable), batch_size))
    ]


def shard_items(shards: list[Shard]) -> list[dict[str, object]]:
    """The Distributed Map's items file: one item per operation, in batch order."""
    return [
        {"stack": op.stack, "accountId": op.account_id, "action": op.action.value, "batch": shard.index}
        for shard in shards
        for op in shard.operations
    ]
