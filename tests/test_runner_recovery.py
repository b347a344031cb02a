"""Recovery from interrupted runs (runner/recovery.py) with the real AutomationStackOperations and executor
against the fake `pulumi` (offline/fake_pulumi): stale locks cleared, fresh ones waited for, pending
operations resolved or reported. S3 objects and run markers on moto.
"""

from __future__ import annotations

import io
import json
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from offline.fake_pulumi import FakePulumi
from runner.execution import ExecutionSettings, execute
from runner.model import Action, PlannedOperation, Result
from runner.recovery import Recovery
from runner.recovery_locks import LockRecovery, RunMarkers, StaleLockRule, read_locks, this_host
from runner.recovery_objects import DirectoryObjects, S3Objects, backend_objects
from runner.recovery_pending import pending_operations
from runner.stack_ops import AutomationStackOperations, OperationTimeouts

PROJECT = "datalake"
ORG = "organization"
ACCOUNT = "123456789012"
STACK = f"silo-{ACCOUNT}"
QUALIFIED = f"{ORG}/{PROJECT}/{STACK}"
RULE = StaleLockRule.derive(update_seconds=2.0, kill_grace_seconds=1.0, build_timeout_minutes=[120])


@pytest.fixture
def fake(tmp_path, monkeypatch):
    fake = FakePulumi(tmp_path / "fake")
    fake.activate(monkeypatch)
    fake.project_dir = tmp_path / "project"
    fake.project_dir.mkdir()
    (fake.project_dir / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
    fake.backend_url = f"file://{tmp_path / 'state'}"
    (tmp_path / "state").mkdir()
    return fake


def automation(fake: FakePulumi, **kw) -> AutomationStackOperations:
    return AutomationStackOperations(fake.project_dir, backend_url=fake.backend_url, secrets_provider="passphrase",
                                     env={"PULUMI_CONFIG_PASSPHRASE": "test"}, **kw)


def planned(action: Action = Action.UPDATE, account: str = ACCOUNT) -> PlannedOperation:
    config = {"datalake:accountId": account, "datalake:siloName": "sales"} if action in (Action.CREATE, Action.UPDATE, Action.DRIFT) else None
    return PlannedOperation(account, "Sales", f"silo-{account}", action, "test", "sales", config)


class Clock:
    """`utc_now` that can be moved forward (the lock files and markers keep their real times)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


def recovery_for(fake: FakePulumi, clock: Clock, **kw) -> Recovery:
    objects = backend_objects(fake.backend_url, lambda: None)
    locks = LockRecovery(objects, RULE, org=ORG, project=PROJECT, markers=RunMarkers(objects, clock=clock), clock=clock)
    return Recovery(qualify=lambda stack: f"{ORG}/{PROJECT}/{stack}", locks=locks, project=PROJECT, **kw)


def run(ops, operations, tmp_path, recovery=None, **settings):
    options = {"log_dir": tmp_path / "logs", "lock_retry_seconds": 0.01, **settings}
    return execute(operations, ops, ExecutionSettings(**options), lambda stack, state: f"memory://{stack}",
                   revoke_partners=lambda op, out: [], recovery=recovery)


def killed_run(fake: FakePulumi, tmp_path, *, pending=()) -> Path:
    """A runner run whose `up` hangs ignoring SIGINT and is killed: the DIY lock stays, as in a killed build."""
    fake.rule("up", "hang", stack=STACK, times=1, ignore_sigint=True, pending=list(pending))
    ops = automation(fake, timeouts=OperationTimeouts(update_seconds=2.0, command_seconds=30.0, kill_grace_seconds=1.0))
    markers = RunMarkers(backend_objects(fake.backend_url, lambda: None))
    with markers.running("20260101T000000000000Z-dead01", "apply", heartbeat_seconds=60):
        [result] = run(ops, [planned()], tmp_path / "first")
    assert result.result is Result.FAILED and "the stack may keep a stale lock" in result.error
    [lock] = fake.locks(fake.backend_url)
    return lock


def leave_lock(fake: FakePulumi, *, created: datetime, host: str = "", user: str = "", pid: int = 4242) -> Path:
    """A lock file as pkg/backend/diy/lock.go writes it (what `killed_run` leaves, without the wait)."""
    this, me = this_host()
    path = fake.backend_dir(fake.backend_url) / f".pulumi/locks/{QUALIFIED}/7f1c2d3e-0000-4000-8000-000000000000.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "username": user or me, "hostname": host or this, "timestamp": created.isoformat()},
                               separators=(",", ":")))
    return path


def test_a_stale_lock_of_a_killed_run_is_cleared_and_the_update_goes_on(fake, tmp_path):
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {}})
    lock = killed_run(fake, tmp_path)
    # What the killed CLI left is what pkg/backend/diy/lock.go writes, where it writes it.
    assert lock.parent == fake.backend_dir(fake.backend_url) / ".pulumi" / "locks" / ORG / PROJECT / STACK
    content = json.loads(lock.read_text())
    assert list(content) == ["pid", "username", "hostname", "timestamp"]  # lockContent's fields, in order
    assert (content["hostname"], content["username"]) == this_host() == (socket.gethostname(), this_host()[1])
    assert datetime.fromisoformat(content["timestamp"]).tzinfo is not None
    [read] = read_locks(backend_objects(fake.backend_url, lambda: None), ORG, PROJECT, STACK)
    assert read.pid == content["pid"] and read.where == str(lock)
    clock = Clock()
    clock.offset = timedelta(seconds=RULE.stale_after_seconds + 60)  # the next scheduled run, hours later

    [result] = run(automation(fake), [planned()], tmp_path, recovery_for(fake, clock))

    assert result.result is Result.SUCCEEDED, result.error
    assert result.attempts == 2
    [note] = result.notes
    assert note.startswith(f"stale lock cleared: {lock}, created by ")
    assert "taken by run 20260101T000000000000Z-dead01 which is finished at" in note
    assert fake.locks(fake.backend_url) == []
    ups = [c for c in fake.calls() if c.command == "up"]
    assert [c.exit for c in ups] == [None, 255, 0]  # killed (never finished), met the lock, went through
    assert not [c for c in fake.calls() if c.command == "cancel"]  # the lock object itself, not `pulumi cancel`
    assert "stale lock cleared" in Path(result.log_file).read_text()


def test_a_fresh_lock_is_waited_for_and_not_cleared(fake, tmp_path):
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {}})
    objects = backend_objects(fake.backend_url, lambda: None)
    started = datetime.now(timezone.utc) - timedelta(minutes=20)
    RunMarkers(objects, clock=lambda: started).write("20260101T000000000000Z-dead01", "apply", started, finished=True)
    # Its run has finished, but the lock is minutes old: a CLI the run lost could still hold it.
    lock = leave_lock(fake, created=started + timedelta(seconds=30))

    [result] = run(automation(fake), [planned()], tmp_path, recovery_for(fake, Clock()), lock_attempts=3)

    assert result.result is Result.FAILED and result.attempts == 3
    assert "found the stack locked by another update (3 attempts)" in result.error
    assert "not older than the longest an operation can take (2.1 h): waited for" in result.error
    assert fake.locks(fake.backend_url) == [lock]
    assert result.notes == []


def test_an_old_lock_of_a_run_that_still_beats_is_not_cleared(fake, tmp_path):
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {}})
    objects = backend_objects(fake.backend_url, lambda: None)
    clock = Clock()
    started = clock()
    lock = leave_lock(fake, created=started + timedelta(seconds=1))
    clock.offset = timedelta(seconds=RULE.stale_after_seconds + 60)
    # The run that took the lock is still heartbeating (e.g. a longer operation timeout than this run's).
    RunMarkers(objects, clock=clock).write("20260101T000000000000Z-alive1", "apply", started)

    [result] = run(automation(fake), [planned()], tmp_path, recovery_for(fake, clock), lock_attempts=2)

    assert result.result is Result.FAILED
    assert "held by run 20260101T000000000000Z-alive1 on" in result.error and "alive (heartbeat" in result.error
    assert fake.locks(fake.backend_url) == [lock]


def test_an_old_lock_no_run_accounts_for_is_left_to_a_person(fake, tmp_path):
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {}})
    objects = DirectoryObjects(fake.backend_dir(fake.backend_url))
    key = f".pulumi/locks/{QUALIFIED}/0b6a1f4e-1111-4d3c-9f5e-111111111111.json"
    objects.write(key, json.dumps({"pid": 4242, "username": "alice", "hostname": "alices-laptop",
                                   "timestamp": "2026-01-01T09:00:00.123456789+01:00"}).encode())
    clock = Clock()
    clock.offset = timedelta(days=400)

    [result] = run(automation(fake), [planned()], tmp_path, recovery_for(fake, clock), lock_attempts=2)

    assert result.result is Result.FAILED
    assert "no runner run accounts for it (created by alice@alices-laptop (pid 4242) at 2026-01-01 08:00:00Z)" in result.error
    assert objects.read(key) is not None


def test_pending_updates_and_deletes_are_resolved_by_a_refresh_before_the_up(fake, tmp_path):
    pending = [fake.pending_operation(STACK, "updating", "r0"), fake.pending_operation(STACK, "deleting", "r1")]
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {"pending_operations": pending}})
    ops = automation(fake)
    assert [p.kind for p in pending_operations(ops.export(STACK))] == ["updating", "deleting"]

    [result] = run(ops, [planned()], tmp_path, recovery_for(fake, Clock()))

    assert result.result is Result.SUCCEEDED, result.error
    assert result.notes == ["refresh resolved 2 pending operation(s) of an interrupted update: "
                            "pending update of datalake:fake:Resource 'r0'; pending delete of datalake:fake:Resource 'r1'"]
    commands = [c.command for c in fake.calls() if c.stack == QUALIFIED]
    assert commands.index("refresh") < commands.index("up")
    [refresh] = [c for c in fake.calls() if c.command == "refresh"]
    assert "--clear-pending-creates" not in refresh.argv
    assert pending_operations(ops.export(STACK)) == []


def test_a_killed_up_leaves_a_pending_create_that_is_reported_not_dropped(fake, tmp_path):
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {}})
    create = fake.pending_operation(STACK, "creating", "silo-sales-raw", type_="aws:s3/bucketV2:BucketV2",
                                    inputs={"bucket": "acme-silo-sales-raw"})
    killed_run(fake, tmp_path, pending=[create])
    clock = Clock()
    clock.offset = timedelta(seconds=RULE.stale_after_seconds + 60)
    ops = automation(fake)
    before = len([c for c in fake.calls() if c.command == "up"])

    [result] = run(ops, [planned()], tmp_path, recovery_for(fake, clock))

    assert result.result is Result.FAILED
    assert result.error == ("not deployed: 1 pending create(s) from an interrupted update need a person (import or clear them; "
                            "the commands are in the log): pending create of aws:s3/bucketV2:BucketV2 'silo-sales-raw'")
    assert result.notes[0].startswith("stale lock cleared: ")  # the killed run's lock went first
    assert len([c for c in fake.calls() if c.command == "up"]) == before  # no `up` that would create the bucket again
    assert not [c for c in fake.calls() if c.command == "refresh"]
    [left] = pending_operations(ops.export(STACK))
    assert (left.kind, left.type, left.name) == ("creating", "aws:s3/bucketV2:BucketV2", "silo-sales-raw")
    text = Path(result.log_file).read_text()
    assert f"pulumi refresh --stack {QUALIFIED} --yes --import-pending-creates '{create['resource']['urn']}' --import-pending-creates <its id>" in text
    assert f"pulumi refresh --stack {QUALIFIED} --yes --clear-pending-creates" in text


def test_a_pending_create_proven_absent_is_cleared_and_the_update_goes_on(fake, tmp_path):
    create = fake.pending_operation(STACK, "creating", "silo-sales-raw", type_="aws:s3/bucketV2:BucketV2", inputs={"bucket": "b"})
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {"pending_operations": [create]}})
    asked = []

    def absent(op, creates):
        asked.append([c.urn for c in creates])
        return {c.urn: "HeadBucket: 404 Not Found" for c in creates}

    ops = automation(fake)
    [result] = run(ops, [planned()], tmp_path, recovery_for(fake, Clock(), absent=absent))

    assert result.result is Result.SUCCEEDED, result.error
    assert asked == [[create["resource"]["urn"]]]
    assert result.notes == ["cleared 1 pending create(s) that provably do not exist: "
                            "pending create of aws:s3/bucketV2:BucketV2 'silo-sales-raw' (HeadBucket: 404 Not Found)"]
    [refresh] = [c for c in fake.calls() if c.command == "refresh"]
    assert "--clear-pending-creates" in refresh.argv
    assert pending_operations(ops.export(STACK)) == []


def test_a_pending_create_not_proven_absent_holds_the_stack(fake, tmp_path):
    creates = [fake.pending_operation(STACK, "creating", name) for name in ("a", "b")]
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {"pending_operations": creates}})
    ops = automation(fake)
    [result] = run(ops, [planned()], tmp_path, recovery_for(fake, Clock(), absent=lambda op, found: {found[0].urn: "gone"}))
    assert result.result is Result.FAILED and "2 pending create(s)" in result.error
    assert not [c for c in fake.calls() if c.command in ("refresh", "up")]
    assert len(pending_operations(ops.export(STACK))) == 2


def test_a_drift_check_reports_pending_operations_and_changes_nothing(fake, tmp_path):
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {"pending_operations": [fake.pending_operation(STACK, "updating", "r0")]}})
    ops = automation(fake)
    [result] = run(ops, [planned(Action.DRIFT)], tmp_path, recovery_for(fake, Clock()))
    assert result.result is Result.SUCCEEDED
    assert result.notes == ["1 pending operation(s) left by an interrupted update (not resolved by a drift check): "
                            "pending update of datalake:fake:Resource 'r0'"]
    assert not [c for c in fake.calls() if c.command in ("refresh", "up")]
    assert len(pending_operations(ops.export(STACK))) == 1


def test_pending_operations_of_an_update_in_flight_are_not_touched(fake, tmp_path):
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {"pending_operations": [fake.pending_operation(STACK, "creating", "r9")]}})
    objects = DirectoryObjects(fake.backend_dir(fake.backend_url))
    host, user = this_host()
    objects.write(f".pulumi/locks/{QUALIFIED}/live.json",
                  json.dumps({"pid": 1, "username": user, "hostname": host, "timestamp": datetime.now(timezone.utc).isoformat()}).encode())
    [result] = run(automation(fake), [planned()], tmp_path, recovery_for(fake, Clock()), lock_attempts=2)
    assert result.result is Result.FAILED
    assert "pending operation(s) belong to an update that holds the lock (2 attempts)" in result.error
    assert "waited for" in result.error
    assert not [c for c in fake.calls() if c.command in ("refresh", "up")]


# --- the fake's fidelity to the CLI's lock and pending-operation behaviour -------------------------


def test_the_fake_keeps_pending_creates_across_an_up_and_drops_them_on_import(fake):
    pending = [fake.pending_operation(STACK, "creating", "r9"), fake.pending_operation(STACK, "updating", "r0")]
    fake.seed(fake.project_dir, fake.backend_url, {STACK: {"pending_operations": pending}})
    ops = automation(fake)
    log = io.StringIO()
    ops.up(STACK, log)
    assert [p.kind for p in pending_operations(ops.export(STACK))] == ["creating"]  # pkg/backend/snapshot.go
    state = ops.export(STACK)
    ops.import_state(STACK, state)
    assert pending_operations(ops.export(STACK)) == []  # `stack import` clears every pending operation
    ops.refresh(STACK, log, clear_pending_creates=False)


# --- rules, markers and S3 ------------------------------------------------------------------------


def test_the_stale_lock_limit_is_the_longest_holder_plus_a_margin():
    # A live runner stops a CLI at 45 min + 60 s; a dead one's orphans end with the 120-minute build.
    assert StaleLockRule.derive(update_seconds=45 * 60, kill_grace_seconds=60, build_timeout_minutes=[120, 60]).stale_after_seconds == 125 * 60
    assert StaleLockRule.derive(update_seconds=45 * 60, kill_grace_seconds=60, build_timeout_minutes=[30]).stale_after_seconds == 51 * 60
    assert StaleLockRule.derive(update_seconds=600, kill_grace_seconds=60, build_timeout_minutes=[], margin_seconds=0).stale_after_seconds == 660


def test_a_run_marker_beats_while_the_run_lives_and_is_finished_after(tmp_path):
    objects = DirectoryObjects(tmp_path)
    markers = RunMarkers(objects)
    with markers.running("run-1", "apply", heartbeat_seconds=0.05):
        [marker] = markers.runs()
        first = marker.heartbeat
        assert marker.finished is None and marker.alive(datetime.now(timezone.utc), 600)
        import time

        time.sleep(0.3)
        [marker] = markers.runs()
        assert marker.heartbeat > first
    [marker] = markers.runs()
    assert marker.finished is not None and not marker.alive(datetime.now(timezone.utc), 600)
    assert (marker.hostname, marker.username) == this_host()
    objects.write("runner-runs/broken.json", b"{not json")
    assert [m.run_id for m in markers.runs()] == ["run-1"]


@mock_aws
def test_on_s3_only_the_stale_lock_object_is_deleted_and_a_live_runs_lock_keeps_the_stack_waiting():
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    objects = backend_objects("s3://state/team-a?region=eu-west-1", lambda: s3)
    assert isinstance(objects, S3Objects)
    clock = Clock()
    host, user = this_host()
    markers = RunMarkers(objects, clock=clock)
    dead_started = clock() - timedelta(hours=5)
    markers.write("run-dead", "apply", dead_started)
    document = json.loads(objects.read("runner-runs/run-dead.json"))
    document["heartbeat"] = (dead_started + timedelta(minutes=30)).isoformat()  # it beat last 4.5 h ago
    objects.write("runner-runs/run-dead.json", json.dumps(document).encode())
    prefix = f".pulumi/locks/{QUALIFIED}/"
    stale = {"pid": 7, "username": user, "hostname": host, "timestamp": (dead_started + timedelta(minutes=20)).isoformat()}
    s3.put_object(Bucket="state", Key=f"team-a/{prefix}stale.json", Body=json.dumps(stale).encode())
    locks = LockRecovery(objects, StaleLockRule(stale_after_seconds=3600), org=ORG, project=PROJECT, markers=markers, clock=clock)

    # The marker was written just now: S3's LastModified counts as a heartbeat, whatever the document says.
    [held] = locks.clear_stale(STACK).held
    assert "held by run run-dead on" in held and ", alive (heartbeat " in held

    clock.offset = timedelta(minutes=61)
    # Meanwhile another run, on another host, is alive and holds a lock of its own.
    RunMarkers(objects, clock=clock).write("run-live", "apply", clock(), host=("elsewhere", "bob"), pid=8)
    live = {"pid": 9, "username": "bob", "hostname": "elsewhere", "timestamp": clock().isoformat()}
    s3.put_object(Bucket="state", Key=f"team-a/{prefix}live.json", Body=json.dumps(live).encode())

    check = locks.clear_stale(STACK)
    [cleared] = check.cleared
    assert cleared.startswith(f"stale lock cleared: s3://state/team-a/{prefix}stale.json, created by {user}@{host} (pid 7); ")
    assert "taken by run run-dead which is stopped: its last heartbeat was at" in cleared
    [held] = check.held
    assert held.startswith(f"s3://state/team-a/{prefix}live.json: created by bob@elsewhere (pid 9); held by run run-live on elsewhere, alive")
    assert not check.retry_now
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="state", Prefix="team-a/.pulumi/locks/")["Contents"]]
    assert keys == [f"team-a/{prefix}live.json"]


def test_apply_beats_a_run_marker_and_clears_the_stale_lock_a_killed_run_left(tmp_path):
    from offline.fake_stacks import FakeStackOperations, deployed_master_export
    from runner.cli import main
    from runner.run import Clients
    from runner.demo import seed_organization
    from runner.model import StackInfo

    state = tmp_path / "state"
    objects = DirectoryObjects(state)
    host, user = this_host()
    hours_ago = datetime.now(timezone.utc) - timedelta(hours=5)
    # What a build killed five hours ago left: its marker (never finished) and one stack's lock.
    RunMarkers(objects, clock=lambda: hours_ago).write("20260101T000000000000Z-killed", "apply", hours_ago)
    with mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        seeded = seed_organization(org)
        account = next(iter(seeded.with_stacks))
        stack = f"silo-{account}"
        key = f".pulumi/locks/{ORG}/{PROJECT}/{stack}/5d0c9a52-2222-4c1e-8d7a-222222222222.json"
        objects.write(key, json.dumps({"pid": 31337, "username": user, "hostname": host,
                                       "timestamp": (hours_ago + timedelta(minutes=3)).isoformat()}).encode())
        for path in (state / key, state / "runner-runs/20260101T000000000000Z-killed.json"):
            os_utime(path, hours_ago + timedelta(minutes=3))
        # The master as deployed, so the catalog update after the run's creations has its analytics component.
        fake = FakeStackOperations([StackInfo(f"silo-{a}", name) for a, name in seeded.with_stacks.items()], locked={stack: 1},
                                   exports={"master": deployed_master_export()})
        args = ["apply", f"--silo-ou={seeded.silo_ou_id}", f"--backend-url=file://{state}", f"--report-to={tmp_path / 'reports'}",
                f"--log-dir={tmp_path / 'logs'}", f"--exports-to={tmp_path / 'exports'}", "--lock-retry-seconds=30"]
        assert main(args, Clients(organizations=org, stack_ops=fake)) == 0

    [report] = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("*/report.json")]
    [result] = [r for r in report["results"] if r["stack"] == stack]
    assert result["result"] == "succeeded" and result["attempts"] == 2
    [note] = result["notes"]
    assert note.startswith(f"stale lock cleared: {state / key}, created by {user}@{host} (pid 31337); 5.0 h old (limit 2.1 h), "
                           "taken by run 20260101T000000000000Z-killed which is stopped: its last heartbeat was at")
    assert "retry 2 in 0.0s" in Path(result["logFile"]).read_text()  # cleared: no waiting
    assert not (state / key).exists()
    marker = json.loads((state / "runner-runs" / f"{report['runId']}.json").read_text())
    assert marker["command"] == "apply" and marker["finished"] and (marker["hostname"], marker["username"]) == (host, user)


def os_utime(path: Path, when: datetime) -> None:
    import os

    os.utime(path, (when.timestamp(), when.timestamp()))


# --- a rollout killed half way ---------------------------------------------------------------------

RUNNER_SCRIPT = """
import json, sys
from pathlib import Path
from runner.execution import ExecutionSettings, execute
from runner.model import Action, PlannedOperation
from runner.recovery import for_run
from runner.stack_ops import AutomationStackOperations, OperationTimeouts

spec = json.loads(sys.argv[1])
ops = AutomationStackOperations(Path(spec["project"]), backend_url=spec["backend"], secrets_provider="passphrase",
                                env={"PULUMI_CONFIG_PASSPHRASE": "test"}, timeouts=OperationTimeouts(update_seconds=600))
operations = [PlannedOperation(a[0], a[1], a[2], Action(a[3]), a[4], a[5], a[6]) for a in spec["operations"]]
recovery, alive = for_run(spec["run"], "apply", backend_url=spec["backend"], s3_client=lambda: None, org="organization",
                          project="datalake", update_seconds=600, kill_grace_seconds=60, build_timeout_minutes=[120],
                          project_dir=Path(spec["project"]))
with alive:
    execute(operations, ops, ExecutionSettings(log_dir=Path(spec["logs"]), max_concurrency=1), lambda s, state: "-", recovery=recovery)
"""


def as_args(op: PlannedOperation) -> list:
    return [op.account_id, op.account_name, op.stack, op.action.value, op.reason, op.silo_name, op.config]


def test_a_rollout_killed_after_3_of_5_stacks_redoes_only_the_other_2(fake, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from runner.recovery import for_run

    operations = [planned(account=f"{n:012d}") for n in range(1, 6)]
    fake.seed(fake.project_dir, fake.backend_url, {op.stack: {} for op in operations})
    fake.rule("up", "hang", stack=operations[3].stack, times=1, ignore_sigint=True)
    spec = {"project": str(fake.project_dir), "backend": fake.backend_url, "logs": str(tmp_path / "logs-1"),
            "run": "20260101T000000000000Z-killed", "operations": [as_args(op) for op in operations]}
    root = Path(__file__).resolve().parent.parent
    runner = subprocess.Popen([sys.executable, "-c", RUNNER_SCRIPT, json.dumps(spec)], cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not [c for c in fake.calls() if c.raw.get("hanging")]:
        assert runner.poll() is None, runner.stderr.read().decode()
        assert time.monotonic() < deadline, "the fourth up never started"
        time.sleep(0.2)
    # The build dies with its container: the runner, the hanging CLI and its child, all at once.
    [hung] = [c for c in fake.calls() if c.raw.get("hanging")]
    for pid in (runner.pid, hung.pid, *hung.children):
        os.kill(pid, signal.SIGKILL)
    runner.wait()
    first_ups = [c.stack.rsplit("/", 1)[-1] for c in fake.calls() if c.command == "up"]
    assert first_ups == [op.stack for op in operations[:4]]
    assert len(fake.locks(fake.backend_url)) == 1

    clock = Clock()
    clock.offset = timedelta(seconds=RULE.stale_after_seconds + 3600)  # the next scheduled run
    recovery, alive = for_run("20260101T060000000000Z-next", "apply", backend_url=fake.backend_url, s3_client=lambda: None,
                              org=ORG, project=PROJECT, update_seconds=2.0, kill_grace_seconds=1.0, build_timeout_minutes=[120],
                              project_dir=fake.project_dir, clock=clock)
    calls_before = len(fake.calls())
    with alive:
        results = run(automation(fake), operations, tmp_path, recovery)

    assert [r.result for r in results] == [Result.SUCCEEDED] * 5, [r.error for r in results]
    second_ups = [c.stack.rsplit("/", 1)[-1] for c in fake.calls()[calls_before:] if c.command == "up"]
    # The fourth met the killed run's lock (stale by now: cleared) and went through on its retry.
    assert sorted(second_ups) == [operations[3].stack, operations[3].stack, operations[4].stack]
    for result in results[:3]:
        [note] = result.notes
        assert note.startswith("not repeated: run 20260101T000000000000Z-killed update this stack with the same program and config at ")
        assert result.attempts == 0
    assert results[3].notes[0].startswith("stale lock cleared: ")
    # The next run finished: its journal is gone, and a third run would resume nothing.
    objects = backend_objects(fake.backend_url, lambda: None)
    assert objects.list("runner-runs/20260101T060000000000Z-next/") == []
    assert len(objects.list("runner-runs/20260101T000000000000Z-killed/done/")) == 3
    recovery, _ = for_run("20260101T070000000000Z-third", "apply", backend_url=fake.backend_url, s3_client=lambda: None, org=ORG,
                          project=PROJECT, update_seconds=2.0, kill_grace_seconds=1.0, build_timeout_minutes=[120],
                          project_dir=fake.project_dir, clock=clock)
    assert recovery.resumption is not None and recovery.resumption.interrupted == ""
    assert recovery.done_earlier(operations[0]) == ""


def test_an_apply_resumes_only_a_killed_run_of_its_own_environment(tmp_path):
    from runner.ledger import bundle_digest
    from runner.recovery import RunJournal, desired_state, for_run

    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(f"name: {PROJECT}\n")
    objects = DirectoryObjects(tmp_path / "state")
    markers = RunMarkers(objects)
    op = planned()
    then = datetime.now(timezone.utc) - timedelta(hours=2)
    markers.write("20260101T000000000000Z-default", "apply", then)
    RunJournal(objects, "20260101T000000000000Z-default").record(op.stack, "update", desired_state(op, bundle_digest(project)))
    markers.write("20260101T010000000000Z-staging", "apply --env staging", then)  # later, killed too, another environment

    def recovery(run_id: str, environment=None):
        found, _ = for_run(run_id, "apply", backend_url=f"file://{tmp_path / 'state'}", s3_client=lambda: None, org=ORG,
                           project=PROJECT, update_seconds=60, kill_grace_seconds=1, build_timeout_minutes=[120],
                           project_dir=project, environment=environment)
        return found

    default = recovery("20260101T020000000000Z-next")
    assert default.resumption.interrupted == "20260101T000000000000Z-default"
    assert default.done_earlier(op).startswith("not repeated: run 20260101T000000000000Z-default update this stack")
    assert recovery("20260101T030000000000Z-stage", "staging").resumption.interrupted == "20260101T010000000000Z-staging"
    changed = PlannedOperation(op.account_id, op.account_name, op.stack, op.action, op.reason, op.silo_name, {**op.config, "datalake:x": 1})
    assert recovery("20260101T040000000000Z-again").done_earlier(changed) == ""  # another config: deployed again


def test_markers_of_runs_finished_long_ago_are_pruned_with_their_journals_and_unfinished_ones_kept(tmp_path):
    objects = DirectoryObjects(tmp_path)
    now = datetime.now(timezone.utc)

    def marker(run_id: str, days_ago: float, *, finished: bool) -> None:
        when = now - timedelta(days=days_ago)
        RunMarkers(objects, clock=lambda: when).write(run_id, "apply", when, finished=finished)
        os.utime(tmp_path / f"runner-runs/{run_id}.json", (when.timestamp(), when.timestamp()))

    marker("run-old-finished", 20, finished=True)
    objects.write("runner-runs/run-old-finished/done/silo-111111111111", b"{}")
    marker("run-old-killed", 20, finished=False)  # never finished: it still shows its locks as stale
    marker("run-recent", 3, finished=True)
    objects.write("runner-runs/run-recent/done/silo-111111111111", b"{}")

    markers = RunMarkers(objects)
    with markers.running("run-now", "apply", heartbeat_seconds=60):
        pass
    kept = sorted(item.key for item in objects.list("runner-runs/"))
    assert kept == ["runner-runs/run-now.json", "runner-runs/run-old-killed.json", "runner-runs/run-recent.json",
                    "runner-runs/run-recent/done/silo-111111111111"]
    assert markers.prune(keep_days=2) == ["run-recent"]
