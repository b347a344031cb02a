"""`python -m runner bootstrap` on moto: what it creates, that a second run changes nothing, and that
weaker existing resources are reported and left alone. IAM documents are linted with parliament."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from components.stack_config import parse_stack_config
from components.shared.errors import UsageError
from offline.harness import MASTER_ACCOUNT_ID
from offline.stacks import master_config
from runner.bootstrap.policies import bucket_policy, deployer_policy, dumps, key_policy, trust_policy
from runner.bootstrap.resources import Bootstrap, write_calls
from runner.bootstrap.settings import DEPLOYER_POLICY_NAME, settings_from
from runner.cli import main
from tests.iam_lint import parliament_findings

REGION = "eu-west-1"
OPERATOR = "arn:aws:iam::123456789012:role/platform-admin"


def config():
    return parse_stack_config("master", master_config())


@pytest.fixture
def aws():
    """moto clients in the master region, each recording the calls that may change something."""
    with mock_aws():
        writes: list[str] = []
        clients = {name: boto3.client(name, region_name=REGION) for name in ("s3", "kms", "iam", "sts")}
        for name in ("s3", "kms", "iam"):
            write_calls(clients[name], writes)
        account = clients["sts"].get_caller_identity()["Account"]
        yield clients, writes, account


def bootstrap(aws, *, dry_run=False, operators=(OPERATOR,), cfg=None, **overrides):
    clients, _, account = aws
    settings = settings_from(cfg or config(), account, operators=operators, **overrides)
    return settings, Bootstrap(settings, s3=clients["s3"], kms=clients["kms"], iam=clients["iam"], dry_run=dry_run, sleep=lambda s: None).run()


def test_first_run_creates_the_backend_with_the_project_posture(aws):
    (clients, writes, account), s3 = aws, aws[0]["s3"]
    settings, outcome = bootstrap(aws)
    assert outcome.findings == []
    state, logs = settings.state_bucket, settings.log_bucket
    assert (state, logs) == (f"acme-dl-master-pulumi-state-{account}", f"acme-dl-master-state-logs-{account}")

    key = clients["kms"].describe_key(KeyId="alias/acme-dl-pulumi-state")["KeyMetadata"]
    assert key["Arn"] == outcome.key_arn and key["KeyManager"] == "CUSTOMER"
    assert clients["kms"].get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    key_doc = json.loads(clients["kms"].get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    by_sid = {st["Sid"]: st for st in key_doc["Statement"]}
    assert by_sid["EnableAccountIamPolicies"]["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}
    assert by_sid["UseStateKeyAsDeployer"]["Principal"] == {"AWS": f"arn:aws:iam::{account}:role/datalake-master-deployer"}
    assert by_sid["UseStateKeyAsRunnerAndPipeline"]["Condition"]["ArnLike"]["aws:PrincipalArn"] == [
        f"arn:aws:iam::{account}:role/acme-dl-runner",
        f"arn:aws:iam::{account}:role/master-delivery-deploy-role-*",
    ]

    for bucket in (state, logs):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}
        assert rule["BucketKeyEnabled"] is True
        assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        )
        assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        [tls] = [st for st in policy["Statement"] if st["Sid"] == "DenyInsecureTransport"]
        assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert sorted(tls["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
        assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=state)["Rules"]}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert not any("Expiration" in r for r in rules.values()), "current state objects must never expire"
    assert {r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=logs)["Rules"]} >= {"expire-current-objects"}
    assert s3.get_bucket_logging(Bucket=state)["LoggingEnabled"] == {"TargetBucket": logs, "TargetPrefix": f"{state}/"}
    log_policy = json.loads(s3.get_bucket_policy(Bucket=logs)["Policy"])
    assert any(st.get("Principal") == {"Service": "logging.s3.amazonaws.com"} for st in log_policy["Statement"])

    role = clients["iam"].get_role(RoleName="datalake-master-deployer")["Role"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["ArnLike"]["aws:PrincipalArn"] == [f"arn:aws:iam::{account}:role/master-delivery-deploy-role-*", OPERATOR]
    inline = clients["iam"].get_role_policy(RoleName="datalake-master-deployer", PolicyName=DEPLOYER_POLICY_NAME)["PolicyDocument"]
    assert {st["Sid"] for st in inline["Statement"]} == {st["Sid"] for st in deployer_policy(settings, key["Arn"])["Statement"]}
    assert clients["iam"].list_attached_role_policies(RoleName="datalake-master-deployer")["AttachedPolicies"] == []
    assert sorted(set(writes)) == sorted(
        {
            "iam:CreateRole", "iam:PutRolePolicy", "kms:CreateKey", "kms:EnableKeyRotation", "kms:CreateAlias",
            "s3:CreateBucket", "s3:PutPublicAccessBlock", "s3:PutBucketVersioning", "s3:PutBucketEncryption",
            "s3:PutBucketPolicy", "s3:PutBucketLifecycleConfiguration", "s3:PutBucketTagging", "s3:PutBucketLogging",
        }
    )


def test_a_second_run_makes_no_write_call_and_finds_nothing(aws):
    _, writes, _ = aws
    bootstrap(aws)
    first = len(writes)
    assert first > 0
    _, outcome = bootstrap(aws)
    assert writes[first:] == []
    assert outcome.findings == [] and outcome.created == []
    assert len(outcome.kept) == 4


def test_dry_run_only_reads_and_lists_what_it_would_create(aws):
    clients, writes, _ = aws
    settings, outcome = bootstrap(aws, dry_run=True)
    assert writes == []
    assert [line.split(" (")[0] for line in outcome.created] == [
        "IAM role datalake-master-deployer",
        "KMS key alias/acme-dl-pulumi-state",
        f"bucket {settings.log_bucket}",
        f"bucket {settings.state_bucket}",
        f"inline policy {DEPLOYER_POLICY_NAME} of datalake-master-deployer",
    ]
    assert clients["s3"].list_buckets()["Buckets"] == []


def weaker_state_bucket(s3, name: str) -> None:
    """What a person may have made by hand: no versioning, SSE-S3, public access half open, ACLs on,
    no policy, and a lifecycle rule that expires current objects."""
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}, ObjectOwnership="ObjectWriter")
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False, "RestrictPublicBuckets": False},
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": [{"ID": "tidy", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 30}}]}
    )


def test_a_weaker_existing_state_bucket_is_reported_and_left_as_it_is(aws):
    clients, writes, account = aws
    s3, name = clients["s3"], f"acme-dl-master-pulumi-state-{account}"
    weaker_state_bucket(s3, name)
    touched: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, params, **_: touched.append(f"{model.name} {params.get('Bucket')}") if not model.name.startswith(("Get", "List", "Head")) else None)

    _, outcome = bootstrap(aws)
    problems = {f.problem.split(":")[0].split(" (")[0] for f in outcome.findings if f.resource == f"bucket {name}"}
    assert problems == {
        "is not versioned",
        "default encryption is AES256, not SSE-KMS with alias/acme-dl-pulumi-state",
        "public access is not fully blocked",
        "object ownership is ObjectWriter, not BucketOwnerEnforced",
        "has no bucket policy",
        "lifecycle rule(s) tidy expire current objects",
        "has server access logging off",
    }
    [public] = [f for f in outcome.findings if f.problem.startswith("public access")]
    assert "BlockPublicPolicy, RestrictPublicBuckets off" in public.problem
    assert public.fix.startswith(f"aws s3api put-public-access-block --bucket {name} ")
    # Nothing of the existing bucket was changed; the rest of the backend was created around it.
    assert not [call for call in touched if call.endswith(f" {name}")]
    assert "Status" not in s3.get_bucket_versioning(Bucket=name)
    assert s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert "s3:PutBucketLogging" not in writes and "s3:CreateBucket" in writes


def test_a_key_without_rotation_is_reported_not_rotated(aws):
    clients, writes, _ = aws
    kms = clients["kms"]
    key = kms.create_key(Description="made by hand")["KeyMetadata"]
    kms.create_alias(AliasName="alias/acme-dl-pulumi-state", TargetKeyId=key["KeyId"])
    del writes[:]
    _, outcome = bootstrap(aws)
    by_problem = {f.problem: f for f in outcome.findings if f.resource == "KMS key alias/acme-dl-pulumi-state"}
    assert by_problem["has automatic rotation off"].fix == f"aws kms enable-key-rotation --key-id {key['KeyId']}"
    assert any(p.startswith("its key policy lacks UseStateKeyAsDeployer, UseStateKeyAsRunnerAndPipeline, AllowS3ServerAccessLogEncryption") for p in by_problem)
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False
    assert not [w for w in writes if w.startswith("kms:")]
    # The buckets made around it use the existing key: the second run has the same two findings and no others.
    _, again = bootstrap(aws)
    assert [f.problem for f in again.findings] == [f.problem for f in outcome.findings]


def test_a_hand_made_deployer_with_admin_rights_is_reported(aws):
    clients, writes, _ = aws
    iam = clients["iam"]
    iam.create_role(RoleName="datalake-master-deployer", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}],
    }))
    admin = iam.create_policy(PolicyName="hand-made-admin", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="datalake-master-deployer", PolicyArn=admin)
    del writes[:]
    _, outcome = bootstrap(aws)
    problems = [f.problem for f in outcome.findings if f.resource == "IAM role datalake-master-deployer"]
    assert problems[0].startswith("its trust policy does not let arn:aws:iam::123456789012:role/master-delivery-deploy-role-*")
    assert problems[1].startswith("its trust policy has statements bootstrap would not write (statement 1): other principals may assume it")
    assert problems[2].startswith(f"managed policies are attached ({admin})")
    assert problems[3].startswith(f"has no inline policy {DEPLOYER_POLICY_NAME}")
    assert not [w for w in writes if w.startswith("iam:")]


def test_the_cli_prints_the_next_commands_and_exits_1_on_findings(tmp_path, capsys):
    out_dir = tmp_path / "out"
    with mock_aws():
        assert main(["bootstrap", "--dry-run", f"--out-dir={out_dir}"]) == 0
        assert "dry run: nothing was changed" in capsys.readouterr().out
        assert main(["bootstrap", f"--out-dir={out_dir}", f"--operator={OPERATOR}"]) == 0
        out = capsys.readouterr().out
        account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
        assert f"pulumi login 's3://acme-dl-master-pulumi-state-{account}?region=eu-west-1'" in out
        assert "pulumi stack init master --secrets-provider 'awskms://alias/acme-dl-pulumi-state?region=eu-west-1'" in out
        boto3.client("s3", region_name=REGION).put_bucket_versioning(
            Bucket=f"acme-dl-master-pulumi-state-{account}", VersioningConfiguration={"Status": "Suspended"}
        )
        assert main(["bootstrap", f"--out-dir={out_dir}", f"--operator={OPERATOR}"]) == 1
        out = capsys.readouterr().out
    assert "1 finding(s)" in out and "is not versioned" in out and "pulumi login" not in out
    saved = json.loads((out_dir / "datalake-master-deployer.policy.json").read_text())
    assert {st["Sid"] for st in saved["Statement"]} >= {"ReadWritePulumiState", "ProtectPulumiBackend"}


@pytest.fixture(scope="module")
def recording(evaluations):
    return evaluations.master()


def test_bootstrap_creates_the_names_the_master_stack_and_the_runner_use(recording):
    """The master program's `pulumiStateBucket` output, the runner's role, the pipeline's deploy role name."""
    settings = settings_from(config(), MASTER_ACCOUNT_ID)
    assert recording.outputs["pulumiStateBucket"] == settings.state_bucket
    assert settings.deployer_role == master_config()["datalake:delivery"]["masterDeployRoleName"]
    [runner_role] = [r for r in recording.of_type("aws:iam/role:Role") if r.name == "master-runner-role"]
    assert runner_role.inputs["name"] == settings.runner_role
    assert any(r.name == "master-delivery-deploy-role" for r in recording.of_type("aws:iam/role:Role"))
    # Names from the config win; a provider the runner already uses is the key bootstrap creates.
    raw = master_config()
    raw["datalake:runner"] = {**raw["datalake:runner"], "stateBucket": "acme-dl-state", "secretsProvider": "awskms://alias/acme-dl-state?region=eu-west-1"}
    raw["datalake:delivery"] = {**raw["datalake:delivery"], "secretsKeyArn": "arn:aws:kms:eu-west-1:111111111111:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"}
    named = settings_from(parse_stack_config("master", raw), MASTER_ACCOUNT_ID)
    assert (named.state_bucket, named.key_alias) == ("acme-dl-state", "acme-dl-state")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"key_alias": "acme-dl-master"}, "is the master stack's own key"),
        ({"deployer_role": "other-deployer"}, "--deployer-role 'other-deployer' contradicts datalake:delivery.masterDeployRoleName"),
        ({"operators": ["arn:aws:sts::123456789012:assumed-role/admin/me"]}, "is a role session"),
        ({"operators": ["admin"]}, "is not an IAM role or user ARN"),
        ({"noncurrent_days": 0}, "--noncurrent-days 0"),
    ],
)
def test_bad_names_are_refused_with_the_fix(overrides, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("*", r"\*")):
        settings_from(config(), MASTER_ACCOUNT_ID, **overrides)


