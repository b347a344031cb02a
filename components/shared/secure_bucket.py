"""`SecureBucket`: an S3 bucket with the project's whole security posture, on by default."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from .adoption import NO_ADOPTION, Adoption
from .iam import AccountContext, Statement, concat, policy_json, statement


@dataclass(frozen=True)
class StorageTransition:
    """Move current object versions to another storage class after some days."""

    days: int
    storage_class: str = "STANDARD_IA"


@dataclass(frozen=True)
class BucketLifecycle:
    """Lifecycle rules of a bucket. Every field's default is the secure, cheap choice."""

    noncurrent_version_expiration_days: Optional[int] = 90
    """Expire superseded versions after this many days (default 90; None keeps them forever)."""
    abort_incomplete_multipart_days: int = 7
    """Abort unfinished multipart uploads after this many days (default 7): their parts cost money."""
    expiration_days: Optional[int] = None
    """Expire current objects after this many days (default None: never)."""
    transitions: Sequence[StorageTransition] = ()
    """Storage-class transitions of current versions (default none)."""


def bucket_arn(partition: pulumi.Input[str], bucket_name: pulumi.Input[str]) -> pulumi.Output[str]:
    """`arn:<partition>:s3:::<bucket>`: bucket ARNs have no region or account."""
    return pulumi.Output.concat("arn:", partition, ":s3:::", bucket_name)


def baseline_bucket_statements(arn: pulumi.Input[str], kms_key_arn: pulumi.Input[str]) -> list[Statement]:
    """The statements every bucket's policy starts with.

    - No request over plain HTTP.
    - No `PutObject` that asks for another encryption than SSE-KMS, or for another key than the
      bucket's. Uploads without encryption headers are allowed: the bucket's default encryption
      then applies the bucket's key, so every object ends up under that key. (Denying header-less
      uploads would break S3 server access log delivery and services that rely on the default.)
    """
    objects = concat(arn, "/*")
    return [
        statement(
            "DenyInsecureTransport",
            "s3:*",
            [arn, objects],
            effect="Deny",
            principal={"AWS": "*"},
            conditions={"Bool": {"aws:SecureTransport": "false"}},
        ),
        statement(
            "DenyEncryptionOtherThanKms",
            "s3:PutObject",
            objects,
            effect="Deny",
            principal={"AWS": "*"},
            conditions={
                "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                "Null": {"s3:x-amz-server-side-encryption": "false"},
            },
        ),
        statement(
            "DenyKmsKeyOtherThanBucketKey",
            "s3:PutObject",
            objects,
            effect="Deny",
            principal={"AWS": "*"},
            conditions={
                # The key-id condition key is typed ARN in the service authorization reference.
                "ArnNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": kms_key_arn},
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
            },
        ),
    ]


def access_log_delivery_statement(arn: pulumi.Input[str], account: AccountContext) -> Statement:
    """Lets S3 server access logging of this account's buckets write into a log bucket."""
    return statement(
        "AllowS3ServerAccessLogDelivery",
        "s3:PutObject",
        concat(arn, "/*"),
        principal={"Service": "logging.s3.amazonaws.com"},
        conditions={"StringEquals": {"aws:SourceAccount": account.account_id}},
    )


@dataclass(frozen=True)
class SecureBucketArgs:
    """Arguments of `SecureBucket`."""

    bucket_name: pulumi.Input[str]
    """Physical bucket name (globally unique)."""
    purpose: str
    """What the bucket holds (`raw`, `artifacts`, ...); tagged as `datalake:purpose`."""
    account: AccountContext
    """Account and partition the bucket lives in."""
    kms_key_arn: pulumi.Input[str]
    """Key for SSE-KMS default encryption; uploads naming another key are denied."""
    access_log_bucket: Optional[pulumi.Input[str]] = None
    """Name of the bucket receiving server access logs (default None: no logging, for the log bucket itself)."""
    receives_access_logs: bool = False
    """This is the log bucket: allow S3 log delivery from this account (default False)."""
    lifecycle: BucketLifecycle = field(default_factory=BucketLifecycle)
    """Lifecycle rules (default: expire noncurrent versions after 90 days, abort uploads after 7)."""
    extra_policy_statements: Optional[Callable[[pulumi.Output[str]], Sequence[Statement]]] = None
    """Builds further bucket policy statements from the bucket ARN (default None; one policy per bucket)."""
    retain_on_delete: bool = True
    """Keep the bucket and its protections when the stack is destroyed (default True)."""
    adoption: Adoption = NO_ADOPTION
    """Retained resources of a returning silo to import instead of create (default none)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of the bucket (default none; `datalake:purpose` is always added)."""


