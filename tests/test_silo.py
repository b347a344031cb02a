"""A silo stack: everything lands in the silo account through the assume-role provider."""

from __future__ import annotations

import re

from offline.harness import SILO_ACCOUNT_ID, Recording
from offline.stacks import master_stack_outputs, run_silo, silo_config

PURPOSES = {"raw", "processed", "dropzone", "athena-results", "access-logs", "console"}


def buckets_by_purpose(silo: Recording) -> dict:
    return {b.inputs["tags"]["datalake:purpose"]: b for b in silo.of_type("aws:s3/bucket:Bucket")}


def rules_of(silo: Recording, bucket) -> dict:
    lifecycle = silo.bucket_part(bucket, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    return {rule["id"]: rule for rule in lifecycle.inputs["rules"]}


def test_provider_assumes_the_deploy_role_in_the_silo_account_and_nowhere_else(silo):
    (provider,) = silo.of_type("pulumi:providers:aws")
    (assume,) = provider.inputs["assumeRoles"]
    assert assume["roleArn"] == f"arn:aws:iam::{SILO_ACCOUNT_ID}:role/OrganizationAccountAccessRole"
    assert assume["sessionName"] == f"pulumi-silo-{SILO_ACCOUNT_ID}"
    assert provider.inputs["allowedAccountIds"] == [SILO_ACCOUNT_ID]
    assert provider.inputs["region"] == "eu-west-1"


def test_every_silo_resource_is_created_through_the_assume_role_provider(silo):
    (provider,) = silo.of_type("pulumi:providers:aws")
    aws_resources = [r for r in silo.resources if r.type.startswith("aws:")]
    assert aws_resources
    for resource in aws_resources:
        assert resource.provider.startswith(f"{provider.urn}::"), f"{resource.urn} uses {resource.provider!r}"


def test_configured_deploy_role_name_is_assumed():
    silo = run_silo(silo_config(**{"datalake:deployRoleName": "DatalakeDeploy"}))
    (provider,) = silo.of_type("pulumi:providers:aws")
    assert provider.inputs["assumeRoles"][0]["roleArn"] == f"arn:aws:iam::{SILO_ACCOUNT_ID}:role/DatalakeDeploy"


def test_silo_reads_the_master_stack_outputs(silo):
    (reference,) = silo.of_type("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "organization/datalake/master"
    assert silo.outputs["masterArtifactBucket"] == "acme-dl-master-artifacts-111111111111"


def test_silo_has_exactly_its_six_buckets_named_prefix_silo_purpose_account(silo):
    buckets = buckets_by_purpose(silo)
    assert set(buckets) == PURPOSES
    for purpose, bucket in buckets.items():
        assert bucket.inputs["bucket"] == f"acme-dl-sales-{purpose}-{SILO_ACCOUNT_ID}"
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", bucket.inputs["bucket"])
        assert bucket.inputs["tags"]["datalake:silo"] == "sales"
        assert bucket.inputs["tags"]["cost-center"] == "data-platform"


def test_all_silo_buckets_use_the_one_silo_key(silo):
    (key,) = silo.of_type("aws:kms/key:Key")
    for bucket in buckets_by_purpose(silo).values():
        encryption = silo.bucket_part(bucket, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
        assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == key.outputs["arn"]
    alias = silo.one("aws:kms/alias:Alias")
    assert alias.inputs["name"] == "alias/acme-dl-sales"
    assert key.statement("EnableAccountIamPolicies")["Principal"] == {"AWS": f"arn:aws:iam::{SILO_ACCOUNT_ID}:root"}


def test_data_buckets_and_the_key_are_retained_when_the_stack_is_destroyed(silo):
    for purpose, bucket in buckets_by_purpose(silo).items():
        assert bucket.retain_on_delete is True, purpose
    (key,) = silo.of_type("aws:kms/key:Key")
    assert key.retain_on_delete is True


def test_dropzone_uploads_expire_after_the_configured_days():
    silo = run_silo(silo_config(**{"datalake:storage": {"dropzoneExpirationDays": 12}}))
    rules = rules_of(silo, buckets_by_purpose(silo)["dropzone"])
    assert rules["expire-current-objects"]["expiration"] == {"days": 12}


def test_raw_objects_move_to_infrequent_access_after_30_days(silo):
    buckets = buckets_by_purpose(silo)
    rules = rules_of(silo, buckets["raw"])
    assert rules["transition-storage-class"]["transitions"] == [{"days": 30, "storageClass": "STANDARD_IA"}]
    assert "expire-current-objects" not in rules, "raw data must never expire"
    for purpose in ("processed", "access-logs"):
        assert "transition-storage-class" not in rules_of(silo, buckets[purpose])
        assert "expire-current-objects" not in rules_of(silo, buckets[purpose])


def test_noncurrent_version_expiry_comes_from_config():
    silo = run_silo(silo_config(**{"datalake:storage": {"noncurrentVersionExpirationDays": 14}}))
    for bucket in buckets_by_purpose(silo).values():
        assert rules_of(silo, bucket)["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {"noncurrentDays": 14}


def test_silo_exports_its_bucket_names(silo):
    assert silo.outputs["rawBucketName"] == f"acme-dl-sales-raw-{SILO_ACCOUNT_ID}"
    assert silo.outputs["athenaResultsBucketName"] == f"acme-dl-sales-athena-results-{SILO_ACCOUNT_ID}"
    assert silo.outputs["accountId"] == SILO_ACCOUNT_ID


def test_no_silo_resource_names_another_account(silo):
    """Account ids in inputs are the silo's own or the master's (read from its stack outputs, for the
    org-wide Athena grants); never any other account."""
    master = master_stack_outputs()["accountId"]
    text = str([r.inputs for r in silo.resources if r.type.startswith("aws:")])
    foreign = set(re.findall(r"\b\d{12}\b", text)) - {SILO_ACCOUNT_ID, master}
    assert foreign == set(), f"silo resources name other accounts: {foreign}"


def test_deploy_role_arn_uses_the_partition_of_the_region():
    # The console cannot exist in aws-cn (config refuses it; tests/test_partitions.py).
    silo = run_silo(silo_config(**{"aws:region": "cn-north-1", "datalake:console": {"enabled": False}}))
    (provider,) = silo.of_type("pulumi:providers:aws")
    assert provider.inputs["assumeRoles"][0]["roleArn"] == f"arn:aws-cn:iam::{SILO_ACCOUNT_ID}:role/OrganizationAccountAccessRole"
