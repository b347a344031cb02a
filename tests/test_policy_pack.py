"""The CrossGuard rules: each on good and bad inputs, and every rule over both whole programs."""

from __future__ import annotations

import copy
import json
import re

import pytest

from offline.harness import MASTER_ACCOUNT_ID, RecordedResource, Recording
from offline.policy_check import check, pack_config
from policy import access, logs, services, storage, rules

SILO = "222222222222"
OTHER = "333333333333"
ORG_PATHS = {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*"]}}


def resource(type_: str, inputs: dict, *, name: str = "r", stack: str = "master", deps=(), outputs=None) -> RecordedResource:
    urn = f"urn:pulumi:{stack}::datalake::{type_}::{name}"
    return RecordedResource(type_, name, urn, inputs, "", "", True, None, list(deps), outputs or dict(inputs))


def violations(policy, *resources: RecordedResource, config=None) -> list[str]:
    found = check(Recording(list(resources), {}), [policy], {policy.name: config or {}})
    return [v.message for v in found]


def doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(sid, action, resource_="*", principal=None, condition=None) -> dict:
    s = {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource_}
    if principal is not None:
        s["Principal"] = principal
    if condition:
        s["Condition"] = condition
    return s


# --- whole programs ---------------------------------------------------------------------------

def test_every_rule_passes_on_the_master_program(master):
    found = check(master, rules.POLICIES, pack_config(MASTER_ACCOUNT_ID))
    assert found == [], "\n".join(map(str, found))


def test_every_rule_passes_on_the_silo_program(silo):
    found = check(silo, rules.POLICIES, pack_config(MASTER_ACCOUNT_ID))
    assert found == [], "\n".join(map(str, found))


def test_a_silo_naming_the_master_needs_the_master_in_the_pack_config(silo):
    """Without `masterAccountId` the master's grants are exactly what the rule flags."""
    found = check(silo, [access.resource_policy_org_scoped])
    flagged = {re.search(rf"statement (\w+) names account\(s\) {MASTER_ACCOUNT_ID}:", v.message) for v in found}
    assert None not in flagged, "\n".join(map(str, found))
    assert {match.group(1) for match in flagged} == {
        "MasterListsProcessed", "MasterReadsProcessed", "MasterDecryptsProcessedObjects", "MasterReadsProcessedCatalog"
    }


def test_a_silo_program_granting_another_silo_is_flagged_even_with_the_master_configured():
    from offline.harness import run_program
    from offline.stacks import master_stack_outputs, silo_config

    config = silo_config()
    # A silo whose master stack reference points at another silo's account (a mixed-up stack name).
    outputs = {**master_stack_outputs(), "accountId": OTHER}
    silo = run_program(config, stack=f"silo-{SILO}", account_id=SILO, stack_outputs={config["datalake:masterStack"]: outputs})
    found = check(silo, [access.resource_policy_org_scoped], pack_config(MASTER_ACCOUNT_ID))
    assert len(found) == 4 and all(f"names account(s) {OTHER}" in v.message for v in found), "\n".join(map(str, found))


def test_the_pack_is_mandatory_and_names_are_unique():
    names = [p.name for p in rules.POLICIES]
    assert len(names) == len(set(names))
    assert rules.ENFORCEMENT.value == "mandatory"


# --- S3 ------------------------------------------------------------------------------------------

def bucket_set(drop: str = "", **overrides):
    """A compliant bucket and its parts (as SecureBucket registers them), minus `drop`."""
    bucket = resource("aws:s3/bucket:Bucket", {"bucket": "b1"}, name="b1", outputs={"bucket": "b1", "id": "b1"})
    parts = {
        "versioning": ("aws:s3/bucketVersioning:BucketVersioning", {"bucket": "b1", "versioningConfiguration": {"status": "Enabled"}}),
        "encryption": (
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            {"bucket": "b1", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:aws:kms:eu-west-1:1:key/k"}}]},
        ),
        "publicAccess": (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            {"bucket": "b1", **{flag: True for flag in storage.PUBLIC_ACCESS_FLAGS}},
        ),
        "ownership": ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", {"bucket": "b1", "rule": {"objectOwnership": "BucketOwnerEnforced"}}),
        "policy": (
            "aws:s3/bucketPolicy:BucketPolicy",
            {"bucket": "b1", "policy": doc({"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ["s3:*"], "Resource": ["arn:aws:s3:::b1/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}})},
        ),
    }
    result = [bucket]
    for kind, (type_, inputs) in parts.items():
        if kind == drop:
            continue
        inputs = {**inputs, **overrides.get(kind, {})}
        # The bucket input is unknown in a preview: the dependency must be enough to link a part.
        result.append(resource(type_, inputs, name=f"b1-{kind}", deps=[bucket.urn]))
    return result


def test_compliant_bucket_passes():
    assert violations(storage.s3_bucket_baseline, *bucket_set()) == []


@pytest.mark.parametrize(
    "drop, overrides, expected",
    [
        ("versioning", {}, "versioning is not Enabled"),
        ("", {"versioning": {"versioningConfiguration": {"status": "Suspended"}}}, "versioning is not Enabled"),
        ("encryption", {}, "SSE-KMS"),
        ("", {"encryption": {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}}, "SSE-KMS"),
        ("publicAccess", {}, "public access is not fully blocked"),
        ("", {"publicAccess": {"restrictPublicBuckets": False}}, "public access is not fully blocked"),
        ("ownership", {}, "BucketOwnerEnforced"),
        ("", {"ownership": {"rule": {"objectOwnership": "ObjectWriter"}}}, "BucketOwnerEnforced"),
        ("policy", {}, "aws:SecureTransport"),
        ("", {"policy": {"policy": doc(allow("Read", "s3:GetObject", "arn:aws:s3:::b1/*", {"AWS": "*"}, ORG_PATHS))}}, "aws:SecureTransport"),
    ],
)
def test_bucket_missing_a_protection_is_reported(drop, overrides, expected):
    found = violations(storage.s3_bucket_baseline, *bucket_set(drop, **overrides))
    assert len(found) == 1 and expected in found[0], found


def test_a_part_configuring_another_bucket_does_not_count():
    parts = bucket_set()
    other = resource("aws:s3/bucket:Bucket", {"bucket": "b2"}, name="b2", outputs={"bucket": "b2", "id": "b2"})
    # b2's only "versioning" is b1's, linked by the bucket name when dependencies are ambiguous.
    found = violations(storage.s3_bucket_baseline, *parts, other)
    assert len(found) == 5 and all("b2" in m for m in found), found


def test_removing_the_tls_statement_from_a_real_bucket_policy_is_caught(master):
    mutated = copy.deepcopy(master)
    policy = next(r for r in mutated.resources if r.name == "master-artifact-store-artifacts-policy")
    document = json.loads(policy.outputs["policy"])
    document["Statement"] = [s for s in document["Statement"] if s["Sid"] != "DenyInsecureTransport"]
    policy.outputs["policy"] = json.dumps(document)
    found = check(mutated, [storage.s3_bucket_baseline])
    assert [v.urn for v in found] == [mutated.one("aws:s3/bucket:Bucket", "master-artifact-store-artifacts-bucket").urn]


# --- KMS -----------------------------------------------------------------------------------------

def test_key_rotation_required_for_symmetric_keys_only():
    assert violations(storage.kms_key_rotation, resource("aws:kms/key:Key", {"enableKeyRotation": True})) == []
    assert violations(storage.kms_key_rotation, resource("aws:kms/key:Key", {})) != []
    assert violations(storage.kms_key_rotation, resource("aws:kms/key:Key", {"enableKeyRotation": False})) != []
    assert violations(storage.kms_key_rotation, resource("aws:kms/key:Key", {"customerMasterKeySpec": "RSA_2048"})) == []


def test_key_policy_star_principal_needs_an_org_condition():
    bad = resource("aws:kms/key:Key", {"enableKeyRotation": True, "policy": doc(allow("Open", "kms:Decrypt", "*", {"AWS": "*"}))})
    good = resource(
        "aws:kms/key:Key",
        {"policy": doc(allow("Org", "kms:Decrypt", "*", {"AWS": "*"}, ORG_PATHS), allow("OrgId", "kms:Decrypt", "*", "*", {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}))},
    )
    deny = resource("aws:kms/keyPolicy:KeyPolicy", {"policy": doc({"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"})})
    assert any("Open" in m for m in violations(storage.kms_key_policy_org_scoped, bad))
    assert violations(storage.kms_key_policy_org_scoped, good, deny) == []


# --- IAM wildcards -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "statement, expected",
    [
        (allow("All", "*", "*"), "every action on every resource"),
        (allow("All", ["s3:GetObject", "*:*"], "*"), "every action on every resource"),
        (allow("Iam", "iam:*", "arn:aws:iam::111111111111:role/x"), "iam:*"),
        (allow("S3", "s3:*", "*"), "s3:* on every resource"),
    ],
)
def test_admin_wildcards_are_reported_in_any_policy_property(statement, expected):
    role_policy = resource("aws:iam/rolePolicy:RolePolicy", {"policy": doc(statement)})
    inline = resource("aws:iam/role:Role", {"inlinePolicies": [{"name": "x", "policy": doc(statement)}]})
    assert any(expected in m for m in violations(access.iam_no_admin_wildcards, role_policy))
    assert any("inlinePolicies[0].policy" in m for m in violations(access.iam_no_admin_wildcards, inline))


