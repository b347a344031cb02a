"""Organization scale, end to end through `python -m runner`: the ledger's skip, --force, drift, targeted
runs, tag reads, and the distributed engine's plan → batches → merged report (moto Organizations,
the fake stack operations)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from offline.fake_stacks import FakeStackOperations
from runner.cli import main
from runner.run import Clients
from runner.ledger import Ledger
from runner.model import stack_name
from runner.demo import MOVED_OUT, OPTED_OUT, SUSPENDED

from test_runner_cli import last_report, run, world  # noqa: F401 - the fixture and helpers of the CLI tests

ROOT = Path(__file__).resolve().parent.parent


def ups(fake) -> list[str]:
    return [stack for call, stack in fake.calls if call == "up"]


def results(tmp_path) -> dict[str, dict]:
    return {r["accountId"]: r for r in last_report(tmp_path)["results"]}


def test_a_second_apply_skips_every_unchanged_stack_and_says_since_when(world, capsys):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply") == 0
    first = last_report(tmp_path)
    # No verdict known yet: every active account of the OU (16 with stacks, 2 new, 1 opted out).
    assert first["organizationsCalls"]["ListTagsForResource"] == 19
    fake.calls.clear()
    capsys.readouterr()

    assert run(world, "apply") == 0

    report = last_report(tmp_path)
    assert ups(fake) == []
    assert report["counts"]["unchanged"] == 18 and report["counts"]["succeeded"] == 0
    assert all(r["error"].startswith("unchanged (since 20") for r in report["results"])
    out = capsys.readouterr().out
    assert out.count("unchanged (since 20") >= 18
    # One backend listing; silo names come from the ledger; no tag read on a no-change run.
    assert [call for call, _ in fake.calls] == ["list", "versions"]
    assert "ListTagsForResource" not in report["organizationsCalls"]
    assert report["tags"] == {"read": 0, "sweep": ""}


def test_force_deploys_every_or_the_named_stacks(world):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply") == 0
    finance = seeded.accounts["Finance"]
    fake.calls.clear()
    assert run(world, "apply", f"--force={finance}") == 0
    assert ups(fake) == [stack_name(finance)]
    fake.calls.clear()
    assert run(world, "apply", "--force") == 0
    assert len(ups(fake)) == 18


def test_a_template_change_deploys_every_stack_again(world):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply") == 0
    template = tmp_path / "template.yaml"
    template.write_text((ROOT / "Pulumi.silo-template.yaml").read_text().replace("dropzoneExpirationDays: 30", "dropzoneExpirationDays: 14"))
    fake.calls.clear()
    assert run(world, "apply", f"--template={template}") == 0
    assert len(ups(fake)) == 18
    fake.calls.clear()
    assert run(world, "apply", f"--template={template}") == 0
    assert ups(fake) == []


def test_drift_keeps_the_skip_honest(world, capsys):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply") == 0
    payments = stack_name(seeded.accounts["Payments"])
    change = "update urn:pulumi:silo::datalake::aws:s3/bucketV2:BucketV2::raw"
    # drift checks every stack, unchanged ones included
    assert run(world, "drift", drift={payments: [change]}) == 1
    assert len([s for c, s in fake.calls if c == "drift"]) == 18  # 16 updated and 2 created by the first apply
    fake.calls.clear()
    assert run(world, "apply", drift={}) == 0
    assert ups(fake) == [payments]  # the drifted stack lost its skip; the up cleared the verdict
    fake.calls.clear()
    assert run(world, "apply") == 0
    assert ups(fake) == []


def test_a_failed_up_is_not_skipped_by_the_next_run(world):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply") == 0
    failing = stack_name(seeded.accounts["Logistics"])
    fake.calls.clear()
    assert run(world, "apply", f"--force={seeded.accounts['Logistics']}", failures={failing: "error: boom"}) == 1
    assert Ledger(str(tmp_path / "reports" / "ledger")).get(failing).result == "failed"
    fake.calls.clear()
    assert run(world, "apply", failures={}) == 0
    assert ups(fake) == [failing]


def test_an_unreadable_entry_is_deployed_not_skipped(world):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply") == 0
    ledger_dir = tmp_path / "reports" / "ledger"
    missing, corrupt = (stack_name(seeded.accounts[n]) for n in ("Finance", "Genomics"))
    (ledger_dir / f"{missing}.json").unlink()
    text = (ledger_dir / f"{corrupt}.json").read_text()
    (ledger_dir / f"{corrupt}.json").write_text(text.replace('"succeeded"', '"succeded"'))  # the digest no longer matches
    fake.calls.clear()
    assert run(world, "apply") == 0
    assert sorted(ups(fake)) == sorted([missing, corrupt])


def test_a_targeted_run_touches_only_the_named_accounts(world):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply", "--dry-run") == 0
    new, existing = seeded.accounts["Fraud Detection"], seeded.accounts["Finance"]
    fake.calls.clear()
    assert run(world, "apply", f"--account={new}", f"--account={existing}") == 0
    touched = {stack for call, stack in fake.calls if call not in ("list", "silo-name", "versions")}
    # The create changes the master's catalogs: the runner's targeted master update covers that account only.
    assert touched == {stack_name(new), stack_name(existing), "master"}
    assert [target.rsplit("-", 1)[-1] for target in fake.targets["master"]] == [new]
    assert {r["accountId"] for r in last_report(tmp_path)["results"]} == {new, existing}
    # A dry run records no verdicts, so this first real run read every active account's tags.
    assert last_report(tmp_path)["tags"]["read"] == 19


def test_a_targeted_run_still_obeys_the_mass_retire_guard(world):
    seeded, _, fake, tmp_path = world
    suspended = seeded.accounts[SUSPENDED]
    # 4 of 20 stacks retire: more than 10%, so the whole plan holds retirements, the named one too.
    assert run(world, "apply", f"--account={suspended}", "--max-retire-share=0.1") == 1
    [result] = last_report(tmp_path)["results"]
    assert result["result"] == "skipped" and "retires 4 of 20 stacks (20%), more than the allowed 10%" in result["error"]
    assert not [c for c, _ in fake.calls if c in ("remove", "destroy", "export")]


def test_event_accounts_come_from_the_environment_and_non_accounts_are_ignored(world, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    seeded, _, fake, tmp_path = world
    monkeypatch.setenv("RUNNER_ACCOUNTS", "ou-ab12-11111111")
    assert run(world, "apply") == 0
    assert fake.calls == [] and "not an account: nothing to do" in caplog.text
    new = seeded.accounts["Fraud Detection"]
    monkeypatch.setenv("RUNNER_ACCOUNTS", new)
    assert run(world, "apply") == 0
    assert ups(fake) == [stack_name(new), "master"]  # then the new silo's master catalog
    monkeypatch.setenv("RUNNER_ACCOUNTS", "12345")
    assert run(world, "apply") == 2
    assert "RUNNER_ACCOUNTS '12345': not a 12-digit account id" in caplog.text


def test_tags_are_read_for_new_named_and_swept_accounts_only(world):
    seeded, org, fake, tmp_path = world
    assert run(world, "apply") == 0
    assert last_report(tmp_path)["organizationsCalls"]["ListTagsForResource"] == 19
    # Someone opts Finance out; its TagResource event names it, and only its tags are read.
    finance = seeded.accounts["Finance"]
    org.tag_resource(ResourceId=finance, Tags=[{"Key": "datalake:silo", "Value": "false"}])
    assert run(world, "apply", f"--account={finance}") == 0
    report = last_report(tmp_path)
    assert report["organizationsCalls"]["ListTagsForResource"] == 1
    assert [(r["action"], r["result"]) for r in report["results"]] == [("retire-destroy", "succeeded")]
    # The verdict is recorded: the next full run knows Finance opted out without reading any tag.
    assert run(world, "apply") == 0
    report = last_report(tmp_path)
    assert "ListTagsForResource" not in report["organizationsCalls"] and finance not in {r["accountId"] for r in report["results"] if r["action"] == "create"}
    assert run(world, "apply", "--tag-sweep") == 0
    report = last_report(tmp_path)
    assert report["organizationsCalls"]["ListTagsForResource"] == 19 and report["tags"]["sweep"] == "forced (--tag-sweep)"


def test_ledger_off_behaves_as_before_the_ledger(world):
    seeded, _, fake, tmp_path = world
    assert run(world, "apply") == 0
    fake.calls.clear()
    assert run(world, "apply", "--ledger=off") == 0
    assert len(ups(fake)) == 18
    assert last_report(tmp_path)["organizationsCalls"]["ListTagsForResource"] == 19


def test_distributed_engine_plan_batches_and_merged_report(world, capsys):
    seeded, _, fake, tmp_path = world
    plan = tmp_path / "plans" / "exec-1" / "plan.json"
    assert run(world, "plan", f"--plan-json={plan}", "--batch-size=5") == 0
    document = json.loads(plan.read_text())
    items = json.loads((plan.parent / "items.json").read_text())
    assert document["batches"] == 5 and len(items) == 22  # 2 creates, 16 updates, 4 retirements
    assert [i["action"] for i in items[:2]] == ["create", "create"]
    assert fake.calls and not [c for c, _ in fake.calls if c in ("up", "create", "destroy", "remove")]

    # Four children get their items as the Distributed Map hands them out; one is given a batch index.
    for index in range(4):
        batch = json.dumps([i for i in items if i["batch"] == index], separators=(",", ":"))
        assert run(world, "apply", f"--from-plan={plan}", f"--items={batch}") == 0
    assert run(world, "apply", f"--from-plan={plan}", "--batch=4") == 0
    assert len(ups(fake)) == 18 and len([c for c, _ in fake.calls if c == "remove"]) == 4
    assert "master" not in ups(fake)  # no child updates the master's catalogs: they would queue on its lock

    capsys.readouterr()
    assert run(world, "merge-reports", f"--from-plan={plan}") == 0
    merged = json.loads((tmp_path / "reports" / document["runId"] / "report.json").read_text())
    assert merged["counts"]["succeeded"] == 22 and merged["exitCode"] == 0
    # The merge step brings the master's catalogs up once, for every account created or retired.
    assert ups(fake).count("master") == 1
    changed = sorted(i["accountId"] for i in items if i["action"] != "update")
    assert merged["catalogs"]["accounts"] == changed and merged["catalogs"]["error"] == ""
    assert sorted(t.rsplit("-", 1)[-1] for t in fake.targets["master"]) == changed
    assert [b["problem"] for b in merged["batches"]] == [""] * 5
    assert "22 succeeded" in capsys.readouterr().out

    # The children recorded what they deployed: the next plan is all unchanged.
    second = tmp_path / "plans" / "exec-2" / "plan.json"
    assert run(world, "plan", f"--plan-json={second}") == 0
    assert json.loads((second.parent / "items.json").read_text()) == []


def test_a_lost_batch_fails_the_merge(world, caplog):
    seeded, _, fake, tmp_path = world
    plan = tmp_path / "plans" / "exec-1" / "plan.json"
    assert run(world, "plan", f"--plan-json={plan}", "--batch-size=10") == 0
    assert run(world, "apply", f"--from-plan={plan}", "--batch=0") == 0
    assert run(world, "merge-reports", f"--from-plan={plan}") == 1
    assert "batch 1: no results from batch 1" in caplog.text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["apply", "--account=12"], "--account/--force '12': not a 12-digit account id"),
        (["apply", "--force=abc"], "--account/--force 'abc': not a 12-digit account id"),
        (["plan", "--batch-size=0"], "--batch-size 0: must be 1 or more"),
        (["merge-reports"], "merge-reports needs --from-plan URI"),
        (["apply", "--from-plan=s3://bucket/"], "plan location 's3://bucket/': name a JSON object"),
        (["retained", "--ledger=off"], "retained reads the runner's ledger: drop --ledger off"),
    ],
)
def test_bad_scale_flags_exit_2_naming_the_flag(tmp_path, argv, message, caplog):
    fake = FakeStackOperations()
    assert main([*argv, f"--report-to={tmp_path}", "--silo-ou=ou-ab12-11111111"], Clients(organizations=object(), stack_ops=fake)) == 2
    assert message in caplog.text and fake.calls == []
