"""Execution against the fake stack operations: bounds, tolerance, lock retries, retirements, logs."""

from __future__ import annotations

import json
from pathlib import Path

from offline.fake_stacks import FakeStackOperations
from runner.execution import ExecutionSettings, Progress, execute
from runner.model import Action, PlannedOperation, Result, StackInfo


def op(n: int, action: Action = Action.UPDATE, held: str = "") -> PlannedOperation:
    account = f"{n:012d}"
    config = {"datalake:accountId": account} if action in (Action.CREATE, Action.UPDATE) else None
    return PlannedOperation(account, f"Team {n}", f"silo-{account}", action, "test", f"team-{n}", config, held)


def settings(tmp_path: Path, **kw) -> ExecutionSettings:
    return ExecutionSettings(log_dir=tmp_path / "logs", **{"lock_retry_seconds": 0.01, **kw})


class Exports:
    def __init__(self, tmp_path: Path):
        self.dir, self.saved = tmp_path / "exports", {}

    def __call__(self, stack, state):
        self.dir.mkdir(exist_ok=True)
        path = self.dir / f"{stack}.json"
        path.write_text(json.dumps(state))
        self.saved[stack] = state
        return str(path)


def test_concurrency_never_exceeds_the_bound(tmp_path):
    fake = FakeStackOperations(latency=0.02)
    results = execute([op(i) for i in range(30)], fake, settings(tmp_path, max_concurrency=4), Exports(tmp_path))
    assert fake.max_running == 4
    assert [r.result for r in results] == [Result.SUCCEEDED] * 30
    assert all(r.changed == 12 and r.attempts == 1 for r in results)


def test_failure_tolerance_stops_new_launches_and_lets_running_ones_finish(tmp_path):
    slow = f"silo-{1:012d}"
    failing = {f"silo-{i:012d}": "error: AccessDenied: not authorized to perform sts:AssumeRole" for i in (0, 2)}
    fake = FakeStackOperations(latency=lambda _, stack: 1.0 if stack == slow else 0.01, failures=failing)
    results = execute([op(i) for i in range(20)], fake, settings(tmp_path, max_concurrency=2, failure_tolerance=1), Exports(tmp_path))
    by_result = {}
    for r in results:
        by_result.setdefault(r.result, []).append(r)
    # Ops 0 and 1 start; 0 fails (1 failure, within the tolerance) so 2 starts and fails too: the
    # tolerance is exceeded and nothing else starts, but the slow op 1 that was running finishes.
    assert [r.operation.account_id for r in by_result[Result.FAILED]] == [f"{0:012d}", f"{2:012d}"]
    assert by_result[Result.FAILED][0].error == "error: AccessDenied: not authorized to perform sts:AssumeRole"
    assert [r.operation.stack for r in by_result[Result.SUCCEEDED]] == [slow]
    assert len(by_result[Result.SKIPPED]) == 17
    assert "2 failures exceeded the failure tolerance (1)" in by_result[Result.SKIPPED][0].error
    started = {stack for call, stack in fake.calls if call == "up"}
    assert started == {f"silo-{i:012d}" for i in range(3)}


def test_failures_within_the_tolerance_do_not_stop_the_run(tmp_path):
    fake = FakeStackOperations(failures={f"silo-{3:012d}": "error: boom"})
    results = execute([op(i) for i in range(10)], fake, settings(tmp_path, failure_tolerance=1), Exports(tmp_path))
    assert sum(r.result is Result.FAILED for r in results) == 1
    assert sum(r.result is Result.SUCCEEDED for r in results) == 9


def test_locked_stacks_are_retried_not_failed(tmp_path):
    locked = f"silo-{1:012d}"
    fake = FakeStackOperations(locked={locked: 2})
    results = execute([op(1), op(2)], fake, settings(tmp_path), Exports(tmp_path))
    assert [r.result for r in results] == [Result.SUCCEEDED, Result.SUCCEEDED]
    assert results[0].attempts == 3
    assert [c for c in fake.calls if c == ("up", locked)] == [("up", locked)] * 3
    log = Path(results[0].log_file).read_text()
    assert "locked by another update; retry 2" in log and "retry 3" in log