def test_scoped_statements_and_denies_are_fine():
    ok = resource(
        "aws:iam/policy:Policy",
        {
            "policy": doc(
                allow("S3OnBucket", "s3:*", "arn:aws:s3:::b1/*"),
                allow("KeyAdmin", "kms:*", "*", {"AWS": "arn:aws:iam::111111111111:root"}),
                {"Sid": "DenyAll", "Effect": "Deny", "Action": "*", "Resource": "*"},
            )
        },
    )
    assert violations(access.iam_no_admin_wildcards, ok) == []


# --- resource policies -------------------------------------------------------------------------

def test_star_principal_without_org_condition_is_reported_on_any_resource_policy():
    topic = resource("aws:sns/topicPolicy:TopicPolicy", {"policy": doc(allow("Open", "sns:Publish", "arn:aws:sns:eu-west-1:1:t", "*"))})
    scoped = resource("aws:sns/topicPolicy:TopicPolicy", {"policy": doc(allow("Org", "sns:Publish", "arn:aws:sns:eu-west-1:1:t", "*", ORG_PATHS))})
    assert any("outside this account" in m for m in violations(access.resource_policy_org_scoped, topic))
    assert violations(access.resource_policy_org_scoped, scoped) == []


def test_other_account_principal_needs_org_condition_once_the_home_account_is_known():
    grant = allow("Other", "s3:GetObject", "arn:aws:s3:::b1/*", {"AWS": f"arn:aws:iam::{OTHER}:root"})
    policy = resource("aws:s3/bucketPolicy:BucketPolicy", {"policy": doc(grant)})
    own = resource("aws:s3/bucketPolicy:BucketPolicy", {"policy": doc({**grant, "Principal": {"AWS": f"arn:aws:iam::{MASTER_ACCOUNT_ID}:root"}})})
    config = {"homeAccountId": MASTER_ACCOUNT_ID}
    assert violations(access.resource_policy_org_scoped, policy, config=config) != []
    assert violations(access.resource_policy_org_scoped, own, config=config) == []


