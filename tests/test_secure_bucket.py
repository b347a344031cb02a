"""Every bucket either program creates carries the whole SecureBucket posture."""

from __future__ import annotations

import pytest

from offline.harness import RecordedResource, Recording

BUCKET = "aws:s3/bucket:Bucket"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"


@pytest.fixture(scope="module", params=["master", "silo"])
def program(request, evaluations) -> Recording:
    return evaluations.master() if request.param == "master" else evaluations.silo()


def buckets_with(recording: Recording, part_type: str) -> list[tuple[RecordedResource, RecordedResource]]:
    """Every bucket with its one resource of `part_type` (the lookup fails when a bucket lacks it)."""
    return [(bucket, recording.bucket_part(bucket, part_type)) for bucket in recording.of_type(BUCKET)]


def kms_key_arns(recording: Recording) -> set[str]:
    return {key.outputs["arn"] for key in recording.of_type("aws:kms/key:Key")}


def test_program_creates_buckets(program):
    assert len(program.of_type(BUCKET)) >= 2


def test_every_bucket_defaults_to_sse_kms_with_the_programs_key_and_bucket_keys(program):
    keys = kms_key_arns(program)
    for bucket, encryption in buckets_with(program, ENCRYPTION):
        (rule,) = encryption.inputs["rules"]
        default = rule["applyServerSideEncryptionByDefault"]
        assert default["sseAlgorithm"] == "aws:kms", bucket.urn
        assert default["kmsMasterKeyId"] in keys, bucket.urn
        assert rule["bucketKeyEnabled"] is True, bucket.urn


def test_every_bucket_is_versioned(program):
    for bucket, versioning in buckets_with(program, VERSIONING):
        assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled", bucket.urn


def test_every_bucket_blocks_all_four_kinds_of_public_access(program):
    for bucket, block in buckets_with(program, PUBLIC_ACCESS_BLOCK):
        flags = {k: block.inputs.get(k) for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}
        assert flags == dict.fromkeys(flags, True), bucket.urn


def test_every_bucket_enforces_bucket_owner_and_disables_acls(program):
    for bucket, ownership in buckets_with(program, OWNERSHIP):
        assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced", bucket.urn


def test_every_bucket_policy_denies_requests_without_tls(program):
    for bucket, policy in buckets_with(program, POLICY):
        deny = policy.statement("DenyInsecureTransport")
        arn = bucket.outputs["arn"]
        assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
        assert deny["Action"] == ["s3:*"]
        assert deny["Resource"] == [arn, f"{arn}/*"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_every_bucket_policy_denies_uploads_asking_for_other_encryption_or_another_key(program):
    for bucket, policy in buckets_with(program, POLICY):
        key_arn = program.bucket_part(bucket, ENCRYPTION).inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
        objects = f"{bucket.outputs['arn']}/*"

        other_encryption = policy.statement("DenyEncryptionOtherThanKms")
        assert (other_encryption["Effect"], other_encryption["Action"], other_encryption["Resource"]) == (
            "Deny", ["s3:PutObject"], [objects],
        )
        assert other_encryption["Condition"] == {
            "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
            "Null": {"s3:x-amz-server-side-encryption": "false"},
        }
        other_key = policy.statement("DenyKmsKeyOtherThanBucketKey")
        assert (other_key["Effect"], other_key["Action"], other_key["Resource"]) == ("Deny", ["s3:PutObject"], [objects])
        assert other_key["Condition"] == {
            "ArnNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn},
            "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
        }


def test_every_bucket_and_its_protections_survive_stack_destruction(program):
    for bucket in program.of_type(BUCKET):
        assert bucket.retain_on_delete is True, bucket.urn
        assert bucket.inputs.get("forceDestroy") is False, bucket.urn
        for part in program.children(program.by_urn(bucket.parent)):
            assert part.retain_on_delete is True, part.urn


def test_every_kms_key_rotates_and_is_retained(program):
    for key in program.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True, key.urn
        assert key.inputs["deletionWindowInDays"] == 30, key.urn
        assert key.retain_on_delete is True, key.urn


def test_every_bucket_but_the_log_bucket_sends_access_logs_to_the_log_bucket(program):
    log_buckets = [b for b in program.of_type(BUCKET) if b.inputs["tags"]["datalake:purpose"] == "access-logs"]
    assert len(log_buckets) == 1
    (log_bucket,) = log_buckets
    for bucket in program.of_type(BUCKET):
        loggings = [r for r in program.of_type("aws:s3/bucketLogging:BucketLogging") if r.inputs["bucket"] == bucket.outputs["id"]]
        if bucket is log_bucket:
            assert loggings == [], "the log bucket must not log into itself"
            continue
        (logging,) = loggings
        assert logging.inputs["targetBucket"] == log_bucket.outputs["bucket"], bucket.urn
        assert logging.inputs["targetPrefix"] == f"{bucket.outputs['bucket']}/"


def test_log_bucket_accepts_log_delivery_only_from_its_own_account(program):
    (log_bucket,) = [b for b in program.of_type(BUCKET) if b.inputs["tags"]["datalake:purpose"] == "access-logs"]
    statement = program.bucket_part(log_bucket, POLICY).statement("AllowS3ServerAccessLogDelivery")
    assert statement["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert statement["Action"] == ["s3:PutObject"]
    account = log_bucket.outputs["bucket"].rsplit("-", 1)[-1]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}
    # ...and the key lets the log delivery service encrypt, for the same account only.
    (key,) = program.of_type("aws:kms/key:Key")
    grant = key.statement("AllowS3ServerAccessLogEncryption")
    assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}


def test_every_bucket_aborts_incomplete_uploads_and_expires_old_versions(program):
    for bucket, lifecycle in buckets_with(program, LIFECYCLE):
        rules = {rule["id"]: rule for rule in lifecycle.inputs["rules"]}
        assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
        assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] >= 1
        assert all(rule["status"] == "Enabled" for rule in rules.values())
        # Lifecycle rules on a versioned bucket must wait for versioning.
        versioning = program.bucket_part(bucket, VERSIONING)
        assert versioning.urn in lifecycle.dependencies, bucket.urn


def test_bucket_policy_waits_for_the_public_access_block(program):
    for bucket, policy in buckets_with(program, POLICY):
        block = program.bucket_part(bucket, PUBLIC_ACCESS_BLOCK)
        assert block.urn in policy.dependencies