# Resource types of the master program → the IAM service the deployer needs for them.
SERVICE_OF_TYPE = {
    "aws:s3/": "s3", "aws:kms/": "kms", "aws:iam/": "iam", "aws:sns/": "sns", "aws:athena/": "athena",
    "aws:cloudwatch/logGroup": "logs", "aws:cloudwatch/event": "events", "aws:codebuild/": "codebuild",
    "aws:codepipeline/": "codepipeline", "aws:codestarconnections/": "codestar-connections",
    "aws:codestarnotifications/": "codestar-notifications",
}


def test_the_deployer_policy_covers_every_resource_type_of_the_master_program(recording):
    settings = settings_from(config(), MASTER_ACCOUNT_ID)
    allowed = {
        action.split(":")[0]
        for st in deployer_policy(settings, "arn:aws:kms:eu-west-1:222222222222:key/k")["Statement"]
        if st["Effect"] == "Allow"
        for action in st["Action"]
    }
    types = {r.type for r in recording.resources if r.custom and not r.type.startswith("pulumi:providers:")}
    uncovered = sorted(t for t in types if not any(t.startswith(prefix) and SERVICE_OF_TYPE[prefix] in allowed for prefix in SERVICE_OF_TYPE))
    assert uncovered == [], "new resource types in the master program: grant them in runner/bootstrap/policies.py deployer_policy"


