"""Per-silo settings: template → profile (account tag) → account file; merge rules, refusals, regions."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from components.stack_config import parse_stack_config
from components.silo.settings import Override, SiloSettings, deep_merge
from offline.fake_stacks import FakeStackOperations
from offline.harness import DESCENDANT_ACCOUNTS, SILO_ACCOUNT_ID, descendant_accounts
from offline.stacks import PROJECT_DIR, run_master, run_silo
from runner.cli import main
from runner.run import Clients
from runner.demo import seed_organization
from runner.model import Account, StackInfo
from runner.planning import load_template
from runner.silo_config import SiloLayers

TEMPLATE = load_template(PROJECT_DIR / "Pulumi.silo-template.yaml")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- merge order and rules ----------------------------------------------------------------------


def test_mappings_merge_at_every_depth_while_lists_scalars_and_null_replace():
    base = {
        "datalake:warehouse": {"baseCapacity": 8, "maxCapacity": 64, "quicksight": {"enabled": False, "ownerArn": "x"}},
        "datalake:datasets": [{"name": "orders"}, {"name": "returns"}],
        "datalake:tags": {"cost-center": "data"},
        "aws:region": "eu-west-1",
    }
    merged = deep_merge(
        base,
        {
            "datalake:warehouse": {"maxCapacity": 128, "quicksight": {"ownerArn": None}},
            "datalake:datasets": [{"name": "clicks"}],
            "aws:region": "eu-central-1",
        },
    )
    assert merged["datalake:warehouse"] == {"baseCapacity": 8, "maxCapacity": 128, "quicksight": {"enabled": False, "ownerArn": None}}
    assert merged["datalake:datasets"] == [{"name": "clicks"}]  # a list replaces, it is not appended to
    assert merged["datalake:tags"] == {"cost-center": "data"}
    assert merged["aws:region"] == "eu-central-1"
    assert base["datalake:warehouse"]["maxCapacity"] == 64  # the template is not changed in place


def test_the_account_file_wins_over_the_profile_which_wins_over_the_template(tmp_path):
    write(tmp_path / "silos/profiles/big.yaml", "config:\n  datalake:warehouse:\n    maxCapacity: 128\n    baseCapacity: 16\n")
    write(tmp_path / f"silos/{SILO_ACCOUNT_ID}.yaml", "config:\n  datalake:warehouse:\n    maxCapacity: 256\n  aws:region: eu-central-1\n")
    settings = SiloSettings.load(tmp_path / "silos")
    layered = settings.layer({**TEMPLATE, "datalake:accountId": SILO_ACCOUNT_ID}, SILO_ACCOUNT_ID, "big")
    assert layered.config["datalake:warehouse"]["maxCapacity"] == 256
    assert layered.config["datalake:warehouse"]["baseCapacity"] == 16
    assert layered.config["datalake:warehouse"]["vpcCidr"] == "10.20.0.0/16"  # from the template
    assert layered.overrides == (
        Override("aws:region", f"silos/{SILO_ACCOUNT_ID}.yaml"),
        Override("datalake:warehouse.baseCapacity", "silos/profiles/big.yaml"),
        Override("datalake:warehouse.maxCapacity", f"silos/{SILO_ACCOUNT_ID}.yaml"),
    )
    assert layered.sources == ("silos/profiles/big.yaml", f"silos/{SILO_ACCOUNT_ID}.yaml")
    # Without the tag only the account file applies.
    assert settings.layer(dict(TEMPLATE), SILO_ACCOUNT_ID).config["datalake:warehouse"]["baseCapacity"] == 8


def test_the_shipped_profiles_are_valid_over_the_shipped_template():
    layers = SiloLayers(TEMPLATE, settings=SiloSettings.load(PROJECT_DIR / "silos"))
    layers.check()
    assert {"big-warehouse", "sftp"} <= set(layers.settings.profiles)
    rendered = layers.render(Account(SILO_ACCOUNT_ID, "Sales", "ACTIVE", profile="sftp"), "sales", f"silo-{SILO_ACCOUNT_ID}")
    assert parse_stack_config("s", rendered.config).sftp.enabled is True


# -- the runner: profile by tag, refusals before any stack is touched -----------------------------


@pytest.fixture
def world(tmp_path):
    with mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        seeded = seed_organization(org)
        fake = FakeStackOperations([StackInfo(f"silo-{a}", name) for a, name in seeded.with_stacks.items()])
        # The seeded organization tags one account datalake:profile=big-warehouse (the demo's profiled silo).
        write(tmp_path / "silos/profiles/big-warehouse.yaml", "config:\n  datalake:warehouse:\n    maxCapacity: 256\n")
        yield seeded, org, fake, tmp_path


def run(world, *argv: str) -> int:
    seeded, org, fake, tmp_path = world
    args = [*argv, f"--silo-ou={seeded.silo_ou_id}", f"--report-to={tmp_path / 'reports'}", f"--log-dir={tmp_path / 'logs'}",
            f"--silo-settings={tmp_path / 'silos'}"]
    return main(args, Clients(organizations=org, stack_ops=fake))


def test_the_profile_tag_selects_the_profile_and_the_plan_shows_it(world, capsys):
    seeded, org, fake, tmp_path = world
    finance, marketing = seeded.accounts["Finance"], seeded.accounts["Marketing"]
    org.tag_resource(ResourceId=finance, Tags=[{"Key": "datalake:profile", "Value": "big-warehouse"}])
    write(tmp_path / f"silos/{marketing}.yaml", "config:\n  datalake:sftp:\n    enabled: true\n")
    assert run(world, "plan", f"--plan-json={tmp_path / 'plan.json'}") == 0
    operations = {op["account_id"]: op for op in json.loads((tmp_path / "plan.json").read_text())["operations"]}
    assert operations[finance]["profile"] == "big-warehouse"
    assert operations[finance]["config"]["datalake:warehouse"]["maxCapacity"] == 256
    assert operations[finance]["config"]["datalake:warehouse"]["baseCapacity"] == 8
    assert operations[finance]["overrides"] == [{"key": "datalake:warehouse.maxCapacity", "source": f"{tmp_path}/silos/profiles/big-warehouse.yaml"}]
    assert operations[marketing]["profile"] == "" and operations[marketing]["config"]["datalake:sftp"]["enabled"] is True
    untouched = seeded.accounts["Payments"]
    assert operations[untouched]["overrides"] == [] and operations[untouched]["config"]["datalake:warehouse"]["maxCapacity"] == 64
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("account"))
    assert header.split()[-2:] == ["profile", "overrides"]
    finance_row = next(line for line in out.splitlines() if line.startswith(finance))
    assert "big-warehouse" in finance_row and "warehouse.maxCapacity (profile)" in finance_row
    marketing_row = next(line for line in out.splitlines() if line.startswith(marketing))
    assert marketing_row.endswith("sftp.enabled (account file)")
    # Reads only: one listing, the silo names an empty ledger does not know yet, the CLI versions.
    assert {c for c, _ in fake.calls} == {"list", "silo-name", "versions"} and fake.calls.count(("list", "*")) == 1


REFUSALS = {
    "unknown profile": (
        {},
        "gpu",
        [r"tag datalake:profile=gpu names the profile .*silos/profiles/gpu.yaml, which does not exist; known profiles: big-warehouse"],
    ),
    "invalid value in the account file": (
        {"{account}.yaml": "config:\n  datalake:warehouse:\n    maxCapacity: 100\n"},
        "",
        [r"datalake:warehouse.maxCapacity: got 100, which is not a Redshift Serverless capacity \(8 to 512 RPUs in steps of 8\); "
         r"for example: 64 \(set in .*silos/{account}.yaml\)"],
    ),
    "invalid value in an unused profile": (
        {"profiles/tiny.yaml": "config:\n  datalake:etl:\n    numberOfWorkers: 1\n"},
        "",
        [r"silos/profiles/tiny.yaml \(over Pulumi.silo-template.yaml\): datalake:etl.numberOfWorkers: .*greater than or equal to 2.*for example: 2"],
    ),
    "forbidden key": (
        {"{account}.yaml": "config:\n  datalake:accountId: '999999999999'\n  datalake:masterStack: organization/datalake/other\n"},
        "",
        [r"silos/{account}.yaml: datalake:accountId: may not be set per silo: the runner sets it",
         r"silos/{account}.yaml: datalake:masterStack: may not be set per silo"],
    ),
    "key of another namespace": (
        {"profiles/big-warehouse.yaml": "config:\n  warehouse:\n    maxCapacity: 128\n"},
        "",
        [r"silos/profiles/big-warehouse.yaml: warehouse: is not a silo config key; write full keys such as datalake:warehouse"],
    ),
    "bad YAML": (
        {"profiles/big-warehouse.yaml": "config:\n  datalake:warehouse: [unclosed\n"},
        "",
        [r"silos/profiles/big-warehouse.yaml: is not valid YAML"],
    ),
    "no config map": (
        {"{account}.yaml": "datalake:warehouse:\n  maxCapacity: 128\n"},
        "",
        [r"silos/{account}.yaml: needs exactly one top-level 'config:' map"],
    ),
    "file named after no account": (
        {"finance.yaml": "config: {}\n"},
        "",
        [r"silos/finance.yaml: is neither an account file nor a profile; name an account's file after its 12-digit id"],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_every_refusal_exits_2_naming_the_file_and_key_and_touches_no_stack(world, caplog, case):
    seeded, org, fake, tmp_path = world
    files, tag, messages = REFUSALS[case]
    account = seeded.accounts["Finance"]
    for name, text in files.items():
        write(tmp_path / "silos" / name.format(account=account), text)
    if tag:
        org.tag_resource(ResourceId=account, Tags=[{"Key": "datalake:profile", "Value": tag}])
    assert run(world, "apply") == 2
    for message in messages:
        assert any(__import__("re").search(message.format(account=account), r.getMessage()) for r in caplog.records), (message, caplog.text)
    assert fake.calls == []  # not even listed: nothing was touched
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("*.log"))


def test_a_stack_keeping_a_long_silo_name_is_refused_by_the_plan_not_after_it(world, caplog):
    """Accounts are checked before the listing with derived names; the plan checks again with the names stacks keep."""
    seeded, org, fake, tmp_path = world
    account = seeded.accounts["Finance"]
    fake.stacks[f"silo-{account}"] = StackInfo(f"silo-{account}", "Bad_Name")
    assert run(world, "apply") == 2
    assert f"silo-{account} (Finance): datalake:siloName: got 'Bad_Name'" in caplog.text
    assert {c for c, _ in fake.calls} <= {"list", "silo-name", "versions"}  # refused before any stack operation


# -- region per silo, end to end under mocks ------------------------------------------------------


def layers_with(tmp_path: Path, files: dict[str, str]) -> SiloLayers:
    for name, text in files.items():
        write(tmp_path / "silos" / name, text)
    return SiloLayers(TEMPLATE, settings=SiloSettings.load(tmp_path / "silos"))


def test_a_region_override_moves_the_silo_provider_names_and_arns(tmp_path):
    layers = layers_with(tmp_path, {f"{SILO_ACCOUNT_ID}.yaml": "config:\n  aws:region: eu-central-1\n"})
    rendered = layers.render(Account(SILO_ACCOUNT_ID, "sales", "ACTIVE"), "sales", f"silo-{SILO_ACCOUNT_ID}")
    assert rendered.overrides == (Override("aws:region", f"silos/{SILO_ACCOUNT_ID}.yaml"),)
    recording = run_silo(rendered.config)
    [provider] = recording.of_type("pulumi:providers:aws")
    assert provider.inputs["region"] == "eu-central-1"
    assert all(r.provider.startswith(provider.urn) for r in recording.resources if r.custom and r.type.startswith("aws:"))
    # ARNs the program builds and the ones AWS returns carry the region; none the default one.
    key = recording.of_type("aws:kms/key:Key")[0]
    assert ":eu-central-1:" in key.outputs["arn"]
    policies = json.dumps([document for _, _, document in recording.policies()])
    assert "eu-central-1" in policies and ":eu-west-1:" not in policies and "s3.eu-west-1" not in policies
    assert recording.outputs["ingestionEndpoint"].split("/")[2].endswith(".execute-api.eu-central-1.amazonaws.com")
    # Physical names carry no region: the bucket names are the silo's as ever.
    names = {r.inputs["bucket"] for r in recording.of_type("aws:s3/bucket:Bucket")}
    assert f"acme-dl-sales-raw-{SILO_ACCOUNT_ID}" in names


def master_project(tmp_path: Path, files: dict[str, str]) -> Path:
    project = tmp_path / "project"
    project.mkdir(parents=True)
    (project / "Pulumi.silo-template.yaml").write_text((PROJECT_DIR / "Pulumi.silo-template.yaml").read_text())
    for name, text in files.items():
        write(project / "silos" / name, text)
    return project


OTHER_ACCOUNT = "333333333333"
ACCOUNTS = [{"id": SILO_ACCOUNT_ID, "name": "sales", "state": "ACTIVE"}, {"id": OTHER_ACCOUNT, "name": "finance", "state": "ACTIVE"}]


def catalogs_by_region(recording):
    providers = {r.urn: r.inputs.get("region") for r in recording.of_type("pulumi:providers:aws")}
    found = {}
    for catalog in recording.of_type("aws:athena/dataCatalog:DataCatalog"):
        provider_urn = catalog.provider.rsplit("::", 1)[0]
        found[catalog.inputs["parameters"]["catalog-id"]] = providers[provider_urn]
    return found


def test_the_master_registers_a_moved_silo_catalog_in_the_silo_region(tmp_path, monkeypatch):
    import program

    monkeypatch.setattr(program, "PROJECT_DIR", master_project(tmp_path, {f"{SILO_ACCOUNT_ID}.yaml": "config:\n  aws:region: eu-central-1\n"}))
    recording = run_master(invokes={DESCENDANT_ACCOUNTS: descendant_accounts(ACCOUNTS)})
    assert catalogs_by_region(recording) == {SILO_ACCOUNT_ID: "eu-central-1", OTHER_ACCOUNT: "eu-west-1"}
    regional = recording.one("datalake:analytics:RegionalAnalytics")
    assert regional.name == "master-analytics-eu-central-1"
    [moved] = [w for w in recording.of_type("aws:athena/workgroup:Workgroup") if regional in recording.ancestors(w)]
    [frankfurt] = [p for p in recording.of_type("pulumi:providers:aws") if p.inputs.get("region") == "eu-central-1"]
    assert moved.provider.startswith(frankfurt.urn + "::")
    output = moved.inputs["configuration"]["resultConfiguration"]
    results_bucket = next(b for b in recording.of_type("aws:s3/bucket:Bucket") if b.inputs["bucket"] in output["outputLocation"])
    assert results_bucket.inputs["bucket"] == "acme-dl-master-results-eu-central-1-111111111111"
    assert ":eu-central-1:" in output["encryptionConfiguration"]["kmsKeyArn"]
    assert recording.outputs["siloCatalogRegions"] == {SILO_ACCOUNT_ID: "eu-central-1", OTHER_ACCOUNT: "eu-west-1"}
    assert recording.outputs["siloCatalogs"] == {SILO_ACCOUNT_ID: "silo_sales", OTHER_ACCOUNT: "silo_finance"}


def test_the_master_reads_profile_tags_only_when_a_profile_moves_silos(tmp_path, monkeypatch):
    import program

    asked = []

    def tags(args):
        asked.append(args["resourceId"])
        profile = {"datalake:profile": "residency"} if args["resourceId"] == OTHER_ACCOUNT else {}
        return {"id": args["resourceId"], "resourceId": args["resourceId"], "tags": profile}

    invokes = {DESCENDANT_ACCOUNTS: descendant_accounts(ACCOUNTS), "aws:organizations/getResourceTags:getResourceTags": tags}
    monkeypatch.setattr(program, "PROJECT_DIR", master_project(tmp_path, {"profiles/residency.yaml": "config:\n  aws:region: eu-north-1\n"}))
    recording = run_master(invokes=invokes)
    assert catalogs_by_region(recording) == {SILO_ACCOUNT_ID: "eu-west-1", OTHER_ACCOUNT: "eu-north-1"}
    assert sorted(asked) == [SILO_ACCOUNT_ID, OTHER_ACCOUNT]

    asked.clear()
    monkeypatch.setattr(program, "PROJECT_DIR", master_project(tmp_path / "b", {"profiles/big.yaml": "config:\n  datalake:warehouse:\n    maxCapacity: 128\n"}))
    recording = run_master(invokes=invokes)
    assert asked == [] and not recording.of_type("datalake:analytics:RegionalAnalytics")


def test_the_bundle_carries_the_silo_settings_and_every_environment_file(master):
    """The runner's build and the master's deploy render silo configs from these files."""
    package = next(p for p in master.of_type("aws:codebuild/project:Project") if p.name == "master-delivery-package")
    zip_line = next(line for line in package.inputs["source"]["buildspec"].splitlines() if "zip -qr" in line)
    for needed in ("silos", "silos-*", "Pulumi.master-*.yaml", "Pulumi.silo-template-*.yaml"):
        assert f" {needed}" in zip_line


def test_discovery_keeps_the_profile_tag_from_the_same_tag_read_as_the_opt_out():
    from runner.discovery import Backoff, DiscoverySettings, discover

    with mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        seeded = seed_organization(org)
        finance = seeded.accounts["Finance"]
        org.tag_resource(ResourceId=finance, Tags=[{"Key": "team:profile", "Value": " sftp "}])
        calls = []
        real = org.list_tags_for_resource
        org.list_tags_for_resource = lambda **kw: calls.append(kw["ResourceId"]) or real(**kw)
        found = discover(org, DiscoverySettings(seeded.silo_ou_id, profile_tag="team:profile"), Backoff(sleep=lambda s: None))
        accounts = {a.id: a for a in found.accounts}
        assert accounts[finance].profile == "sftp"
        assert accounts[seeded.accounts["Genomics"]].profile == ""  # tagged datalake:profile, not the configured key
        assert len(calls) == len(set(calls)) == sum(a.active for a in found.accounts)  # one tag read per ACTIVE account
