"""The real `AutomationStackOperations` and SDK against a fake `pulumi` on PATH (offline/fake_pulumi).

The fake records each call's argv, working directory and environment, keeps a DIY-style backend
with stack locks, and writes the project's current-stack workspace file exactly when the real CLI
does (`stack select`, `stack init` without `--no-select`, `stack rm`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from offline.fake_pulumi import FakePulumi
from runner.execution import ExecutionSettings, execute
from runner.model import Action, PlannedOperation, Result
from runner.stack_ops import SILO_NAME_TAG, AutomationStackOperations, OperationTimeouts

PROJECT = "datalake"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    fake = FakePulumi(tmp_path / "fake")
    fake.home = fake.activate(monkeypatch)
    fake.project_dir = tmp_path / "project"
    fake.project_dir.mkdir()
    (fake.project_dir / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
    fake.backend_url = f"file://{tmp_path / 'state'}"
    return fake


def automation(fake: FakePulumi, **kw) -> AutomationStackOperations:
    return AutomationStackOperations(fake.project_dir, backend_url=fake.backend_url, secrets_provider="passphrase",
                                     env={"PULUMI_CONFIG_PASSPHRASE": "test"}, **kw)


def account(n: int) -> str:
    return f"{n:012d}"


def planned(n: int, action: Action) -> PlannedOperation:
    config = {"datalake:accountId": account(n), "datalake:siloName": f"team-{n}"} if action in (Action.CREATE, Action.UPDATE) else None
    return PlannedOperation(account(n), f"Team {n}", f"silo-{account(n)}", action, "test", f"team-{n}", config)


def revoke_nobody(op, out):
    return [f"revoked 0 dropzone partner(s) under /datalake/partners/{op.silo_name}/: "]


def overlap(calls) -> int:
    """The most calls that ran at the same moment."""
    edges = sorted([(c.started, 1) for c in calls] + [(c.ended, -1) for c in calls])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_parallel_operations_share_no_workspace_file_and_every_call_names_its_stack(fake, tmp_path):
    # 24 operations, 8 at a time: about 90 CLI processes (each fake call costs a Python start-up).
    creates = [planned(n, Action.CREATE) for n in range(1, 3)]
    updates = [planned(n, Action.UPDATE) for n in range(101, 109)]
    forgets = [planned(n, Action.RETIRE_FORGET) for n in range(201, 209)]
    destroys = [planned(n, Action.RETIRE_DESTROY) for n in range(301, 307)]
    existing = updates + forgets + destroys
    fake.seed(fake.project_dir, fake.backend_url, {op.stack: {"tags": {SILO_NAME_TAG: op.silo_name}} for op in existing})
    ops = automation(fake)
    operations = creates + updates + forgets + destroys
    assert len(operations) == 24

    results = execute(operations, ops, ExecutionSettings(log_dir=tmp_path / "logs", max_concurrency=8),
                      lambda stack, state: f"memory://{stack}", revoke_partners=revoke_nobody)

    assert [r.result for r in results] == [Result.SUCCEEDED] * 24, [r.error for r in results if r.error]
    calls = [c for c in fake.calls() if c.command != "version"]
    assert overlap(calls) >= 4  # the operations really ran side by side
    # No call selects a stack or falls back to the current one; each names its stack.
    assert not [c.argv for c in calls if c.command == "stack select"]
    assert all("--no-select" in c.argv for c in calls if c.command == "stack init")
    assert not [c.argv for c in calls if c.used_current_stack]
    assert not [c.argv for c in calls if c.command != "stack ls" and c.stack is None]
    per_stack = {c.stack for c in calls if c.stack}
    assert per_stack == {f"organization/{PROJECT}/{op.stack}" for op in operations}
    # The shared PULUMI_HOME's current-stack file is never written: `stack rm` (which always
    # rewrites it) wrote into its operation's own PULUMI_HOME, and those are gone.
    shared_workspaces = fake.home / "workspaces"
    assert not shared_workspaces.exists() or not list(shared_workspaces.iterdir())
    homes: dict[str, set] = {}
    for c in calls:
        homes.setdefault(c.env["PULUMI_HOME"], set()).add(c.stack)
    assert str(fake.home) not in homes
    assert not [h for h, stacks in homes.items() if len(stacks) > 1]  # no two stacks' calls share a PULUMI_HOME
    rm_writes = [w for c in calls if c.command == "stack rm" for w in c.workspace_writes]
    assert len(rm_writes) == 14 and not [w for w in rm_writes if w.startswith(str(fake.home))]
    assert not [h for h in homes if Path(h).exists()]
    # The plugin cache is shared: the provider was downloaded once, into the real PULUMI_HOME.
    installs = [c.raw["pluginInstalled"] for c in calls if "pluginInstalled" in c.raw]
    assert len(installs) == 1 and (fake.home / "plugins" / "resource-aws-v7.51.1").is_dir()
    # And the backend holds what the operations should have left.
    left = {s.name for s in ops.list_stacks()}
    assert left == {op.stack for op in creates + updates}


def test_create_up_drift_export_destroy_remove_through_the_sdk(fake):
    ops = automation(fake, org="organization")
    stack = "silo-123456789012"
    ops.create_stack(stack, {SILO_NAME_TAG: "sales"})
    ops.set_config(stack, {"datalake:siloName": "sales", "datalake:storage": {"dropzoneExpirationDays": 30}})
    log = io.StringIO()
    assert ops.up(stack, log) == 3  # the stack and two resources created
    assert ops.up(stack, log) == 0
    assert ops.preview_drift(stack, log) == []
    fake.configure(drift={stack: [["update", f"urn:pulumi:{stack}::{PROJECT}::datalake:fake:Resource::r1"]]})
    assert ops.preview_drift(stack, log) == [f"update urn:pulumi:{stack}::{PROJECT}::datalake:fake:Resource::r1"]
    [listed] = ops.list_stacks()
    assert listed.silo_name == "sales"
    state = ops.export(stack)
    assert len(state["deployment"]["resources"]) == 3
    assert ops.destroy(stack, log) == 3
    ops.remove(stack, force=False)
    assert ops.list_stacks() == []
    assert not (fake.project_dir / f"Pulumi.{stack}.yaml").exists()  # `stack rm` deletes the stack's config file
    assert "Updating (silo-123456789012)" in log.getvalue()


def test_a_locked_stack_in_the_fake_becomes_stack_locked_error(fake, tmp_path):
    stack = "silo-123456789012"
    fake.seed(fake.project_dir, fake.backend_url, {stack: {}})
    fake.rule("up", "locked", stack=stack, times=1)
    ops = automation(fake)
    [result] = execute([planned(123456789012, Action.UPDATE)], ops,
                       ExecutionSettings(log_dir=tmp_path / "logs", lock_retry_seconds=0.01), lambda s, state: "-")
    assert result.result is Result.SUCCEEDED and result.attempts == 2
    ups = [c for c in fake.calls() if c.command == "up"]
    assert [c.exit for c in ups] == [255, 0]


def test_the_fake_refuses_what_a_diy_backend_refuses(fake):
    ops = automation(fake, org="acme")
    from components.shared.errors import StackOperationError

    with pytest.raises(StackOperationError, match="organization name must be 'organization'"):
        ops.create_stack("silo-123456789012", {})
    with pytest.raises(StackOperationError, match="no stack named 'silo-000000000001' found"):
        automation(fake).up("silo-000000000001", io.StringIO())
    assert json.loads((fake.root / "behaviour.json").read_text())["version"] == "3.272.0"


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def run_with_a_hung_up(fake, tmp_path, **rule):
    hung, fine = planned(1, Action.UPDATE), planned(2, Action.UPDATE)
    fake.seed(fake.project_dir, fake.backend_url, {hung.stack: {}, fine.stack: {}})
    fake.rule("up", "hang", stack=hung.stack, **rule)
    ops = automation(fake, timeouts=OperationTimeouts(update_seconds=2.0, command_seconds=30.0, kill_grace_seconds=1.0))
    results = execute([hung, fine], ops, ExecutionSettings(log_dir=tmp_path / "logs"), lambda s, state: "-")
    [stuck] = [c for c in fake.calls() if c.raw.get("hanging")]
    return results, stuck


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds child processes through /proc (Linux)")
def test_a_hung_up_is_interrupted_at_its_timeout_and_the_other_accounts_continue(fake, tmp_path):
    (hung, fine), stuck = run_with_a_hung_up(fake, tmp_path)
    assert fine.result is Result.SUCCEEDED
    assert hung.result is Result.FAILED
    assert hung.error == f"up timed out after 2 s; the pulumi process (pid {stuck.pid}) was interrupted and stopped"
    assert not alive(stuck.pid) and not [pid for pid in stuck.children if alive(pid)]
    assert fake.locks(fake.backend_url) == []  # the CLI's graceful cancel released the lock
    assert "timed out" in Path(hung.log_file).read_text()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds child processes through /proc (Linux)")
def test_a_hung_up_that_ignores_the_interrupt_is_killed_with_its_children(fake, tmp_path):
    (hung, fine), stuck = run_with_a_hung_up(fake, tmp_path, ignore_sigint=True)
    assert fine.result is Result.SUCCEEDED and hung.result is Result.FAILED
    assert hung.error.startswith(f"up timed out after 2 s; the pulumi process (pid {stuck.pid}) ignored the interrupt for 1 s")
    assert "killed with 1 child process(es); the stack may keep a stale lock" in hung.error
    assert stuck.children and not alive(stuck.pid) and not [pid for pid in stuck.children if alive(pid)]
    assert len(fake.locks(fake.backend_url)) == 1  # what a killed CLI leaves on a DIY backend


def test_an_export_keeps_secrets_encrypted(fake):
    stack = "silo-123456789012"
    fake.seed(fake.project_dir, fake.backend_url, {stack: {}})
    state = automation(fake).export(stack)
    [root] = [r for r in state["deployment"]["resources"] if r["type"] == "pulumi:pulumi:Stack"]
    secret = root["outputs"]["fakeSecret"]
    assert set(secret) == {"4dabf18193072939515e22adb298388d", "ciphertext"}
    assert f"secret-of-{stack}" not in json.dumps(state)
    [export] = [c for c in fake.calls() if c.command == "stack export"]
    assert "--show-secrets" not in export.argv


def test_a_removed_stack_is_restored_from_its_export(fake):
    ops = automation(fake)
    stack = "silo-123456789012"
    fake.seed(fake.project_dir, fake.backend_url, {stack: {}})
    state = ops.export(stack)
    ops.remove(stack, force=True)
    ops.import_state(stack, state)
    assert ops.export(stack)["deployment"]["resources"] == state["deployment"]["resources"]
    [init] = [c for c in fake.calls() if c.command == "stack init"]
    assert "--no-select" in init.argv


def test_versions_and_a_names_only_listing_come_from_the_cli(fake):
    ops = automation(fake, org="organization")
    stack = "silo-123456789012"
    ops.create_stack(stack, {SILO_NAME_TAG: "sales"})
    ops.set_config(stack, {"datalake:siloName": "sales"})
    before = ops.versions()
    assert before.cli == "3.272.0" and before.plugins == {}  # nothing installed on a fresh machine
    ops.up(stack, io.StringIO())  # the first up downloads the aws plugin into the shared PULUMI_HOME
    assert ops.versions().plugins == {"aws": "7.51.1"}
    assert ops.list_stack_names() == [stack]
    assert ops.silo_name(stack) == "sales"
    calls = [c.command for c in fake.calls()]
    assert calls.count("plugin ls") == 2 and calls.count("stack ls") == 1
    [listing] = [c for c in fake.calls() if c.command == "plugin ls"][-1:]
    assert "--json" in listing.argv