def test_a_stack_locked_for_too_long_fails_with_the_reason(tmp_path):
    fake = FakeStackOperations(locked={f"silo-{1:012d}": 99})
    [result] = execute([op(1)], fake, settings(tmp_path, lock_attempts=3), Exports(tmp_path))
    assert result.result is Result.FAILED and result.attempts == 3
    assert "locked by another update (3 attempts)" in result.error


def test_create_tags_configures_and_deploys(tmp_path):
    fake = FakeStackOperations()
    [result] = execute([op(1, Action.CREATE)], fake, settings(tmp_path), Exports(tmp_path))
    stack = f"silo-{1:012d}"
    assert [c for c, s in fake.calls if s == stack] == ["create", "set_config", "up"]
    assert fake.tags[stack] == {"datalake:account-id": f"{1:012d}", "datalake:account-name": "Team 1", "datalake:silo-name": "team-1"}
    assert fake.configs[stack] == {"datalake:accountId": f"{1:012d}"}
    assert result.result is Result.SUCCEEDED


def test_retire_forget_exports_then_removes_without_destroy(tmp_path):
    stack = f"silo-{1:012d}"
    fake = FakeStackOperations([StackInfo(stack, "team-1")])
    exports = Exports(tmp_path)
    [result] = execute([op(1, Action.RETIRE_FORGET)], fake, settings(tmp_path), exports)
    assert [c for c, _ in fake.calls] == ["export", "remove"]
    assert fake.removed == {stack: True}  # force: the stack still lists its resources
    assert exports.saved[stack]["deployment"]["stack"] == stack
    assert "state exported to" in Path(result.log_file).read_text()


def test_retire_destroy_revokes_partners_then_destroys_then_removes(tmp_path):
    stack = f"silo-{1:012d}"
    fake = FakeStackOperations([StackInfo(stack, "team-1")])

    def revoke(operation, out):
        fake.calls.append(("revoke", operation.stack))
        return [f"revoked partners of {operation.silo_name}"]

    [result] = execute([op(1, Action.RETIRE_DESTROY)], fake, settings(tmp_path), Exports(tmp_path), revoke_partners=revoke)
    assert [c for c, _ in fake.calls] == ["export", "revoke", "destroy", "remove"]
    assert fake.removed == {stack: False} and result.changed == 12
    assert result.notes == ["revoked partners of team-1"]


def test_no_stack_is_removed_when_its_export_fails(tmp_path):
    stack = f"silo-{1:012d}"
    fake = FakeStackOperations([StackInfo(stack, "team-1")], export_failures=[stack])
    [result] = execute([op(1, Action.RETIRE_FORGET)], fake, settings(tmp_path), Exports(tmp_path))
    assert result.result is Result.FAILED and "access denied" in result.error
    assert stack in fake.stacks and ("remove", stack) not in fake.calls


def test_held_operations_never_run(tmp_path):
    fake = FakeStackOperations()
    results = execute([op(1), op(2, Action.RETIRE_FORGET, held="too many")], fake, settings(tmp_path), Exports(tmp_path))
    assert results[1].result is Result.SKIPPED and results[1].error == "held: too many"
    assert all(stack != f"silo-{2:012d}" for _, stack in fake.calls)


def test_each_operation_logs_to_its_own_file_and_progress_is_reported(tmp_path):
    fake = FakeStackOperations(latency=0.01)
    progress = Progress(total=5)
    results = execute([op(i) for i in range(5)], fake, settings(tmp_path, max_concurrency=2), Exports(tmp_path), progress=progress)
    files = {r.log_file for r in results}
    assert len(files) == 5
    for r in results:
        text = Path(r.log_file).read_text()
        assert f"up {r.operation.stack}" in text and text.count("# update") == 1
    assert progress.history[-1] == (5, 0, 0, 0)
    assert all(running <= 2 for _, running, _, _ in progress.history)
    assert [done for done, *_ in progress.history] == [1, 2, 3, 4, 5]


def test_a_log_file_that_cannot_be_written_fails_that_operation_only(tmp_path):
    fake = FakeStackOperations()
    blocked = settings(tmp_path).log_dir / f"silo-{1:012d}.log"
    blocked.mkdir(parents=True)  # a directory where the log file should go
    results = execute([op(1), op(2)], fake, settings(tmp_path), Exports(tmp_path))
    assert results[0].result is Result.FAILED and results[0].error.startswith("runner error: IsADirectoryError")
    assert results[1].result is Result.SUCCEEDED
