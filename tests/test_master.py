"""The master stack: artifact store shared with the silo OU by OU path, its key, its outputs."""

from __future__ import annotations

from offline.harness import MASTER_ACCOUNT_ID, Recording
from offline.stacks import master_config, master_stack_outputs, run_master

SILO_OU = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/"
ARTIFACT_BUCKET = f"acme-dl-master-artifacts-{MASTER_ACCOUNT_ID}"
DEPLOY_ROLE_CONDITIONS = {
    "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/OrganizationAccountAccessRole"},
    "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [f"{SILO_OU}*"]},
}


def artifact_bucket(master: Recording):
    return next(b for b in master.of_type("aws:s3/bucket:Bucket") if b.inputs["bucket"] == ARTIFACT_BUCKET)


def test_artifact_bucket_is_named_after_prefix_owner_purpose_and_account(master):
    names = sorted(b.inputs["bucket"] for b in master.of_type("aws:s3/bucket:Bucket"))
    assert names == [
        f"acme-dl-master-access-logs-{MASTER_ACCOUNT_ID}",
        ARTIFACT_BUCKET,
        f"acme-dl-master-athena-results-{MASTER_ACCOUNT_ID}",
        f"acme-dl-master-pipeline-{MASTER_ACCOUNT_ID}",
    ]


def test_artifact_bucket_grants_read_only_to_deploy_roles_under_the_silo_ou(master):
    policy = master.bucket_part(artifact_bucket(master), "aws:s3/bucketPolicy:BucketPolicy")
    grant = policy.statement("AllowSiloDeployRolesRead")
    arn = f"arn:aws:s3:::{ARTIFACT_BUCKET}"
    assert grant["Effect"] == "Allow"
    assert grant["Principal"] == {"AWS": "*"}
    assert grant["Action"] == ["s3:GetObject", "s3:GetObjectVersion", "s3:GetBucketLocation", "s3:ListBucket"]
    assert grant["Resource"] == [arn, f"{arn}/*"]
    assert grant["Condition"] == DEPLOY_ROLE_CONDITIONS
    allows = [s for s in policy.policy()["Statement"] if s["Effect"] == "Allow"]
    assert allows == [grant], "nothing else may be allowed on the artifact bucket"


def test_artifact_key_lets_the_same_principals_decrypt_only_through_s3_and_only_artifacts(master):
    (key,) = master.of_type("aws:kms/key:Key")
    grant = key.statement("AllowSiloDeployRolesDecryptArtifacts")
    arn = f"arn:aws:s3:::{ARTIFACT_BUCKET}"
    assert grant["Principal"] == {"AWS": "*"}
    assert grant["Action"] == ["kms:Decrypt"]
    assert grant["Condition"] == {
        **DEPLOY_ROLE_CONDITIONS,
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [arn, f"{arn}/*"]},
    }


def test_key_policy_keeps_the_account_as_administrator(master):
    (key,) = master.of_type("aws:kms/key:Key")
    admin = key.statement("EnableAccountIamPolicies")
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{MASTER_ACCOUNT_ID}:root"}


def test_no_key_statement_grants_everyone_without_an_org_path_condition(master):
    (key,) = master.of_type("aws:kms/key:Key")
    for statement in key.policy()["Statement"]:
        if statement.get("Principal") == {"AWS": "*"}:
            assert "aws:PrincipalOrgPaths" in str(statement.get("Condition")), statement["Sid"]


def test_a_different_deploy_role_and_ou_flow_into_both_policies():
    config = master_config()
    config["datalake:deployRoleName"] = "DatalakeDeployer"
    config["datalake:siloOuPath"] = "o-a1b2c3d4e5/r-ab12/ou-ab12-33333333/ou-ab12-44444444/"
    master = run_master(config)
    expected = {
        "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/DatalakeDeployer"},
        "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["o-a1b2c3d4e5/r-ab12/ou-ab12-33333333/ou-ab12-44444444/*"]},
    }
    policy = master.bucket_part(artifact_bucket(master), "aws:s3/bucketPolicy:BucketPolicy")
    assert policy.statement("AllowSiloDeployRolesRead")["Condition"] == expected
    (key,) = master.of_type("aws:kms/key:Key")
    condition = key.statement("AllowSiloDeployRolesDecryptArtifacts")["Condition"]
    assert {k: condition[k] for k in expected} == expected


def test_artifact_versions_are_kept_as_configured(master):
    lifecycle = master.bucket_part(artifact_bucket(master), "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    rules = {rule["id"]: rule for rule in lifecycle.inputs["rules"]}
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {"noncurrentDays": 365}
    assert "expire-current-objects" not in rules, "bundles must not expire while they are current"


def test_alerts_topic_is_encrypted_and_only_this_accounts_services_publish(master):
    topic = master.one("aws:sns/topic:Topic")
    (key,) = master.of_type("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    policy = master.one("aws:sns/topicPolicy:TopicPolicy")
    publish = policy.statement("AllowServicesOfThisAccountPublish")
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": MASTER_ACCOUNT_ID}}
    assert policy.statement("DenyInsecureTransport")["Effect"] == "Deny"
    assert set(key.statement("AllowServicesPublishEncryptedMessages")["Principal"]["Service"]) == set(
        publish["Principal"]["Service"]
    )


def test_master_exports_what_silo_stacks_read(master):
    from components.silo.account import MASTER_OUTPUTS

    assert set(MASTER_OUTPUTS) <= set(master.outputs)
    assert master.outputs["artifactBucketName"] == ARTIFACT_BUCKET
    assert master.outputs["artifactBucketArn"] == f"arn:aws:s3:::{ARTIFACT_BUCKET}"
    (key,) = master.of_type("aws:kms/key:Key")
    assert master.outputs["artifactKeyArn"] == key.outputs["arn"]
    assert master.outputs["organizationId"] == "o-a1b2c3d4e5"
    assert master.outputs["siloOuPath"] == SILO_OU
    assert master.outputs["analyticsOuPath"] == "o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/"
    # The account the caller identity reports: silos grant it read for the org-wide Athena catalogs.
    assert master.outputs["accountId"] == MASTER_ACCOUNT_ID == master_stack_outputs()["accountId"]


def test_master_resources_use_the_master_providers_and_never_assume_a_role(master):
    providers = {p.name: p for p in master.of_type("pulumi:providers:aws")}
    assert providers["master"].inputs["region"] == "eu-west-1"
    # Organizations events reach EventBridge only in us-east-1; one provider forwards them from there.
    assert set(providers) <= {"master", "master-us-east-1"}
    for provider in providers.values():
        assert "assumeRoles" not in provider.inputs
    for resource in master.resources:
        if resource.custom and not resource.type.startswith("pulumi:"):
            assert resource.provider.startswith(providers["master"].urn) or "us-east-1" in resource.name, resource.urn