def test_the_deployer_policy_keeps_away_from_the_backend_and_itself():
    settings = settings_from(config(), MASTER_ACCOUNT_ID)
    doc = deployer_policy(settings, "arn:aws:kms:eu-west-1:222222222222:key/k")
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    protect = by_sid["ProtectPulumiBackend"]
    assert protect["Effect"] == "Deny" and {"s3:PutBucket*", "s3:PutEncryptionConfiguration", "s3:DeleteBucket*"} <= set(protect["Action"])
    [buckets] = [st for st in doc["Statement"] if st["Sid"] == "ManageMasterBuckets"]
    assert "s3:PutBucketAcl" not in buckets["Action"] and not any(a.endswith("*") and a.startswith("s3:Put") for a in buckets["Action"])
    assert set(protect["Resource"]) == {f"arn:aws:s3:::{settings.state_bucket}", f"arn:aws:s3:::{settings.log_bucket}"}
    assert by_sid["KeepPulumiStateVersions"]["Effect"] == "Deny"
    assert by_sid["ProtectDeployerRole"] == {
        "Sid": "ProtectDeployerRole", "Effect": "Deny", "Action": ["iam:*"], "Resource": [f"arn:aws:iam::{MASTER_ACCOUNT_ID}:role/datalake-master-deployer"],
    }
    # The default prefix makes the deployer's name match the roles it manages: the deny is what stops it.
    default = settings_from(parse_stack_config("master", {**master_config(), "datalake:namePrefix": "datalake"}), MASTER_ACCOUNT_ID)
    assert f"arn:aws:iam::{MASTER_ACCOUNT_ID}:role/datalake-*" in {r for st in deployer_policy(default, "k")["Statement"] if st["Sid"] == "ManageMasterRoles" for r in st["Resource"]}
    for st in doc["Statement"]:
        if st["Effect"] == "Allow":
            assert not ("*" in st["Resource"] and any(a.endswith(":*") or a == "*" for a in st["Action"])), st["Sid"]
    # IAM caps a role's inline policies at 10,240 characters (whitespace not counted).
    assert len(dumps(doc)) < 10240