def test_a_silo_policy_never_names_another_account_even_with_an_org_condition():
    grant = allow("Other", "s3:GetObject", "arn:aws:s3:::b1/*", {"AWS": f"arn:aws:iam::{OTHER}:root"}, ORG_PATHS)
    in_silo = resource("aws:s3/bucketPolicy:BucketPolicy", {"policy": doc(grant)}, stack=f"silo-{SILO}")
    source_account = allow("Svc", "sqs:SendMessage", "arn:aws:sqs:eu-west-1:1:q", {"Service": "s3.amazonaws.com"}, {"StringEquals": {"aws:SourceAccount": OTHER}})
    in_silo_condition = resource("aws:sqs/queuePolicy:QueuePolicy", {"policy": doc(source_account)}, stack=f"silo-{SILO}")
    own = resource("aws:sqs/queuePolicy:QueuePolicy", {"policy": doc({**source_account, "Condition": {"StringEquals": {"aws:SourceAccount": SILO}}})}, stack=f"silo-{SILO}")
    assert any(OTHER in m for m in violations(access.resource_policy_org_scoped, in_silo))
    assert any(OTHER in m for m in violations(access.resource_policy_org_scoped, in_silo_condition))
    assert violations(access.resource_policy_org_scoped, own) == []
    assert violations(access.resource_policy_org_scoped, in_silo_condition, config={"trustedAccountIds": [OTHER]}) == []


