"""The ledger during a run: records per outcome, listing by ledger, and coalescing behind another run's lock."""

from __future__ import annotations

from components.shared.errors import StackLockedError
from offline.fake_stacks import FakeStackOperations
from runner.bookkeeping import LedgerBook, RecordingOperations, coalesced_results
from runner.execution import ExecutionSettings, execute
from runner.ledger import Ledger
from runner.model import Action, PlannedOperation, Result, StackInfo

WANTED = "sha256:wanted"


def op(n: int, action: Action = Action.UPDATE) -> PlannedOperation:
    config = {"datalake:accountId": f"{n:012d}"} if action in (Action.CREATE, Action.UPDATE) else None
    return PlannedOperation(f"{n:012d}", f"Team {n}", f"silo-{n:012d}", action, "test", f"team-{n}", config)


class OtherRunHoldsTheLock(FakeStackOperations):
    """The first `up` of `stack` meets another run's lock; that run deploys `deploys` meanwhile (or nothing)."""

    def __init__(self, ledger: Ledger, stack: str, deploys: str, **kw):
        super().__init__(**kw)
        self.ledger, self.stack, self.deploys, self.met = ledger, stack, deploys, False

    def up(self, stack, log):
        if stack == self.stack and not self.met:
            self.met = True
            self._record("up", stack)
            if self.deploys:
                self.ledger.record_deployment(stack=stack, account_id=stack[5:], silo_name="team-1", action="update",
                                              succeeded=True, wanted=self.deploys)
            raise StackLockedError(f"{stack}: up found the stack locked by another update")
        return super().up(stack, log)


def run(tmp_path, fake, operations, ledger):
    recorder = RecordingOperations(fake, ledger, {o.stack: o for o in operations}, {o.stack: WANTED for o in operations})
    settings = ExecutionSettings(log_dir=tmp_path / "logs", lock_retry_seconds=0.01)
    return coalesced_results(execute(operations, recorder, settings, lambda stack, state: "x"), recorder), recorder


def test_a_retry_after_another_run_deployed_the_same_state_does_not_deploy_again(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger"))
    fake = OtherRunHoldsTheLock(ledger, "silo-000000000001", deploys=WANTED)
    [result], recorder = run(tmp_path, fake, [op(1)], ledger)
    assert result.result is Result.UNCHANGED and result.error.startswith("coalesced: another run deployed this state at 20")
    assert [c for c in fake.calls if c[0] == "up"] == [("up", "silo-000000000001")]  # the locked attempt only
    assert "not deployed again" in (tmp_path / "logs" / "silo-000000000001.log").read_text()


def test_a_retry_deploys_when_the_other_run_deployed_something_else(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger"))
    for deployed in ("", "sha256:older"):
        fake = OtherRunHoldsTheLock(ledger, "silo-000000000001", deploys=deployed)
        [result], _ = run(tmp_path, fake, [op(1)], ledger)
        assert result.result is Result.SUCCEEDED and len([c for c in fake.calls if c[0] == "up"]) == 2
        entry = ledger.get("silo-000000000001")
        assert (entry.result, entry.fingerprint, entry.action) == ("succeeded", WANTED, "update")


def test_each_outcome_is_recorded_when_it_happens(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger"))
    fake = FakeStackOperations([StackInfo(f"silo-{n:012d}", f"team-{n}") for n in (2, 3, 4)], failures={"silo-000000000002": "error: boom"})
    operations = [op(1, Action.CREATE), op(2), op(3, Action.RETIRE_FORGET)]
    results, _ = run(tmp_path, fake, operations, ledger)
    assert [r.result for r in results] == [Result.SUCCEEDED, Result.FAILED, Result.SUCCEEDED]
    created, failed, retired = (ledger.get(o.stack) for o in operations)
    assert (created.result, created.fingerprint, created.silo_name, created.action) == ("succeeded", WANTED, "team-1", "create")
    assert (failed.result, failed.fingerprint) == ("failed", "")
    # A retired stack's entry stays, with its silo name, and can never be skipped.
    assert (retired.action, retired.fingerprint, retired.silo_name, retired.skip_reason(WANTED)) == ("retire-forget", "", "team-3", "")

    drift = [PlannedOperation(**{**op(4).__dict__, "action": Action.DRIFT})]
    fake.drift = {"silo-000000000004": ["update urn:x"]}
    [result], _ = run(tmp_path, fake, drift, ledger)
    assert result.result is Result.DRIFTED and ledger.get("silo-000000000004").drift.clean is False


def test_stacks_come_from_one_listing_and_the_ledger(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger"))
    fake = FakeStackOperations([StackInfo(f"silo-{n:012d}", f"team-{n}") for n in (1, 2, 3)] + [StackInfo("master")])
    ledger.record_deployment(stack="silo-000000000001", account_id="000000000001", silo_name="team-1", action="create", succeeded=True, wanted=WANTED)
    ledger.record_deployment(stack="silo-000000000009", account_id="000000000009", silo_name="gone", action="create", succeeded=True, wanted=WANTED)
    book = LedgerBook(ledger)
    book.load()
    stacks = {s.name: s.silo_name for s in book.stacks(fake)}
    # The backend's listing decides which stacks exist (silo-9 is only in the ledger); the ledger gives names.
    assert stacks == {"silo-000000000001": "team-1", "silo-000000000002": "team-2", "silo-000000000003": "team-3", "master": None}
    assert sorted(c for c in fake.calls if c[0] != "list") == [("silo-name", "silo-000000000002"), ("silo-name", "silo-000000000003")]
    assert LedgerBook(None).stacks(fake) == fake.list_stacks()
