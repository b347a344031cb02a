"""`ArtifactStore`: the master's versioned bundle bucket that only silo deploy roles may read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from ..shared.iam import AccountContext, Statement, deploy_role_in_ou, kms_via_service, statement
from ..shared.secure_bucket import BucketLifecycle, SecureBucket, SecureBucketArgs, bucket_arn


def artifact_read_statement(arn: pulumi.Input[str], partition: pulumi.Input[str], role_name: str, ou_path: str) -> Statement:
    """Bucket policy grant: deploy roles of accounts under the silo OU may read bundles.

    No account is listed: an account that joins the OU can read at once, one that leaves cannot.
    Reading a bundle needs `GetObject`/`GetObjectVersion` only; the article's `s3:GetObject*` would
    also hand out ACLs, tags, retention and legal-hold settings of every object.
    """
    return statement(
        "AllowSiloDeployRolesRead",
        ["s3:GetObject", "s3:GetObjectVersion", "s3:GetBucketLocation", "s3:ListBucket"],
        [arn, pulumi.Output.concat(arn, "/*")],
        principal={"AWS": "*"},
        conditions=deploy_role_in_ou(partition, role_name, ou_path),
    )


def artifact_decrypt_statement(
    account: AccountContext, artifact_bucket_name: pulumi.Input[str], role_name: str, ou_path: str
) -> Statement:
    """Key policy grant: the same principals may decrypt, only through S3 and only artifact objects.

    Without it a cross-account `GetObject` of an SSE-KMS object fails with AccessDenied even when the
    bucket policy allows it.
    """
    arn = bucket_arn(account.partition, artifact_bucket_name)
    return statement(
        "AllowSiloDeployRolesDecryptArtifacts",
        "kms:Decrypt",
        "*",
        principal={"AWS": "*"},
        conditions={
            **deploy_role_in_ou(account.partition, role_name, ou_path),
            "StringEquals": {"kms:ViaService": kms_via_service("s3", account.region)},
            # With S3 bucket keys the encryption context is the bucket ARN; without, the object ARN.
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [arn, pulumi.Output.concat(arn, "/*")]},
        },
    )


@dataclass(frozen=True)
class ArtifactStoreArgs:
    """Arguments of `ArtifactStore`."""

    account: AccountContext
    """The master account."""
    bucket_name: pulumi.Input[str]
    """Physical name of the artifact bucket."""
    kms_key_arn: pulumi.Input[str]
    """Key of the bucket; its policy must hold `artifact_decrypt_statement` for cross-account reads."""
    silo_ou_path: str
    """OU path whose deploy roles may read, e.g. `o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/`."""
    deploy_role_name: str
    """Name of the deploy role in silo accounts."""
    access_log_bucket: pulumi.Input[str]
    """Bucket receiving the artifact bucket's server access logs."""
    noncurrent_version_expiration_days: int = 365
    """Days an older bundle version is kept (default 365)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of the bucket (default none)."""


class ArtifactStore(pulumi.ComponentResource):
    """The master's artifact bucket, readable by silo deploy roles by OU path, never by account list."""

    bucket: SecureBucket
    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: ArtifactStoreArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:artifacts:ArtifactStore", name, None, opts)
        partition = args.account.partition
        self.bucket = SecureBucket(
            f"{name}-artifacts",
            SecureBucketArgs(
                bucket_name=args.bucket_name,
                purpose="artifacts",
                account=args.account,
                kms_key_arn=args.kms_key_arn,
                access_log_bucket=args.access_log_bucket,
                lifecycle=BucketLifecycle(noncurrent_version_expiration_days=args.noncurrent_version_expiration_days),
                extra_policy_statements=lambda arn: [
                    artifact_read_statement(arn, partition, args.deploy_role_name, args.silo_ou_path)
                ],
                tags=args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = self.bucket.name
        self.arn = self.bucket.arn
        self.register_outputs({"name": self.name, "arn": self.arn})