def test_a_silo_may_name_the_master_account_and_no_other():
    master = {"masterAccountId": MASTER_ACCOUNT_ID}
    in_org = {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}

    def grant_to(account, condition=in_org):
        statement = allow("Read", "s3:GetObject", f"arn:aws:s3:::b-{SILO}/*", {"AWS": f"arn:aws:iam::{account}:root"}, condition)
        return resource("aws:s3/bucketPolicy:BucketPolicy", {"policy": doc(statement)}, stack=f"silo-{SILO}")

    assert violations(access.resource_policy_org_scoped, grant_to(MASTER_ACCOUNT_ID), config=master) == []
    assert any(MASTER_ACCOUNT_ID in m for m in violations(access.resource_policy_org_scoped, grant_to(MASTER_ACCOUNT_ID)))
    assert any(OTHER in m for m in violations(access.resource_policy_org_scoped, grant_to(OTHER), config=master))
    # Naming the master is allowed; granting it without an org condition is not.
    unconditioned = violations(access.resource_policy_org_scoped, grant_to(MASTER_ACCOUNT_ID, None), config=master)
    assert unconditioned and all("without an aws:PrincipalOrgPaths" in m for m in unconditioned)
    # Lambda permissions follow the same rule.
    permission = {"action": "lambda:InvokeFunction", "function": "f", "principalOrgId": "o-a1b2c3d4e5"}
    to_master = resource("aws:lambda/permission:Permission", {**permission, "principal": MASTER_ACCOUNT_ID}, stack=f"silo-{SILO}")
    to_other = resource("aws:lambda/permission:Permission", {**permission, "principal": OTHER}, stack=f"silo-{SILO}")
    assert violations(access.resource_policy_org_scoped, to_master, config=master) == []
    assert any(OTHER in m for m in violations(access.resource_policy_org_scoped, to_other, config=master))


def test_master_account_id_is_the_home_of_a_stack_that_is_not_a_silo():
    grant = allow("Other", "s3:GetObject", "arn:aws:s3:::b1/*", {"AWS": f"arn:aws:iam::{OTHER}:root"})
    policy = resource("aws:s3/bucketPolicy:BucketPolicy", {"policy": doc(grant)})
    assert any("outside this account" in m for m in violations(access.resource_policy_org_scoped, policy, config={"masterAccountId": MASTER_ACCOUNT_ID}))
    assert violations(access.resource_policy_org_scoped, policy) == []


def test_lambda_permission_to_everyone_needs_principal_org_id():
    open_ = resource("aws:lambda/permission:Permission", {"principal": "*", "action": "lambda:InvokeFunction"})
    org = resource("aws:lambda/permission:Permission", {"principal": "*", "principalOrgId": "o-a1b2c3d4e5"})
    assert violations(access.resource_policy_org_scoped, open_) != []
    assert violations(access.resource_policy_org_scoped, org) == []


# --- Lambda --------------------------------------------------------------------------------------