class SecureBucket(pulumi.ComponentResource):
    """An S3 bucket that is versioned, SSE-KMS encrypted with bucket keys, private, TLS-only and owned.

    The bucket and every resource that protects it are `retain_on_delete` by default: destroying
    a stack leaves the data and its protections in place.
    """

    bucket: aws.s3.Bucket
    policy: aws.s3.BucketPolicy
    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: SecureBucketArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_on_delete)

        def adopt(type_token: str, resource_name: str, opts: pulumi.ResourceOptions = child) -> pulumi.ResourceOptions:
            return args.adoption.options(type_token, resource_name, opts)

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            force_destroy=False,
            tags={**args.tags, "datalake:purpose": args.purpose},
            opts=adopt("aws:s3/bucket:Bucket", f"{name}-bucket"),
        )
        bucket_id = self.bucket.id

        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=adopt("aws:s3/bucketVersioning:BucketVersioning", f"{name}-versioning"),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms",
                        kms_master_key_id=args.kms_key_arn,
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=adopt("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", f"{name}-encryption"),
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=adopt("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{name}-public-access"),
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=adopt("aws:s3/bucketOwnershipControls:BucketOwnershipControls", f"{name}-ownership"),
        )
        rules = self._lifecycle_rules(args.lifecycle)
        if rules:
            # Lifecycle rules on a versioned bucket must follow versioning (AWS rejects them otherwise).
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-lifecycle",
                bucket=bucket_id,
                rules=rules,
                opts=adopt(
                    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", f"{name}-lifecycle",
                    pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[versioning])),
                ),
            )
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=bucket_id,
                target_bucket=args.access_log_bucket,
                target_prefix=pulumi.Output.concat(self.bucket.bucket, "/"),
                opts=adopt("aws:s3/bucketLogging:BucketLogging", f"{name}-access-logging"),
            )

        arn = self.bucket.arn
        statements = baseline_bucket_statements(arn, args.kms_key_arn)
        if args.receives_access_logs:
            statements.append(access_log_delivery_statement(arn, args.account))
        if args.extra_policy_statements is not None:
            statements.extend(args.extra_policy_statements(arn))
        # The policy waits for the public access block so AWS never judges it against a half-set bucket.
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket_id,
            policy=policy_json(statements),
            opts=adopt(
                "aws:s3/bucketPolicy:BucketPolicy", f"{name}-policy",
                pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[public_access])),
            ),
        )

        self.name = self.bucket.bucket
        self.arn = arn
        self.register_outputs({"name": self.name, "arn": self.arn})

    @staticmethod
    def _lifecycle_rules(lifecycle: BucketLifecycle) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
        def rule(rule_id: str, **action: Any) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
            """An enabled rule over every object of the bucket."""
            return aws.s3.BucketLifecycleConfigurationRuleArgs(
                id=rule_id, status="Enabled", filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""), **action
            )

        rules = [
            rule(
                "abort-incomplete-multipart-uploads",
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=lifecycle.abort_incomplete_multipart_days
                ),
            )
        ]
        if lifecycle.noncurrent_version_expiration_days is not None:
            rules.append(
                rule(
                    "expire-noncurrent-versions",
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=lifecycle.noncurrent_version_expiration_days
                    ),
                )
            )
        if lifecycle.expiration_days is not None:
            rules.append(
                rule(
                    "expire-current-objects",
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=lifecycle.expiration_days),
                )
            )
        if lifecycle.transitions:
            rules.append(
                rule(
                    "transition-storage-class",
                    transitions=[
                        aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(days=t.days, storage_class=t.storage_class)
                        for t in lifecycle.transitions
                    ],
                )
            )
        return rules
