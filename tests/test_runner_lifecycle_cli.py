"""The silo lifecycle end to end through `python -m runner`: moto Organizations and silo accounts, the fake stacks, a clock.

Grace window (return inside: update; outside: destroy; partners revoked at once either way), retire
then return with adoption (part of the retained set gone), the ledger of retained data and purge,
master catalogs after creations and retirements, and what-if from the command line.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from offline.fake_stacks import FakeStackOperations, export_of
from offline.stacks import run_silo, silo_config
from runner.cli import main
from runner.run import Clients
from runner.demo import MOVED_OUT, seed_organization
from runner.ledger import Ledger
from runner.lifecycle import ADOPT_KEY, GRACE_STARTED
from runner.model import StackInfo
from runner.partners import AssumedRoleIam
from runner.retained import RETAINED
from runner.silo_access import AssumedRoleClients

from test_runner_cli import MASTER_STATE  # noqa: E402  (the master as deployed)

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
ROLE = "OrganizationAccountAccessRole"


class World:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.org = boto3.client("organizations", region_name="us-east-1")
        self.seeded = seed_organization(self.org)
        self.root = self.org.list_roots()["Roots"][0]["Id"]
        self.sandbox = next(o["Id"] for o in self.org.list_organizational_units_for_parent(ParentId=self.root)["OrganizationalUnits"]
                            if o["Name"] == "sandbox")
        self.moved = self.seeded.accounts[MOVED_OUT]
        self.silo = self.seeded.with_stacks[self.moved]
        self.stack = f"silo-{self.moved}"
        self.fake = FakeStackOperations([StackInfo(f"silo-{a}", name) for a, name in self.seeded.with_stacks.items()],
                                        exports={"master": MASTER_STATE})
        self.now = T0
        self.clients = AssumedRoleClients(ROLE, "us-east-1")

    @functools.cached_property
    def first_life(self) -> Any:
        """The moved-out silo as deployed (the program under mocks); its export is what its retirement records."""
        recording = run_silo(silo_config(**{"datalake:accountId": self.moved, "datalake:siloName": self.silo}))
        self.fake.exports[self.stack] = export_of(recording)
        return recording

    def run(self, *argv: str) -> int:
        args = [*argv, f"--silo-ou={self.seeded.silo_ou_id}", f"--report-to={self.tmp / 'reports'}", f"--log-dir={self.tmp / 'logs'}",
                f"--exports-to={self.tmp / 'exports'}", "--lock-retry-seconds=0.01", "--allow-mass-retire", "--region=us-east-1"]
        return main(args, Clients(organizations=self.org, stack_ops=self.fake, now=lambda: self.now))

    def ledger(self) -> Ledger:
        return Ledger(str(self.tmp / "reports" / "ledger"))

    def report(self) -> dict[str, Any]:
        return json.loads(sorted((self.tmp / "reports").glob("*/report.json"))[-1].read_text())

    def calls(self, stack: str, *, exports: bool = False) -> list[str]:
        """What was done to the stack; exports (the durable one of a retirement, and the reads of state
        that recovery makes before operations) only when asked for. Silo-name reads (a stack the
        ledger does not know yet) change nothing and are left out."""
        return [op for op, s in self.fake.calls if s == stack and op != "silo-name" and (exports or op != "export")]

    def partners(self) -> set[str]:
        iam = AssumedRoleIam(ROLE, "us-east-1")(self.moved)
        return {u["UserName"] for u in iam.list_users(PathPrefix="/datalake/partners/")["Users"]}

    def add_partner(self, name: str) -> None:
        iam = AssumedRoleIam(ROLE, "us-east-1")(self.moved)
        iam.create_user(UserName=name, Path=f"/datalake/partners/{self.silo}/")
        iam.create_access_key(UserName=name)

    def move_back(self) -> None:
        self.org.move_account(AccountId=self.moved, SourceParentId=self.sandbox, DestinationParentId=self.seeded.silo_ou_id)


@pytest.fixture
def world(tmp_path):
    with mock_aws():
        yield World(tmp_path)


def test_grace_revokes_at_once_and_an_account_back_inside_the_window_is_updated(world, capsys):
    world.add_partner("acme")
    assert world.run("apply") == 0
    assert "retire-destroy pending (destroys on 2026-03-17)" in capsys.readouterr().out
    assert world.partners() == set()  # revoked at once
    assert world.calls(world.stack, exports=True) == []  # nothing exported, destroyed or removed
    assert world.ledger().get(world.stack).extra[GRACE_STARTED] == "2026-03-10T12:00:00+00:00"
    [pending] = [r for r in world.report()["results"] if r["accountId"] == world.moved]
    assert pending["notes"][-1] == "retire-destroy pending: the stack is destroyed on 2026-03-17 unless the account returns"

    world.now = T0 + timedelta(days=3)
    world.add_partner("late")  # made through the still-running dropzone API during the grace
    assert world.run("apply") == 0
    assert world.partners() == set()  # every run of the grace revokes again
    assert world.ledger().get(world.stack).extra[GRACE_STARTED] == "2026-03-10T12:00:00+00:00"

    world.now = T0 + timedelta(days=5)
    world.move_back()
    assert world.run("apply") == 0
    assert world.calls(world.stack) == ["set_config", "up"]  # an update: nothing was lost
    [back] = [r for r in world.report()["results"] if r["accountId"] == world.moved]
    assert back["action"] == "update" and GRACE_STARTED not in world.ledger().get(world.stack).extra
    assert world.report()["plan"]["operations"][[o["account_id"] for o in world.report()["plan"]["operations"]].index(world.moved)]["reason"].startswith(
        "account returned within the grace period")


def test_after_the_window_the_stack_is_destroyed_and_what_it_left_is_recorded(world, capsys):
    assert world.first_life
    world.add_partner("acme")
    assert world.run("apply") == 0
    world.now = T0 + timedelta(days=6, hours=23)
    assert world.run("apply") == 0
    assert "destroy" not in world.calls(world.stack)
    world.now = T0 + timedelta(days=7, minutes=1)
    assert world.run("apply") == 0
    assert world.calls(world.stack) == ["destroy", "remove"] and "export" in world.calls(world.stack, exports=True)
    assert world.partners() == set()
    record = world.ledger().get(world.stack).extra[RETAINED]
    assert record["action"] == "retire-destroy" and record["exported_to"].endswith(f"/{world.stack}.json")
    assert Path(record["exported_to"].removeprefix("file://")).exists() or str(world.tmp / "exports") in record["exported_to"]
    retained_ids = {r["id"] for r in record["resources"]}
    assert f"acme-dl-{world.silo}-raw-{world.moved}" in retained_ids
    assert len(record["resources"]) == len([r for r in world.first_life.resources if r.retain_on_delete])
    assert GRACE_STARTED not in world.ledger().get(world.stack).extra

    assert world.run("retained") == 0
    out = capsys.readouterr().out
    assert world.silo in out and "total" in out.splitlines()[-1]


def test_a_returning_account_adopts_what_is_still_there(world):
    assert world.first_life
    assert world.run("apply", "--retire-grace-days=0") == 0
    assert world.calls(world.stack) == ["destroy", "remove"]
    # Of what stayed behind, the raw bucket and the audit log group are still in the account; the
    # other buckets were deleted by hand and the mock key ids exist nowhere.
    s3, logs = world.clients(world.moved, "s3"), world.clients(world.moved, "logs")
    raw = f"acme-dl-{world.silo}-raw-{world.moved}"
    s3.create_bucket(Bucket=raw)
    audit = next(r for r in world.first_life.resources if r.type == "aws:cloudwatch/logGroup:LogGroup" and r.retain_on_delete)
    logs.create_log_group(logGroupName=audit.outputs["id"])

    world.move_back()
    world.fake.calls.clear()
    assert world.run("apply") == 0
    assert world.calls(world.stack) == ["create", "set_config", "up"]
    config = world.fake.configs[world.stack]
    assert config["datalake:siloName"] == world.silo and world.fake.tags[world.stack]["datalake:silo-name"] == world.silo
    adopt = config[ADOPT_KEY]
    assert set(adopt.values()) == {raw, audit.outputs["id"]}  # the raw bucket, its settings and the log group
    assert all(value == raw for key, value in adopt.items() if key.startswith("aws:s3/"))

    # The program given that config imports exactly those resources and creates the rest.
    second_life = run_silo(config)
    imported = {f"{r.type}::{r.name}": r.import_id for r in second_life.resources if r.import_id}
    assert imported == adopt
    assert {r.name for r in second_life.resources if r.retain_on_delete and not r.import_id} == {
        r.name for r in world.first_life.resources if r.retain_on_delete} - {key.split("::", 1)[1] for key in adopt}
    record = world.ledger().get(world.stack).extra[RETAINED]
    assert record["resources"] == [] and record["adopted"] == sorted(adopt)


def test_purge_from_the_command_line_is_a_dry_run_until_confirmed_and_refuses_an_active_silo(world, capsys, caplog):
    assert world.first_life
    assert world.run("apply", "--retire-grace-days=0") == 0
    s3 = world.clients(world.moved, "s3")
    raw = f"acme-dl-{world.silo}-raw-{world.moved}"
    s3.create_bucket(Bucket=raw)
    s3.put_object(Bucket=raw, Key="orders.csv", Body=b"1,2,3")
    capsys.readouterr()

    assert world.run("purge", world.silo) == 0
    out = capsys.readouterr().out
    assert f"empty bucket {raw}" in out and "dry run: nothing was deleted" in out
    assert s3.head_bucket(Bucket=raw)

    assert world.run("purge", world.silo, "--confirm", "sales") == 2
    assert f"--confirm 'sales' does not match the silo '{world.silo}'" in caplog.text

    world.move_back()
    assert world.run("purge", world.silo, "--confirm", world.silo) == 2
    assert f"purge {world.silo}: refused, account {world.moved} is an active silo" in caplog.text
    assert s3.head_bucket(Bucket=raw)

    world.org.move_account(AccountId=world.moved, SourceParentId=world.seeded.silo_ou_id, DestinationParentId=world.sandbox)
    assert world.run("purge", world.silo, "--confirm", world.silo) == 0
    out = capsys.readouterr().out
    assert f"deleted bucket {raw} (1 versions and delete markers)" in out
    assert world.ledger().get(world.stack).extra[RETAINED]["purged_at"]


def test_master_catalogs_follow_creations_and_retirements_and_time_is_measured_from_the_event(world):
    world.now = T0 + timedelta(seconds=42)
    assert world.run("apply", "--retire-grace-days=0", "--event-time=2026-03-10T12:00:00Z") == 0
    catalogs = world.report()["catalogs"]
    created = {r["accountId"] for r in world.report()["results"] if r["action"] == "create"}
    retired = {r["accountId"] for r in world.report()["results"] if r["action"].startswith("retire")}
    assert set(catalogs["accounts"]) == created | retired and len(created) == 2 and len(retired) == 4
    assert world.fake.targets["master"] == catalogs["targets"]
    assert all("$datalake:analytics:OrgAnalytics$aws:athena/dataCatalog:DataCatalog::master-analytics-catalog-" in t for t in catalogs["targets"])
    assert catalogs["secondsSinceEvent"] == {a: 42.0 for a in sorted(created | retired)}

    world.fake.calls.clear()
    assert world.run("apply") == 0  # nothing created or retired: the master is not touched
    assert world.calls("master") == [] and world.report()["catalogs"] is None


def test_a_master_that_cannot_be_updated_fails_the_run_after_the_silos(world, caplog):
    world.fake.failures["master"] = "error: AccessDenied: athena:CreateDataCatalog"
    assert world.run("apply", "--retire-grace-days=0") == 1
    assert "the silos are done, but the master's catalogs are stale" in caplog.text
    assert all(r["result"] == "succeeded" for r in world.report()["results"])


def test_whatif_from_the_command_line_changes_nothing(world, capsys):
    finance = world.seeded.accounts["Finance"]
    assert world.run("whatif", "--move", finance, "--to", world.sandbox, "--close", world.seeded.accounts["Marketing"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"What if: move {finance} to {world.sandbox}; close {world.seeded.accounts['Marketing']}")
    assert "retire-destroy pending (destroys on 2026-03-17)" in out  # the grace applies to hypothetical retirements too
    assert "Compared with today's plan:" in out and "update: ACTIVE account with a stack" in out
    assert [c for c in world.fake.calls if c[0] not in ("list", "silo-name", "versions")] == []  # reads only
    assert world.org.list_parents(ChildId=finance)["Parents"][0]["Id"] != world.sandbox
    assert world.run("whatif") == 2
