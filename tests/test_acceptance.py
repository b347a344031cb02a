"""The acceptance path's pieces that run without a real account: moto, botocore's Stubber, a fake `pulumi`.

What cannot run here (the deploys, the API call over the internet, the real ETL) is in docs/acceptance.md.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import stat
import sys
import urllib.parse
from pathlib import Path

import boto3
import pytest
from botocore.credentials import Credentials
from botocore.stub import Stubber
from moto import mock_aws

from acceptance import aws
from acceptance.aws import AcceptanceError
from acceptance.plan import Settings, render, steps
from acceptance.preflight import Check, check_cli, preflight
from acceptance.pulumi_cli import PulumiCli, runner_argv
from acceptance.run import Run, main, master_stack_config, silo_template, validate
from components.stack_config import parse_stack_config

REGION = "eu-west-1"
NO_SLEEP = lambda _: None  # noqa: E731


class Clock:
    def __init__(self, step: float = 1.0):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


@pytest.fixture
def org(aws_env):
    """An organization in moto: the caller (123456789012) manages it; a silo OU with one account, an analytics OU."""
    client = boto3.client("organizations", region_name="us-east-1")
    client.create_organization(FeatureSet="ALL")
    root = client.list_roots()["Roots"][0]["Id"]
    platform = client.create_organizational_unit(ParentId=root, Name="platform")["OrganizationalUnit"]["Id"]
    silos = client.create_organizational_unit(ParentId=platform, Name="silos")["OrganizationalUnit"]["Id"]
    analytics = client.create_organizational_unit(ParentId=root, Name="analytics")["OrganizationalUnit"]["Id"]
    account = client.create_account(Email="silo@example.com", AccountName="silo")["CreateAccountStatus"]["AccountId"]
    client.move_account(AccountId=account, SourceParentId=root, DestinationParentId=silos)
    return {"client": client, "root": root, "platform": platform, "silos": silos, "analytics": analytics, "account": account}


def fake_pulumi(directory: Path, *, version: str = "v3.272.0", fail: str = "") -> Path:
    """A `pulumi` that records argv and environment (calls.jsonl) and answers from files beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "pulumi"
    script.write_text(f"""#!{sys.executable}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"argv": args, "cwd": os.getcwd(), "env": {{k: v for k, v in os.environ.items() if k.startswith("PULUMI_")}}}}) + "\\n")
if {fail!r} and args[:len({fail!r}.split())] == {fail!r}.split():
    print("Updating (organization/datalake/master)", file=sys.stdout)
    print("error: update failed: AccessDenied: not authorized to perform: kms:CreateKey", file=sys.stderr)
    sys.exit(255)
if args[:1] == ["version"]:
    print({version!r})
elif args[:3] == ["stack", "output", "--json"]:
    print(open(os.path.join(here, "outputs.json")).read() if os.path.exists(os.path.join(here, "outputs.json")) else "{{}}")
elif args[:2] == ["stack", "export"]:
    print(open(os.path.join(here, "export.json")).read())
elif args[:3] == ["stack", "ls", "--json"]:
    print(open(os.path.join(here, "stacks.json")).read() if os.path.exists(os.path.join(here, "stacks.json")) else "[]")
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def calls_of(directory: Path) -> list[dict]:
    path = directory / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- the plan ------------------------------------------------------------------------------------------


def test_the_plan_lists_every_step_with_what_it_creates_and_costs():
    settings = Settings(silo_account="123456789012", analytics_ou="ou-ab12-22222222", prefix="acc1a2b", master_account="111111111111")
    names = [s.name for s in steps(settings)]
    assert names == ["preflight", "state-bucket", "master", "runner-create", "runner-update", "ingest", "etl", "query",
                     "retire", "teardown"]
    text = render(settings)
    assert all(s.cost and s.creates for s in steps(settings))
    assert "s3://acc1a2b-acceptance-state-111111111111" in text and "organization/datalake/silo-123456789012" in text
    assert "--allow-mass-retire" in text and "datalake:silo=false" in text
    assert "Expected total: under 1 USD" in text


def test_plan_only_needs_no_credentials(capsys):
    lines: list[str] = []
    assert main(["--plan", "--silo-account", "123456789012"], out=lines.append) == 0
    assert "10. teardown" in "\n".join(lines)


# -- preflight -----------------------------------------------------------------------------------------


def test_without_a_cli_and_without_credentials_it_refuses_to_start_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi here
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    lines: list[str] = []
    code = main(["--silo-account", "123456789012", "--analytics-ou", "ou-ab12-22222222", "--work-dir", str(tmp_path / "w")],
                session=boto3.session.Session(region_name=REGION), out=lines.append)
    text = "\n".join(lines)
    assert code == 2
    assert "[FAILED] pulumi CLI: no `pulumi` on PATH; install it (https://www.pulumi.com/docs/install/" in text
    assert "[FAILED] AWS credentials: none found" in text
    assert "refusing to start: 2 check(s) failed; nothing was created" in text
    assert not (tmp_path / "w").exists()


def test_bad_flags_are_named_with_an_example(tmp_path, org):
    lines: list[str] = []
    code = main(["--silo-account", "12345", "--analytics-ou", "analytics", "--region", "cn-north-1"],
                session=boto3.session.Session(region_name=REGION), cli_check=lambda: Check("pulumi CLI", True, "fake"),
                out=lines.append)
    text = "\n".join(lines)
    assert code == 2
    assert "--silo-account: got '12345'; give the 12-digit id" in text
    assert "--analytics-ou: got 'analytics'; give the id of another OU" in text
    assert "--region: got 'cn-north-1'; the acceptance runs in the aws partition only" in text


def _settings(org, **overrides) -> Settings:
    return Settings(**{"silo_account": org["account"], "analytics_ou": org["analytics"], "region": REGION, "prefix": "acc1a2b",
                       **overrides})


def test_preflight_passes_for_the_management_account_and_a_silo_in_an_ou(org):
    checks, settings = preflight(_settings(org), boto3.session.Session(region_name=REGION), lambda: org["client"],
                                 cli=lambda: Check("pulumi CLI", True, "fake"))
    assert [c for c in checks if not c.ok] == []
    assert {c.name for c in checks} >= {"AWS credentials", "management account", "silo account", "analytics OU", "deploy role"}
    assert settings.master_account == "123456789012"


def test_preflight_refuses_a_member_account_s_credentials(org):
    member = aws.assumed_session(boto3.session.Session(region_name=REGION), org["account"], "OrganizationAccountAccessRole", REGION)
    checks, _ = preflight(_settings(org), member, lambda: member.client("organizations", region_name="us-east-1"),
                          cli=lambda: Check("pulumi CLI", True, "fake"))
    (failed,) = [c for c in checks if not c.ok and c.name == "management account"]
    assert f"the credentials are of {org['account']}, not of the management account 123456789012" in failed.detail


@pytest.mark.parametrize("case, message", [
    ("in the root", "sits in the root; move it into an OU"),
    ("opted out", "is opted out (datalake:silo=false); remove the tag"),
    ("the management account", "is the management account; give a member account"),
    ("in the analytics OU", "the silo and analytics OUs must differ"),
])
def test_preflight_refuses_an_unfit_silo_account(org, case, message):
    client, settings = org["client"], _settings(org)
    if case == "in the root":
        client.move_account(AccountId=org["account"], SourceParentId=org["silos"], DestinationParentId=org["root"])
    elif case == "opted out":
        client.tag_resource(ResourceId=org["account"], Tags=[{"Key": "datalake:silo", "Value": "FALSE"}])
    elif case == "the management account":
        settings = _settings(org, silo_account="123456789012")
    else:
        settings = _settings(org, analytics_ou=org["silos"])
    checks, _ = preflight(settings, boto3.session.Session(region_name=REGION), lambda: client,
                          cli=lambda: Check("pulumi CLI", True, "fake"))
    (failed,) = [c for c in checks if not c.ok]
    assert failed.name == "silo account" and message in failed.detail
    assert "deploy role" not in {c.name for c in checks}  # not tried for an unfit account


def test_the_cli_check_runs_pulumi_version(tmp_path):
    fake_pulumi(tmp_path)
    check = check_cli(which=lambda name: str(tmp_path / name))
    assert check.ok and check.detail.endswith("v3.272.0")
    assert calls_of(tmp_path)[0]["argv"] == ["version"]


def test_unattended_runs_need_yes(org, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    lines: list[str] = []
    code = main(["--silo-account", org["account"], "--analytics-ou", org["analytics"], "--work-dir", str(tmp_path)],
                session=boto3.session.Session(region_name=REGION), cli_check=lambda: Check("pulumi CLI", True, "fake"),
                out=lines.append)
    assert code == 2 and lines[-1] == "refusing to start: not a terminal; pass --yes to run unattended"
    assert list(tmp_path.iterdir()) == []


# -- Organizations paths, generated stack files ----------------------------------------------------------


def test_entity_paths_run_from_the_organization_to_the_ou(org):
    client = org["client"]
    organization = client.describe_organization()["Organization"]["Id"]
    assert aws.parent_ou(client, org["account"]) == org["silos"]
    assert aws.entity_path(client, org["silos"]) == f"{organization}/{org['root']}/{org['platform']}/{org['silos']}/"
    assert aws.entity_path(client, org["analytics"]) == f"{organization}/{org['root']}/{org['analytics']}/"


def test_generated_stack_files_pass_the_program_s_validation():
    settings = Settings(silo_account="123456789012", analytics_ou="ou-ab12-22222222", prefix="acc1a2b", master_account="111111111111")
    silo_path, analytics_path = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/", "o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/"
    master = master_stack_config(settings, "o-a1b2c3d4e5", silo_path, analytics_path)
    template = silo_template(settings, "o-a1b2c3d4e5", silo_path, analytics_path)
    validate(master, template, "123456789012")
    parsed = parse_stack_config("master", master)
    assert parsed.delivery is None and parsed.name_prefix == "acc1a2b"
    assert parsed.runner.state_bucket == "acc1a2b-acceptance-state-111111111111" and parsed.runner.drift_schedule is None
    assert template["datalake:masterStack"] == "organization/datalake/master"  # the only org a DIY backend accepts
    assert template["datalake:accountId"] == "__ACCOUNT_ID__" and template["datalake:ingestion"]["bufferingIntervalSeconds"] == 60


def test_the_runner_is_called_for_the_one_account_on_the_run_s_backend(tmp_path):
    settings = Settings(silo_account="123456789012", prefix="acc1a2b", master_account="111111111111")
    argv = runner_argv("python", tmp_path / "project", tmp_path, settings, "--allow-mass-retire")
    assert argv[:4] == ["python", "-m", "runner", "apply"]
    pairs = dict(zip(argv[4::2], argv[5::2]))
    assert pairs["--allow"] == "123456789012" and pairs["--secrets-provider"] == "passphrase"
    assert pairs["--backend-url"] == "s3://acc1a2b-acceptance-state-111111111111?region=eu-west-1"
    assert pairs["--template"] == str(tmp_path / "project" / "Pulumi.silo-template.yaml")
    assert argv[-1] == "--allow-mass-retire"


# -- ingestion: SigV4 --------------------------------------------------------------------------------------


def _sigv4_signature(secret: str, request, region: str) -> str:
    """SigV4 written from AWS's specification (not botocore), to check the signature botocore made."""
    headers = {k.lower(): v.strip() for k, v in request.headers.items()}
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    url = urllib.parse.urlsplit(request.url)
    canonical = "\n".join([
        "POST", urllib.parse.quote(url.path), "",
        *[f"{name}:{headers[name] if name != 'host' else url.netloc}" for name in signed], "",
        ";".join(signed), hashlib.sha256(request.body).hexdigest(),
    ])
    stamp = headers["x-amz-date"]
    scope = f"{stamp[:8]}/{region}/execute-api/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (stamp[:8], region, "execute-api", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_records_are_posted_as_json_signed_for_execute_api():
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
    request = aws.signed_post("https://abc123.execute-api.eu-west-1.amazonaws.com/v1/", "orders/batch",
                              [{"order_id": "a"}], credentials, REGION)
    assert request.url == "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/orders/batch"
    assert json.loads(request.body) == [{"order_id": "a"}]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Amz-Security-Token"] == "session-token"
    authorization = request.headers["Authorization"]
    stamp = request.headers["X-Amz-Date"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{stamp[:8]}/eu-west-1/execute-api/aws4_request, ")
    assert "x-amz-security-token" in authorization.split("SignedHeaders=")[1]
    assert abs(datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ") - datetime.datetime.utcnow()) < datetime.timedelta(minutes=5)
    assert authorization.rsplit("Signature=", 1)[1] == _sigv4_signature(credentials.secret_key, request, REGION)


def test_the_sample_records_fit_the_template_s_dataset():
    import jsonschema

    from components.silo.schema import json_array_schema, json_schema
    from offline.stacks import silo_config

    (dataset,) = parse_stack_config("s", silo_config()).datasets
    singles, batch = aws.sample_records()
    for record in singles:
        jsonschema.validate(record, json_schema(dataset))  # the model API Gateway validates POST /orders with
    jsonschema.validate(batch, json_array_schema(dataset))
    assert len({r["order_id"] for r in singles + batch}) == 5
    assert aws.rows_of(batch)[0] == ["acceptance-4", "42.00"]


# -- waiting on Firehose, Step Functions, Athena -----------------------------------------------------------


def test_waiting_for_firehose_returns_the_keys_or_times_out_with_the_log_group(aws_env):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="raw", CreateBucketConfiguration={"LocationConstraint": REGION})
    with pytest.raises(AcceptanceError, match=r"no object under s3://raw/orders/ after 60s: .*/aws/kinesisfirehose/"):
        aws.wait_for_objects(s3, "raw", "orders/", timeout=60, poll=15, sleep=NO_SLEEP, clock=Clock(20))
    s3.put_object(Bucket="raw", Key="orders/year=2026/a.parquet", Body=b"x")
    assert aws.wait_for_objects(s3, "raw", "orders/", timeout=60, sleep=NO_SLEEP) == ["orders/year=2026/a.parquet"]


QUERY_ID = "8a3e5c1d-0000-4000-8000-000000000001"


def _athena_with(states, reason=""):
    athena = boto3.client("athena", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(athena)
    stub.add_response("start_query_execution", {"QueryExecutionId": QUERY_ID},
                      {"QueryString": "SELECT 1", "QueryExecutionContext": {"Database": "db"}, "WorkGroup": "wg"})
    for state in states:
        status = {"State": state, **({"StateChangeReason": reason} if reason and state == "FAILED" else {})}
        stub.add_response("get_query_execution", {"QueryExecution": {"QueryExecutionId": QUERY_ID, "Status": status}},
                          {"QueryExecutionId": QUERY_ID})
    return athena, stub


def test_an_athena_query_is_polled_until_it_succeeds_and_its_rows_returned():
    athena, stub = _athena_with(["QUEUED", "RUNNING", "SUCCEEDED"])
    stub.add_response("get_query_results", {"ResultSet": {"Rows": [
        {"Data": [{"VarCharValue": "order_id"}, {"VarCharValue": "amount"}]},
        {"Data": [{"VarCharValue": "acceptance-1"}, {"VarCharValue": "10.50"}]},
    ]}}, {"QueryExecutionId": QUERY_ID})
    with stub:
        rows = aws.athena_query(athena, "SELECT 1", database="db", workgroup="wg", sleep=NO_SLEEP)
    assert rows == [["acceptance-1", "10.50"]]
    stub.assert_no_pending_responses()


def test_a_failed_athena_query_raises_with_athena_s_reason():
    athena, stub = _athena_with(["RUNNING", "FAILED"], reason="TABLE_NOT_FOUND: line 1:15: Table 'db.orders' does not exist")
    with stub, pytest.raises(AcceptanceError, match="FAILED: TABLE_NOT_FOUND: .*'db.orders' does not exist"):
        aws.athena_query(athena, "SELECT 1", database="db", workgroup="wg", sleep=NO_SLEEP)


def test_a_stuck_athena_query_is_stopped():
    athena, stub = _athena_with(["RUNNING", "RUNNING"])
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": QUERY_ID})
    with stub, pytest.raises(AcceptanceError, match="still RUNNING after 3s; stopped it"):
        aws.athena_query(athena, "SELECT 1", database="db", workgroup="wg", timeout=3, sleep=NO_SLEEP, clock=Clock(2))
    stub.assert_no_pending_responses()


STATE_MACHINE = "arn:aws:states:eu-west-1:222222222222:stateMachine:acc1a2b-acceptance-etl"
EXECUTION = "arn:aws:states:eu-west-1:222222222222:execution:acc1a2b-acceptance-etl:acceptance-acc1a2b"


def _sfn_with(statuses):
    sfn = boto3.client("stepfunctions", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(sfn)
    started = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    stub.add_response("start_execution", {"executionArn": EXECUTION, "startDate": started},
                      {"stateMachineArn": STATE_MACHINE, "name": "acceptance-acc1a2b", "input": "{}"})
    for status in statuses:
        stub.add_response("describe_execution", {"executionArn": EXECUTION, "stateMachineArn": STATE_MACHINE, "status": status,
                                                 "startDate": started}, {"executionArn": EXECUTION})
    return sfn, stub


def test_the_etl_execution_is_waited_for():
    sfn, stub = _sfn_with(["RUNNING", "RUNNING", "SUCCEEDED"])
    with stub:
        described = aws.run_execution(sfn, STATE_MACHINE, "acceptance-acc1a2b", timeout=600, sleep=NO_SLEEP)
    assert described["status"] == "SUCCEEDED"
    stub.assert_no_pending_responses()


def test_a_failed_etl_execution_raises_with_the_failing_task_s_cause():
    sfn, stub = _sfn_with(["RUNNING", "FAILED"])
    stub.add_response("get_execution_history", {"events": [
        {"timestamp": datetime.datetime(2026, 1, 1), "type": "ExecutionFailed", "id": 9,
         "executionFailedEventDetails": {"error": "States.TaskFailed", "cause": "Glue job acc1a2b-acceptance-etl failed: OOM"}},
    ]}, {"executionArn": EXECUTION, "reverseOrder": True, "maxResults": 50})
    with stub, pytest.raises(AcceptanceError, match="ended FAILED: States.TaskFailed: Glue job .* failed: OOM"):
        aws.run_execution(sfn, STATE_MACHINE, "acceptance-acc1a2b", timeout=600, sleep=NO_SLEEP)


# -- the pulumi CLI wrapper and teardown --------------------------------------------------------------------


def test_pulumi_commands_use_the_run_s_backend_and_passphrase_and_never_log_in(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_pulumi(bin_dir)
    (bin_dir / "outputs.json").write_text(json.dumps({"accountId": "111111111111"}))
    cli = PulumiCli(tmp_path, tmp_path / "logs" / "pulumi.log", {"PULUMI_BACKEND_URL": "s3://b?region=eu-west-1",
                                                                 "PULUMI_CONFIG_PASSPHRASE": "p"}, executable=str(bin_dir / "pulumi"))
    cli.init_stack("organization/datalake/master")
    cli.up("organization/datalake/master")
    assert cli.outputs("organization/datalake/master") == {"accountId": "111111111111"}
    calls = calls_of(bin_dir)
    assert [c["argv"] for c in calls] == [
        ["stack", "init", "organization/datalake/master", "--secrets-provider", "passphrase", "--non-interactive"],
        ["up", "--yes", "--skip-preview", "--stack", "organization/datalake/master", "--non-interactive"],
        ["stack", "output", "--json", "--stack", "organization/datalake/master", "--non-interactive"],
    ]
    assert all(c["env"]["PULUMI_BACKEND_URL"] == "s3://b?region=eu-west-1" and c["env"]["PULUMI_CONFIG_PASSPHRASE"] == "p" for c in calls)
    assert all(c["cwd"] == str(tmp_path) for c in calls) and not any(c["argv"][0] == "login" for c in calls)
    assert "$ " + str(bin_dir / "pulumi") + " up --yes" in (tmp_path / "logs" / "pulumi.log").read_text()


def test_a_failing_pulumi_command_raises_with_its_error_line(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_pulumi(bin_dir, fail="up")
    cli = PulumiCli(tmp_path, tmp_path / "pulumi.log", {}, executable=str(bin_dir / "pulumi"))
    with pytest.raises(AcceptanceError, match=r"`pulumi up --yes` failed: error: update failed: AccessDenied: .*kms:CreateKey "
                                              r"\(full output in .*pulumi.log\)"):
        cli.up("organization/datalake/master")


def _export(resources) -> dict:
    return {"version": 3, "deployment": {"manifest": {}, "resources": resources}}


def _retained_master(s3, logs, iam, kms) -> dict:
    s3.create_bucket(Bucket="acc1a2b-master-artifacts-123456789012", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="acc1a2b-master-artifacts-123456789012", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2"):
        s3.put_object(Bucket="acc1a2b-master-artifacts-123456789012", Key="bundles/datalake.zip", Body=body)
    s3.delete_object(Bucket="acc1a2b-master-artifacts-123456789012", Key="bundles/datalake.zip")  # a delete marker
    logs.create_log_group(logGroupName="/acc1a2b/audit")
    policy = iam.create_policy(PolicyName="acc1a2b-boundary", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}))["Policy"]
    iam.create_policy_version(PolicyArn=policy["Arn"], PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}]}),
        SetAsDefault=True)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/acc1a2b-master", TargetKeyId=key)
    return _export([
        {"urn": "u1", "type": "aws:kms/key:Key", "retainOnDelete": True, "outputs": {"arn": key}},
        {"urn": "u2", "type": "aws:s3/bucket:Bucket", "retainOnDelete": True, "outputs": {"bucket": "acc1a2b-master-artifacts-123456789012"}},
        {"urn": "u3", "type": "aws:s3/bucketVersioning:BucketVersioning", "retainOnDelete": True, "outputs": {}},
        {"urn": "u4", "type": "aws:kms/alias:Alias", "retainOnDelete": True, "outputs": {"name": "alias/acc1a2b-master"}},
        {"urn": "u5", "type": "aws:cloudwatch/logGroup:LogGroup", "retainOnDelete": True, "outputs": {"name": "/acc1a2b/audit"}},
        {"urn": "u6", "type": "aws:iam/policy:Policy", "retainOnDelete": True, "outputs": {"arn": policy["Arn"]}},
        {"urn": "u7", "type": "aws:sns/topic:Topic", "outputs": {"arn": "arn:aws:sns:eu-west-1:123456789012:t"}},
    ]), key


def test_retained_resources_are_purged_from_the_stack_s_export(aws_env):
    session = boto3.session.Session(region_name=REGION)
    s3, logs, iam, kms = (session.client(s, region_name=REGION) for s in ("s3", "logs", "iam", "kms"))
    export, key = _retained_master(s3, logs, iam, kms)
    retained = aws.retained_resources(export)
    assert [t for t, _ in retained] == ["aws:s3/bucket:Bucket", "aws:cloudwatch/logGroup:LogGroup", "aws:iam/policy:Policy",
                                        "aws:kms/alias:Alias", "aws:kms/key:Key"]  # the topic is destroyed, not retained
    lines = aws.purge(session, REGION, retained)
    assert lines[0] == "deleted bucket acc1a2b-master-artifacts-123456789012 (3 object versions)"
    assert not any(line.startswith("FAILED") for line in lines), lines
    assert s3.list_buckets()["Buckets"] == []
    assert logs.describe_log_groups(logGroupNamePrefix="/acc1a2b")["logGroups"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []
    assert kms.list_aliases(KeyId=key)["Aliases"] == []
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_a_resource_that_cannot_be_purged_is_reported_with_the_command_that_removes_it(aws_env):
    lines = aws.purge(boto3.session.Session(region_name=REGION), REGION,
                      [("aws:s3/bucket:Bucket", {"bucket": "acc1a2b-gone"}), ("aws:cloudwatch/logGroup:LogGroup", {"name": "/x"})])
    assert lines[0].startswith("FAILED to remove aws:s3/bucket:Bucket acc1a2b-gone: ")
    assert lines[0].endswith("remove it by hand (empty it, then aws s3api delete-bucket --bucket acc1a2b-gone)")
    assert lines[1].endswith("(aws logs delete-log-group --region eu-west-1 --log-group-name /x)")


def test_teardown_destroys_the_master_purges_what_it_retained_and_deletes_the_state_bucket(aws_env, tmp_path, monkeypatch):
    session = boto3.session.Session(region_name=REGION)
    s3, logs, iam, kms = (session.client(s, region_name=REGION) for s in ("s3", "logs", "iam", "kms"))
    export, key = _retained_master(s3, logs, iam, kms)
    bin_dir = tmp_path / "bin"
    fake_pulumi(bin_dir)
    (bin_dir / "export.json").write_text(json.dumps(export))
    (bin_dir / "stacks.json").write_text(json.dumps([{"name": "organization/datalake/master"}]))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    settings = Settings(silo_account="222222222222", analytics_ou="ou-ab12-22222222", prefix="acc1a2b", region=REGION,
                        master_account="123456789012", work_dir=tmp_path / "work")
    run = Run(settings, session, settings.work_dir, out=lambda line: None)
    run.project.mkdir()
    run.step_state_bucket()
    s3.put_object(Bucket=settings.state_bucket, Key=".pulumi/stacks/datalake/master.json", Body=b"{}")
    run.created("master")

    assert run.teardown() == []
    argv = [c["argv"][:2] for c in calls_of(bin_dir)]
    assert argv == [["stack", "ls"], ["stack", "export"], ["destroy", "--yes"], ["stack", "rm"]]
    assert s3.list_buckets()["Buckets"] == []  # the master's retained bucket and the state bucket
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert json.loads((settings.work_dir / "run.json").read_text())["created"] == []


def test_teardown_keeps_the_state_bucket_while_a_stack_could_not_be_removed(aws_env, tmp_path, monkeypatch):
    session = boto3.session.Session(region_name=REGION)
    bin_dir = tmp_path / "bin"
    fake_pulumi(bin_dir, fail="destroy")
    (bin_dir / "export.json").write_text(json.dumps(_export([])))
    (bin_dir / "stacks.json").write_text(json.dumps([{"name": "organization/datalake/master"}]))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    settings = Settings(silo_account="222222222222", prefix="acc1a2b", region=REGION, master_account="123456789012",
                        work_dir=tmp_path / "work")
    run = Run(settings, session, settings.work_dir, out=lambda line: None)
    run.project.mkdir()
    run.step_state_bucket()
    run.created("master")

    left = run.teardown()
    assert left[0].startswith("destroy organization/datalake/master: `pulumi destroy --yes` failed: error: update failed")
    assert left[-1] == "state bucket acc1a2b-acceptance-state-123456789012 kept: it still holds a stack's state"
    assert boto3.client("s3", region_name=REGION).head_bucket(Bucket=settings.state_bucket)
    assert json.loads((settings.work_dir / "run.json").read_text())["created"] == ["state-bucket", "master"]


def _scripted_run(tmp_path, fail_at: str = "", keep: bool = False):
    """A Run whose steps only record themselves (the real ones need AWS), to check the order and the teardown."""
    from acceptance.run import execute

    settings = Settings(silo_account="222222222222", prefix="acc1a2b", master_account="123456789012", work_dir=tmp_path, keep=keep)
    lines: list[str] = []
    run = Run(settings, session=None, work=tmp_path, out=lines.append)
    done: list[str] = []

    def step(name):
        def action():
            done.append(name)
            if name == fail_at:
                raise AcceptanceError(f"{name} broke")
        return action

    run.prepare = lambda: done.append("prepare")
    for name in ("state_bucket", "master", "runner_create", "runner_update", "ingest", "etl", "query", "retire"):
        setattr(run, f"step_{name}", step(name))
    run.teardown = lambda: done.append("teardown") or []
    return execute, run, done, lines


def test_the_steps_run_in_the_plan_s_order_then_the_teardown(tmp_path):
    execute, run, done, lines = _scripted_run(tmp_path)
    assert execute(run, keep=False) == 0
    assert done == ["prepare", "state_bucket", "master", "runner_create", "runner_update", "ingest", "etl", "query", "retire", "teardown"]
    assert lines[-1] == "acceptance passed: every step passed and everything was removed"


def test_a_failed_step_stops_the_run_tears_down_and_exits_1(tmp_path):
    execute, run, done, lines = _scripted_run(tmp_path, fail_at="etl")
    assert execute(run, keep=False) == 1
    assert done[-3:] == ["ingest", "etl", "teardown"] and "query" not in done
    assert lines[-1] == "acceptance FAILED: step etl failed: etl broke"


def test_keep_skips_the_teardown_and_says_how_to_finish(tmp_path):
    execute, run, done, lines = _scripted_run(tmp_path, keep=True)
    assert execute(run, keep=True) == 0
    assert "teardown" not in done
    assert f"python -m acceptance --teardown-only --work-dir {tmp_path}" in lines[-1]