def test_lambda_runtime_must_be_supported():
    ok = resource("aws:lambda/function:Function", {"runtime": "python3.12"})
    old = resource("aws:lambda/function:Function", {"runtime": "python3.8"})
    image = resource("aws:lambda/function:Function", {"packageType": "Image"})
    assert violations(services.lambda_function_baseline, ok, image) == []
    assert "python3.8" in violations(services.lambda_function_baseline, old)[0]
    assert violations(services.lambda_function_baseline, old, config={"allowedRuntimes": ["python3.8"]}) == []


def test_reserved_and_provisioned_concurrency_must_be_bounded():
    unlimited = resource("aws:lambda/function:Function", {"runtime": "python3.12", "reservedConcurrentExecutions": -1})
    bounded = resource("aws:lambda/function:Function", {"runtime": "python3.12", "reservedConcurrentExecutions": 5})
    provisioned = resource("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig", {"provisionedConcurrentExecutions": 50})
    small = resource("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig", {"provisionedConcurrentExecutions": 2})
    assert "unlimited" in violations(services.lambda_function_baseline, unlimited)[0]
    assert violations(services.lambda_function_baseline, bounded, small) == []
    assert "billed while idle" in violations(services.lambda_function_baseline, provisioned)[0]


def test_log_groups_need_retention():
    assert violations(logs.log_group_retention, resource("aws:cloudwatch/logGroup:LogGroup", {"name": "/x"})) != []
    assert violations(logs.log_group_retention, resource("aws:cloudwatch/logGroup:LogGroup", {"retentionInDays": 30})) == []


def test_each_lambda_function_needs_its_own_log_group_with_retention():
    function = resource("aws:lambda/function:Function", {"name": "vend", "runtime": "python3.12"}, name="fn")
    by_name = resource("aws:cloudwatch/logGroup:LogGroup", {"name": "/aws/lambda/vend", "retentionInDays": 30}, name="lg")
    forever = resource("aws:cloudwatch/logGroup:LogGroup", {"name": "/aws/lambda/vend"}, name="lg")
    explicit_fn = resource("aws:lambda/function:Function", {"runtime": "python3.12", "loggingConfig": {"logGroup": "/custom", "logFormat": "JSON"}}, name="fn2")
    explicit = resource("aws:cloudwatch/logGroup:LogGroup", {"name": "/custom", "retentionInDays": 7}, name="lg2")
    assert violations(logs.lambda_log_group, function, by_name) == []
    assert violations(logs.lambda_log_group, explicit_fn, explicit) == []
    assert "fn" in violations(logs.lambda_log_group, function, forever)[0]
    assert violations(logs.lambda_log_group, function) != []


# --- API Gateway, Transfer, SNS, Athena ------------------------------------------------------------

@pytest.mark.parametrize("type_", ["aws:apigateway/stage:Stage", "aws:apigatewayv2/stage:Stage"])
def test_api_stages_need_access_logs(type_):
    logged = resource(type_, {"accessLogSettings": {"destinationArn": "arn:aws:logs:eu-west-1:1:log-group:/api", "format": "$context.requestId"}})
    assert violations(logs.apigateway_access_logging, logged) == []
    assert violations(logs.apigateway_access_logging, resource(type_, {"stageName": "v1"})) != []


def test_transfer_servers_need_a_current_security_policy():
    current = resource("aws:transfer/server:Server", {"securityPolicyName": "TransferSecurityPolicy-2024-01"})
    old = resource("aws:transfer/server:Server", {"securityPolicyName": "TransferSecurityPolicy-2020-06"})
    default = resource("aws:transfer/server:Server", {"protocols": ["SFTP"]})
    assert violations(services.transfer_security_policy, current) == []
    assert "2020-06" in violations(services.transfer_security_policy, old)[0]
    assert "provider default" in violations(services.transfer_security_policy, default)[0]


def test_topics_and_workgroups_are_encrypted(master):
    assert violations(services.encrypted_services, resource("aws:sns/topic:Topic", {"name": "t"})) != []
    workgroup = master.one("aws:athena/workgroup:Workgroup")
    loose = copy.deepcopy(workgroup)
    loose.inputs["configuration"]["enforceWorkgroupConfiguration"] = False
    loose.inputs["configuration"]["resultConfiguration"].pop("encryptionConfiguration")
    assert violations(services.encrypted_services, workgroup) == []
    assert len(violations(services.encrypted_services, loose)) == 2


