"""`RegionalAnalytics`: the master's org-wide Athena in a region other than its own, for the silos there.

Athena registers another account's Glue Data Catalog as a *regional* data catalog: it links to that
account's catalog in the catalog's own region only (Athena user guide, "Configure cross-account
access to AWS Glue data catalogs", considerations and limitations). A silo deployed in another
region (`aws:region` from its profile or account file) keeps its Glue catalog and processed bucket
there, so the master registers that silo's catalog in the silo's region, with a workgroup there
whose results stay there: a results bucket in the region (Athena writes results to a bucket of the
query's region), its access-log bucket (S3 delivers server access logs only within a region) and a
key (SSE-KMS keys are regional). Must be created with `providers={"aws": <provider for the region>}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi

from .analytics import OrgAccount, OrgAnalytics, OrgAnalyticsArgs
from .config import AnalyticsConfig
from ..shared.encryption import EncryptionKey, EncryptionKeyArgs
from ..shared.iam import AccountContext
from ..shared.naming import bucket_name
from ..shared.secure_bucket import BucketLifecycle, SecureBucket, SecureBucketArgs
from ..shared.storage import access_log_encryption_statement

MASTER_OWNER = "master"


def master_bucket_name(name_prefix: str, purpose: str, account_id: str) -> str:
    """Physical name of one of the master's buckets, `<prefix>-master-<purpose>-<account>`."""
    return bucket_name(name_prefix, MASTER_OWNER, purpose, account_id)


def master_access_logs_args(
    bucket_name: pulumi.Input[str], account: AccountContext, kms_key_arn: pulumi.Input[str], tags: Mapping[str, str]
) -> SecureBucketArgs:
    """The master's server-access-log bucket of a region: receives the logs of that region's buckets, kept a year."""
    return SecureBucketArgs(
        bucket_name=bucket_name,
        purpose="access-logs",
        account=account,
        kms_key_arn=kms_key_arn,
        receives_access_logs=True,
        lifecycle=BucketLifecycle(expiration_days=365),
        tags=dict(tags),
    )


@dataclass(frozen=True)
class RegionalAnalyticsArgs:
    """Arguments of `RegionalAnalytics`."""

    account: AccountContext
    """The master account, with `region` the region of these silos."""
    name_prefix: str
    """Prefix of physical names, e.g. `datalake`."""
    silo_ou_path: str
    """Entity path of the silo OU (the accounts come from `accounts`)."""
    accounts: Sequence[OrgAccount]
    """Every account of the silo OU: catalog names are chosen among all of them, as in the master region."""
    catalog_accounts: frozenset[str]
    """The accounts whose silos live in this region: each gets its catalog here."""
    config: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    """The `datalake:analytics` section, as in the master region (default: its defaults)."""
    tags: Mapping[str, str] = field(default_factory=dict)


class RegionalAnalytics(pulumi.ComponentResource):
    """A key, an access-log bucket and an `OrgAnalytics` (results bucket, workgroup, catalogs) in one region."""

    analytics: OrgAnalytics

    def __init__(self, name: str, args: RegionalAnalyticsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:analytics:RegionalAnalytics", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = str(args.account.region)
        prefix, tags = args.name_prefix, dict(args.tags)
        self.key = EncryptionKey(
            f"{name}-key",
            EncryptionKeyArgs(
                account=args.account,
                alias=f"{prefix}-{MASTER_OWNER}-{region}",
                description=f"Data lake master: Athena results and access logs in {region}",
                policy_statements=[access_log_encryption_statement(args.account)],
                tags=tags,
            ),
            opts=child,
        )
        self.access_logs = SecureBucket(
            f"{name}-access-logs",
            master_access_logs_args(
                master_bucket_name(prefix, f"access-logs-{region}", args.account.account_id), args.account, self.key.arn, tags
            ),
            opts=child,
        )
        self.analytics = OrgAnalytics(
            f"{name}-analytics",
            OrgAnalyticsArgs(
                account=args.account,
                name_prefix=prefix,
                results_bucket_name=master_bucket_name(prefix, f"results-{region}", args.account.account_id),
                kms_key_arn=self.key.arn,
                access_log_bucket=self.access_logs.name,
                silo_ou_path=args.silo_ou_path,
                accounts=args.accounts,
                catalog_accounts=args.catalog_accounts,
                config=args.config,
                tags=tags,
            ),
            opts=child,
        )
        self.register_outputs({"workgroup": self.analytics.workgroup.name, "catalogs": self.analytics.catalog_names})