def accepted(line: str) -> bool:
    """Two findings on the deployer policy that are not defects:
    - parliament 1.6.4 wants every resource type athena tagging accepts (capacity reservations too);
      AWS authorises it on the one resource tagged, here a workgroup or a data catalog;
    - the master stack writes its buckets' policies and lifecycles, which parliament calls a possible
      escalation to their objects; that is the deployer's job, and the backend's buckets are denied."""
    athena = line.startswith("RESOURCE_MISMATCH") and "athena:" in line and "capacity-reservation" in line and "kms:" not in line
    buckets = line.startswith("RESOURCE_POLICY_PRIVILEGE_ESCALATION") and "on arn:aws:s3:::acme-dl-master-* due to" in line
    return athena or buckets


def test_every_document_bootstrap_writes_passes_parliament():
    settings = settings_from(config(), MASTER_ACCOUNT_ID, operators=[OPERATOR])
    key_arn = f"arn:aws:kms:eu-west-1:{MASTER_ACCOUNT_ID}:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
    findings = {
        "deployer": [f for f in parliament_findings(deployer_policy(settings, key_arn)) if not accepted(f)],
        "trust": parliament_findings(trust_policy(settings), trust_policy=True),
        "key": parliament_findings(key_policy(settings), key_policy=True),
        "state bucket": parliament_findings(bucket_policy(settings, settings.state_bucket, key_arn, receives_logs=False)),
        "log bucket": parliament_findings(bucket_policy(settings, settings.log_bucket, key_arn, receives_logs=True)),
    }
    assert findings == dict.fromkeys(findings, [])