def test_the_pack_entry_point_starts_an_analyzer_and_prints_its_port():
    """`policy/__main__.py` builds the PolicyPack (valid name, valid policies) and serves: the CLI reads the port."""
    import subprocess
    import sys
    from pathlib import Path

    pack = Path(__file__).resolve().parent.parent / "policy"
    process = subprocess.Popen([sys.executable, "__main__.py"], cwd=pack, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit() and 0 < int(port) < 65536, (port, process.stderr.read() if process.poll() is not None else "")
    finally:
        process.kill()
        process.wait(timeout=10)


# --- issue 12: log groups and service trust ------------------------------------------------------

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def test_log_groups_need_a_kms_key():
    encrypted = resource(LOG_GROUP, {"name": "/x", "retentionInDays": 30, "kmsKeyId": "arn:aws:kms:eu-west-1:1:key/k"})
    plain = resource(LOG_GROUP, {"name": "/aws/codebuild/build", "retentionInDays": 30})
    assert violations(logs.log_group_encryption, encrypted) == []
    found = violations(logs.log_group_encryption, plain)
    assert len(found) == 1 and "/aws/codebuild/build" in found[0] and "kmsKeyId" in found[0]


@pytest.mark.parametrize(
    "action, flagged",
    [
        ("logs:CreateLogGroup", True), (["logs:CreateLogStream", "logs:CreateLogGroup"], True), ("logs:Create*", True),
        ("logs:*", True), ("*", True), ("LOGS:createloggroup", True),
        (["logs:CreateLogStream", "logs:PutLogEvents"], False), ("logs:CreateLogStream", False),
    ],
)
def test_no_policy_may_let_a_service_create_its_own_log_group(action, flagged):
    role_policy = resource("aws:iam/rolePolicy:RolePolicy", {"policy": doc(allow("Logs", action, "arn:aws:logs:eu-west-1:1:log-group:/x:*"))})
    assert bool(violations(logs.no_create_log_group, role_policy)) is flagged
    denied = resource("aws:iam/rolePolicy:RolePolicy", {"policy": doc({**allow("Logs", action), "Effect": "Deny"})})
    assert violations(logs.no_create_log_group, denied) == []


def service_log_group_violations(*resources) -> list[str]:
    return violations(logs.service_log_groups, *resources)


def test_api_gateway_execution_logs_need_their_group_in_the_stack():
    settings = resource("aws:apigateway/methodSettings:MethodSettings",
                        {"restApi": "a1b2c3", "stageName": "v1", "methodPath": "*/*", "settings": {"loggingLevel": "ERROR"}}, name="ms")
    group = resource(LOG_GROUP, {"name": "API-Gateway-Execution-Logs_a1b2c3/v1", "retentionInDays": 90}, name="g")
    other_stage = resource(LOG_GROUP, {"name": "API-Gateway-Execution-Logs_a1b2c3/v2", "retentionInDays": 90}, name="g2")
    off = resource("aws:apigateway/methodSettings:MethodSettings",
                   {"restApi": "a1b2c3", "stageName": "v1", "settings": {"loggingLevel": "OFF"}}, name="off")
    assert service_log_group_violations(settings, group) == []
    assert service_log_group_violations(off) == []
    found = service_log_group_violations(settings, other_stage)
    assert len(found) == 1 and "API-Gateway-Execution-Logs_a1b2c3/v1" in found[0]


def test_transfer_servers_log_into_a_stack_group_not_through_a_logging_role():
    structured = resource("aws:transfer/server:Server", {"structuredLogDestinations": ["arn:aws:logs:eu-west-1:1:log-group:/aws/transfer/x:*"]})
    legacy = resource("aws:transfer/server:Server", {"loggingRole": "arn:aws:iam::1:role/transfer-logging"})
    assert service_log_group_violations(structured) == []
    assert "structuredLogDestinations" in service_log_group_violations(legacy)[0]


def test_redshift_serverless_exports_need_their_groups():
    namespace = resource("aws:redshiftserverless/namespace:Namespace",
                         {"namespaceName": "dl-sales", "logExports": ["userlog", "connectionlog"]}, name="ns")
    userlog = resource(LOG_GROUP, {"name": "/aws/redshift/dl-sales/userlog"}, name="u")
    connectionlog = resource(LOG_GROUP, {"name": "/aws/redshift/dl-sales/connectionlog"}, name="c")
    assert service_log_group_violations(namespace, userlog, connectionlog) == []
    found = service_log_group_violations(namespace, userlog)
    assert len(found) == 1 and "/aws/redshift/dl-sales/connectionlog" in found[0] and "userlog" not in found[0]


def test_glue_jobs_and_crawlers_under_a_security_configuration_need_their_groups():
    crawler = resource("aws:glue/crawler:Crawler", {"role": "arn:aws:iam::1:role/raw", "securityConfiguration": "sec"}, name="cr")
    job = resource("aws:glue/job:Job", {"roleArn": "arn:aws:iam::1:role/job", "securityConfiguration": "sec",
                                        "defaultArguments": {"--enable-continuous-cloudwatch-log": "true"}}, name="job")
    plain_crawler = resource("aws:glue/crawler:Crawler", {"role": "arn:aws:iam::1:role/raw"}, name="plain")
    made = [resource(LOG_GROUP, {"name": n}, name=f"g{i}") for i, n in enumerate([
        "/aws-glue/crawlers-role/raw-sec", "/aws-glue/jobs/sec-role/job/output", "/aws-glue/jobs/sec-role/job/error",
        "/aws-glue/jobs/logs-v2-sec"])]
    assert service_log_group_violations(crawler, job, plain_crawler, *made) == []
    found = service_log_group_violations(crawler, job, *made[:1])
    assert len(found) == 1 and "/aws-glue/jobs/sec-role/job/output" in found[0] and "logs-v2-sec" in found[0]
    assert "/aws-glue/crawlers-role/raw-sec" in service_log_group_violations(crawler)[0]


def test_removing_a_pre_created_service_log_group_from_the_silo_is_caught(silo):
    kept = [r for r in silo.resources if not (r.type == LOG_GROUP and r.name in ("silo-sales-etl-raw-crawler-logs", "silo-sales-warehouse-userlog"))]
    found = check(Recording(kept, silo.outputs), [logs.service_log_groups])
    assert sorted(v.urn.rsplit("::", 1)[1] for v in found) == ["silo-sales-etl-raw-crawler", "silo-sales-warehouse-namespace"]


@pytest.mark.parametrize(
    "service, condition, flagged",
    [
        ("codebuild.amazonaws.com", None, True),
        ("codepipeline.amazonaws.com", None, True),
        (["events.amazonaws.com", "lambda.amazonaws.com"], None, True),
        ("codebuild.amazonaws.com", {"StringEquals": {"aws:SourceAccount": "111111111111"}}, False),
        ("codepipeline.amazonaws.com", {"ArnLike": {"AWS:SourceArn": "arn:aws:codepipeline:eu-west-1:1:*"}}, False),
        ("firehose.amazonaws.com", {"StringEquals": {"sts:ExternalId": "111111111111"}}, False),
        ("codebuild.amazonaws.com", {"Bool": {"aws:SecureTransport": "true"}}, True),
        ("lambda.amazonaws.com", None, False),
        ("glue.amazonaws.com", None, False),
    ],
)
def test_roles_trusted_by_services_that_send_source_keys_must_use_them(service, condition, flagged):
    trust = {"Sid": "Trust", "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if condition:
        trust["Condition"] = condition
    role = resource("aws:iam/role:Role", {"assumeRolePolicy": doc(trust)})
    found = violations(access.service_trust_confused_deputy, role)
    assert bool(found) is flagged, found
    if flagged:
        assert "aws:SourceAccount" in found[0]
