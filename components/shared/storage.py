"""`SiloStorage`: a silo's KMS key and its five buckets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi

from .adoption import NO_ADOPTION, Adoption
from .encryption import EncryptionKey, EncryptionKeyArgs
from .iam import AccountContext, Statement, statement
from .naming import bucket_name, bucket_output_key
from .secure_bucket import BucketLifecycle, SecureBucket, SecureBucketArgs, StorageTransition
from .config import StorageConfig
from .context import SiloContext

SILO_BUCKETS = ("raw", "processed", "dropzone", "athena-results", "access-logs")


def access_log_encryption_statement(account: AccountContext) -> Statement:
    """Key policy grant: S3 log delivery may encrypt logs of this account's buckets with the key."""
    return statement(
        "AllowS3ServerAccessLogEncryption",
        "kms:GenerateDataKey",
        "*",
        principal={"Service": "logging.s3.amazonaws.com"},
        conditions={"StringEquals": {"aws:SourceAccount": account.account_id}},
    )


@dataclass(frozen=True)
class SiloStorageArgs:
    """Arguments of `SiloStorage`."""

    context: SiloContext
    """The silo: account, names, key and tags (`SiloAccount` passes its own)."""
    config: StorageConfig = field(default_factory=StorageConfig)
    """The `datalake:storage` section: the buckets' lifecycle (default: its defaults)."""
    key_policy_statements: Sequence[Statement] = ()
    """Extra statements for the silo key's policy (e.g. analytics read grants). Default none."""
    bucket_policy_statements: Mapping[str, Callable[[pulumi.Output[str]], Sequence[Statement]]] = field(
        default_factory=dict
    )
    """Per bucket purpose, a builder of extra bucket policy statements from the bucket ARN. Default none."""
    adoption: Adoption = NO_ADOPTION
    """Retained key and buckets of a returning silo to import instead of create (default none)."""


class SiloStorage(pulumi.ComponentResource):
    """One KMS key and the buckets `raw`, `processed`, `dropzone`, `athena-results`, `access-logs`.

    Bucket names are `<prefix>-<silo>-<purpose>-<account-id>`. Every bucket is a `SecureBucket`
    retained on stack destruction, and so is the key that encrypts them.
    """

    key: EncryptionKey
    buckets: dict[str, SecureBucket]

    def __init__(self, name: str, args: SiloStorageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:storage:SiloStorage", name, None, opts)
        unknown = set(args.bucket_policy_statements) - set(SILO_BUCKETS)
        if unknown:
            raise ValueError(f"bucket_policy_statements names unknown buckets {sorted(unknown)}; known: {SILO_BUCKETS}")
        tags = {**args.context.tags, "datalake:silo": args.context.silo_name}
        child = pulumi.ResourceOptions(parent=self)

        self.key = EncryptionKey(
            f"{name}-key",
            EncryptionKeyArgs(
                account=args.context.account,
                alias=f"{args.context.name_prefix}-{args.context.silo_name}",
                description=f"Data lake silo {args.context.silo_name}: every object of its buckets",
                policy_statements=[access_log_encryption_statement(args.context.account), *args.key_policy_statements],
                tags=tags,
                adoption=args.adoption,
            ),
            opts=child,
        )

        def make(purpose: str, lifecycle: BucketLifecycle, log_bucket: Optional[pulumi.Input[str]]) -> SecureBucket:
            return SecureBucket(
                f"{name}-{purpose}",
                SecureBucketArgs(
                    bucket_name=bucket_name(args.context.name_prefix, args.context.silo_name, purpose, args.context.account.account_id),
                    purpose=purpose,
                    account=args.context.account,
                    kms_key_arn=self.key.arn,
                    access_log_bucket=log_bucket,
                    receives_access_logs=log_bucket is None,
                    lifecycle=lifecycle,
                    extra_policy_statements=args.bucket_policy_statements.get(purpose),
                    tags=tags,
                    adoption=args.adoption,
                ),
                opts=child,
            )

        def lifecycle(**overrides) -> BucketLifecycle:
            return BucketLifecycle(
                noncurrent_version_expiration_days=args.config.noncurrent_version_expiration_days,
                abort_incomplete_multipart_days=args.config.abort_incomplete_multipart_days,
                **overrides,
            )

        access_logs = make("access-logs", lifecycle(), None)
        logs_to = access_logs.name
        self.buckets = {
            "raw": make(
                "raw",
                lifecycle(transitions=[StorageTransition(days=args.config.raw_infrequent_access_days, storage_class="STANDARD_IA")]),
                logs_to,
            ),
            "processed": make("processed", lifecycle(), logs_to),
            "dropzone": make("dropzone", lifecycle(expiration_days=args.config.dropzone_expiration_days), logs_to),
            "athena-results": make("athena-results", lifecycle(), logs_to),
            "access-logs": access_logs,
        }
        self.register_outputs(
            {
                "keyArn": self.key.arn,
                **{bucket_output_key(purpose): bucket.name for purpose, bucket in self.buckets.items()},
            }
        )
