"""`python -m runner` end to end: moto Organizations + the fake stack operations; exit codes and reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from offline.boto_faults import fail_session_with_error
from offline.fake_stacks import FakeStackOperations, deployed_master_export
from runner.cli import main
from runner.run import Clients
from runner.demo import GONE_ACCOUNT, MOVED_OUT, OPTED_OUT, SUSPENDED, seed_organization
from runner.model import StackInfo
from runner.partners import AssumedRoleIam


# The master as deployed: what the catalog update after a run needs from its export.
MASTER_STATE = deployed_master_export("master")


@pytest.fixture
def world(tmp_path):
    with mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        seeded = seed_organization(org)
        fake = FakeStackOperations([StackInfo(f"silo-{a}", name) for a, name in seeded.with_stacks.items()],
                                   exports={"master": MASTER_STATE})
        yield seeded, org, fake, tmp_path


def run(world, *argv: str, **fake_kw) -> int:
    seeded, org, fake, tmp_path = world
    for key, value in fake_kw.items():
        setattr(fake, key, value)
    # These tests are about what happens once a retire-destroy destroys: no grace period unless a test sets one.
    grace = [] if any(a.startswith("--retire-grace-days") for a in argv) else ["--retire-grace-days=0"]
    args = [*argv, f"--silo-ou={seeded.silo_ou_id}", f"--report-to={tmp_path / 'reports'}", f"--log-dir={tmp_path / 'logs'}",
            f"--exports-to={tmp_path / 'exports'}", "--lock-retry-seconds=0.01", *grace]
    return main(args, Clients(organizations=org, stack_ops=fake))


def last_report(tmp_path: Path) -> dict:
    return last_report_at(tmp_path / "reports")


def last_report_at(location: Path) -> dict:
    [path] = sorted(location.glob("*/report.json"))[-1:]
    return json.loads(path.read_text())


def test_apply_reconciles_every_account_and_reports(world, capsys):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply") == 0
    out = capsys.readouterr().out
    ids = seeded.accounts
    report = last_report(tmp_path)
    results = {r["accountId"]: r for r in report["results"]}
    assert results[ids[SUSPENDED]]["action"] == "retire-forget"
    assert results[GONE_ACCOUNT]["action"] == "retire-forget"
    assert results[ids[MOVED_OUT]]["action"] == "retire-destroy"
    assert results[ids[OPTED_OUT]]["action"] == "retire-destroy"
    assert results[ids["Fraud Detection"]]["action"] == "create"
    assert all(r["result"] == "succeeded" for r in report["results"])
    assert report["exitCode"] == 0 and report["counts"]["succeeded"] == len(report["results"]) == 22
    assert {"discovery", "listStacks", "execution"} <= set(report["timings"])
    # The backend now holds exactly the wanted accounts' stacks.
    wanted = {f"silo-{a}" for name, a in ids.items() if name not in (SUSPENDED, MOVED_OUT, OPTED_OUT)}
    assert set(fake.stacks) == wanted
    assert fake.removed[f"silo-{ids[SUSPENDED]}"] is True and fake.removed[f"silo-{ids[MOVED_OUT]}"] is False
    exports = list((tmp_path / "exports" / report["runId"]).glob("*.json"))
    assert len(exports) == 4 and report["exportsTo"] == str(tmp_path / "exports")
    # The summary table lists every account with its result.
    for account_id in results:
        assert account_id in out
    assert "22 succeeded" in out


def test_dry_run_changes_nothing(world, capsys):
    _, _, fake, tmp_path = world
    assert run(world, "apply", "--dry-run", f"--plan-json={tmp_path / 'plan.json'}") == 0
    # Reads only: one listing, the silo names the empty ledger does not know yet, the CLI versions.
    assert {c for c, _ in fake.calls} == {"list", "silo-name", "versions"}
    assert [c for c, _ in fake.calls].count("list") == 1
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert len(plan["operations"]) == 22 and plan["existingStacks"] == 20
    assert "retire-forget" in capsys.readouterr().out
    assert last_report(tmp_path)["results"] == []


def test_failures_exit_1_and_the_report_names_them(world, capsys):
    seeded, _, _, tmp_path = world
    broken = f"silo-{seeded.accounts['Finance']}"
    assert run(world, "apply", failures={broken: "error: AccessDenied assuming OrganizationAccountAccessRole"}) == 1
    report = last_report(tmp_path)
    [failed] = [r for r in report["results"] if r["result"] == "failed"]
    assert failed["stack"] == broken and "AccessDenied" in failed["error"]
    assert report["exitCode"] == 1
    assert "AccessDenied" in capsys.readouterr().out


def test_mass_retire_is_held_unless_allowed(world, capsys, caplog):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply", "--max-retire-share=0.1") == 1
    retiring = {r["stack"] for r in last_report(tmp_path)["results"] if r["action"].startswith("retire")}
    # Not a retirement's export either (updates read their state first, for pending operations; the
    # creates ran, so the master's catalogs were read and updated too).
    assert len(retiring) == 4 and not [c for c in fake.calls if c[0] in ("destroy", "remove") or (c[0] == "export" and c[1] in retiring)]
    assert "retires 4 of 20 stacks (20%), more than the allowed 10%" in caplog.text
    assert "SAFETY:" in capsys.readouterr().out
    held = [r for r in last_report(tmp_path)["results"] if r["result"] == "skipped"]
    assert len(held) == 4 and all(r["error"].startswith("held:") for r in held)

    assert run(world, "apply", "--max-retire-share=0.1", "--allow-mass-retire") == 0
    assert len([c for c in fake.calls if c[0] == "remove"]) == 4


def test_a_broken_template_exits_2_before_touching_a_stack(world, tmp_path, caplog):
    template = tmp_path / "template.yaml"
    text = (Path(__file__).resolve().parent.parent / "Pulumi.silo-template.yaml").read_text()
    template.write_text(text.replace("datalake:namePrefix: acme-dl", "datalake:namePrefix: ACME"))
    assert run(world, "apply", f"--template={template}") == 2
    assert "datalake:namePrefix: got 'ACME'" in caplog.text and "(set in " in caplog.text
    # The template is checked before the backend is even listed.
    assert world[2].calls == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["apply", "--max-concurrency=0"], "--max-concurrency 0: must be between 1 and 64"),
        (["apply", "--deny=12"], "not a 12-digit account id"),
        (["apply", "--max-retire-share=2"], "must be between 0 and 1"),
        (["apply", "--operation-timeout=0"], "--operation-timeout 0: must be more than 0 and at most 1440 minutes"),
        (["launch"], "invalid choice: 'launch'"),
    ],
)
def test_bad_invocations_exit_2_with_a_message(world, argv, message, caplog, capsys):
    assert run(world, *argv) == 2
    assert message in caplog.text + capsys.readouterr().err
    assert not [c for c, _ in world[2].calls if c != "list"]


def test_a_bad_master_config_exits_2_naming_the_key(world, tmp_path, caplog):
    master = tmp_path / "master.yaml"
    master.write_text("config:\n  datalake:kind: master\n  aws:region: eu-west-1\n")
    assert run(world, "plan", f"--master-config={master}") == 2
    assert "datalake:organizationId: is required but not set" in caplog.text


def test_failed_discovery_exits_1_and_changes_nothing(world, caplog):
    seeded, org, fake, tmp_path = world
    args = ["apply", "--silo-ou=ou-zzzz-99999999", f"--report-to={tmp_path / 'reports'}", f"--log-dir={tmp_path / 'logs'}"]
    assert main(args, Clients(organizations=org, stack_ops=fake)) == 1
    assert fake.calls == []
    assert "discovery failed, so nothing was changed and no stack was retired" in caplog.text
    assert "OrganizationalUnitNotFoundException" in last_report(tmp_path)["error"]


def test_drift_lists_changed_resources_and_exits_1(world, capsys):
    seeded, _, fake, tmp_path = world
    drifted = f"silo-{seeded.accounts['Payments']}"
    change = "update urn:pulumi:silo::datalake::aws:s3/bucketV2:BucketV2::raw"
    assert run(world, "drift", drift={drifted: [change]}) == 1
    out = capsys.readouterr().out
    assert change in out and "1 of 16 stacks drifted" in out
    assert not [c for c, _ in fake.calls if c in ("up", "destroy", "remove", "create")]
    assert run(world, "drift", drift={}) == 0


def test_report_command_prints_the_latest_run(world, capsys):
    assert run(world, "apply", "--dry-run") == 0
    assert run(world, "apply") == 0
    capsys.readouterr()
    assert run(world, "report") == 0
    out = capsys.readouterr().out
    assert "apply, exit code 0" in out and "retire-forget" in out and "succeeded" in out


class RemoveWatcher(FakeStackOperations):
    """Fake stacks that note, when `remove` starts, which exports the state bucket holds."""

    def __init__(self, stacks, s3):
        super().__init__(stacks, exports={"master": MASTER_STATE})
        self.s3, self.exports_at_remove = s3, {}

    def remove(self, stack, *, force):
        listed = self.s3.list_objects_v2(Bucket="acme-dl-pulumi-state", Prefix="runner-exports/").get("Contents", [])
        self.exports_at_remove[stack] = [o["Key"] for o in listed if o["Key"].endswith(f"/{stack}.json")]
        super().remove(stack, force=force)


def test_reports_and_state_exports_go_to_the_state_bucket_encrypted_before_any_stack_is_removed(world):
    seeded, org, fake, tmp_path = world
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="acme-dl-pulumi-state")
    key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    watcher = RemoveWatcher(fake.stacks.values(), s3)
    # As the delivery pipeline's deploy step runs it: a backend URL and a report location, no --exports-to.
    args = ["apply", f"--silo-ou={seeded.silo_ou_id}", "--backend-url=s3://acme-dl-pulumi-state",
            "--report-to=s3://acme-dl-pulumi-state/runner", f"--log-dir={tmp_path}", f"--exports-kms-key={key}",
            "--retire-grace-days=0"]
    assert main(args, Clients(organizations=org, stack_ops=watcher, s3=lambda: s3)) == 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="acme-dl-pulumi-state")["Contents"]]
    [report_key] = [k for k in keys if k.endswith("/report.json")]
    assert report_key.startswith("runner/")
    report = json.loads(s3.get_object(Bucket="acme-dl-pulumi-state", Key=report_key)["Body"].read())
    assert report["counts"]["succeeded"] == 22 and report["exportsTo"] == "s3://acme-dl-pulumi-state/runner-exports"
    exports = sorted(k for k in keys if k.startswith(f"runner-exports/{report['runId']}/"))
    assert len(exports) == 4
    for export in exports + [report_key]:
        head = s3.head_object(Bucket="acme-dl-pulumi-state", Key=export)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key
    # Each retired stack's export was in the bucket before its stack was removed.
    assert len(watcher.exports_at_remove) == 4
    assert all(len(found) == 1 for found in watcher.exports_at_remove.values())


def test_a_retirement_whose_export_cannot_be_stored_removes_nothing(world, caplog):
    seeded, org, fake, tmp_path = world
    s3 = boto3.client("s3", region_name="us-east-1")  # no bucket: every PutObject fails with NoSuchBucket
    args = ["apply", f"--silo-ou={seeded.silo_ou_id}", "--backend-url=s3://acme-dl-pulumi-state", f"--report-to={tmp_path / 'r'}",
            f"--log-dir={tmp_path / 'logs'}", "--retire-grace-days=0"]
    assert main(args, Clients(organizations=org, stack_ops=fake, s3=lambda: s3)) == 1
    assert not [c for c in fake.calls if c[0] in ("remove", "destroy")]
    failed = [r for r in last_report_at(tmp_path / "r")["results"] if r["result"] == "failed"]
    assert len(failed) == 4 and {r["action"] for r in failed} == {"retire-forget", "retire-destroy"}
    assert all(r["error"].startswith("stack not removed: its state export was not stored: could not store "
                                     "s3://acme-dl-pulumi-state/runner-exports/") and "NoSuchBucket" in r["error"] for r in failed)


def test_without_a_durable_place_for_exports_retirements_fail_and_the_rest_runs(world):
    seeded, org, fake, tmp_path = world
    args = ["apply", f"--silo-ou={seeded.silo_ou_id}", f"--report-to={tmp_path / 'r'}", f"--log-dir={tmp_path / 'logs'}",
            "--retire-grace-days=0"]
    assert main(args, Clients(organizations=org, stack_ops=fake)) == 1
    results = last_report_at(tmp_path / "r")["results"]
    assert {r["result"] for r in results if r["action"] in ("create", "update")} == {"succeeded"}
    failed = [r for r in results if r["result"] == "failed"]
    assert len(failed) == 4 and all(r["error"].startswith("stack not removed: no durable place for its state export") for r in failed)
    assert not [c for c in fake.calls if c[0] in ("remove", "destroy")]


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="checks the message shown where the pulumi CLI is missing")
def test_without_the_cli_apply_exits_2_and_says_how_to_plan(world, caplog):
    seeded, org, _, tmp_path = world
    args = ["apply", f"--silo-ou={seeded.silo_ou_id}", f"--report-to={tmp_path}"]
    assert main(args, Clients(organizations=org)) == 2
    assert "the pulumi CLI is not on PATH" in caplog.text and "--stacks-from" in caplog.text


def test_report_without_any_run_exits_2(world, caplog):
    assert run(world, "report") == 2
    assert "no run reports under" in caplog.text


def _partner(account_id: str, silo: str, name: str) -> None:
    iam = AssumedRoleIam("OrganizationAccountAccessRole", "us-east-1")(account_id)
    iam.create_user(UserName=name, Path=f"/datalake/partners/{silo}/")
    iam.create_access_key(UserName=name)


def _partners(account_id: str) -> set[str]:
    iam = AssumedRoleIam("OrganizationAccountAccessRole", "us-east-1")(account_id)
    return {u["UserName"] for u in iam.list_users(PathPrefix="/datalake/partners/")["Users"]}


def test_apply_revokes_the_partners_of_destroyed_silos_and_a_dry_run_does_not(world, capsys):
    seeded, _, fake, tmp_path = world
    moved, kept = seeded.accounts[MOVED_OUT], seeded.accounts["Finance"]
    _partner(moved, seeded.with_stacks[moved], "acme")
    _partner(kept, seeded.with_stacks[kept], "initech")

    assert run(world, "apply", "--dry-run", f"--plan-json={tmp_path / 'plan.json'}") == 0
    out = capsys.readouterr().out
    assert f"partners revoked before destroy (/datalake/partners/{seeded.with_stacks[moved]}/)" in out
    assert "partners not revoked: the account cannot be reached" in out
    planned = {o["account_id"]: o for o in json.loads((tmp_path / "plan.json").read_text())["operations"]}
    assert planned[moved]["partners"].startswith("revoked before destroy") and planned[kept]["partners"] == ""
    assert _partners(moved) == {"acme"}  # the dry run revoked nothing

    assert run(world, "apply") == 0
    assert _partners(moved) == set() and _partners(kept) == {"initech"}
    results = {r["accountId"]: r for r in last_report(tmp_path)["results"]}
    assert results[moved]["notes"] == [f"revoked 1 dropzone partner(s) under /datalake/partners/{seeded.with_stacks[moved]}/: acme"]
    assert results[seeded.accounts[OPTED_OUT]]["notes"][0].startswith("revoked 0 dropzone partner(s)")
    assert results[seeded.accounts[SUSPENDED]]["notes"] == [
        "dropzone partner users could not be revoked: the account cannot be reached (account is SUSPENDED)"
    ]
    assert f"silo-{moved}: revoked 1 dropzone partner(s)" in capsys.readouterr().out


def test_a_failed_revocation_exits_1_and_destroys_nothing(world, caplog):
    seeded, org, fake, tmp_path = world

    # The deploy role cannot be assumed: STS refuses (after botocore validated the call).
    session = boto3.session.Session(region_name="eu-west-1")
    fail_session_with_error(session, "sts", "assume_role", "AccessDenied", "User: arn:aws:iam::123456789012:user/runner is not "
                            "authorized to perform: sts:AssumeRole on resource: arn:aws:iam::*:role/OrganizationAccountAccessRole")
    denied = AssumedRoleIam("OrganizationAccountAccessRole", "eu-west-1", session=session)

    args = ["apply", f"--silo-ou={seeded.silo_ou_id}", f"--report-to={tmp_path / 'reports'}", f"--log-dir={tmp_path / 'logs'}",
            f"--exports-to={tmp_path / 'exports'}"]
    assert main(args, Clients(organizations=org, stack_ops=fake, iam_for=denied)) == 1
    assert not [c for c in fake.calls if c[0] == "destroy"]
    for name in (MOVED_OUT, OPTED_OUT):
        assert f"silo-{seeded.accounts[name]}" in fake.stacks
    failed = [r for r in last_report(tmp_path)["results"] if r["result"] == "failed"]
    assert [r["action"] for r in failed] == ["retire-destroy", "retire-destroy"]
    assert all(r["error"].startswith("stack not destroyed: revoking dropzone partners under /datalake/partners/") for r in failed)
    assert all("AccessDenied" in r["error"] and "sts:AssumeRole" in r["error"] for r in failed)
    assert "2 operation(s) failed" in caplog.text


@pytest.mark.parametrize("listing", ["--deny=999999999999", "--allow={finance}"])
def test_allow_and_deny_protect_the_stack_of_an_account_that_left_the_organization(world, listing):
    seeded, _, fake, tmp_path = world
    assert GONE_ACCOUNT not in seeded.accounts.values() and GONE_ACCOUNT in seeded.with_stacks
    assert run(world, "apply", "--allow-mass-retire", listing.format(finance=seeded.accounts["Finance"])) == 0
    gone = f"silo-{GONE_ACCOUNT}"
    assert gone in fake.stacks and gone not in fake.removed
    # Listed (and its silo name read, as listing always did), never operated on.
    assert not [c for c in fake.calls if c[1] == gone and c[0] not in ("list", "silo-name")]
    assert GONE_ACCOUNT not in {r["accountId"] for r in last_report(tmp_path)["results"]}
