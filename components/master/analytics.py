"""`OrgAnalytics`: Athena in the master over every silo's Glue catalog.

The silo accounts are not listed anywhere: at every `pulumi up -s master` the component asks
Organizations for the accounts under the silo OU (a Pulumi invoke, answered by the mocks in tests)
and registers one Athena data catalog of type GLUE per ACTIVE account. A new silo becomes queryable
as `silo_<name>.<database>.<table>` after the next master update; a closed or suspended one drops out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .config import AnalyticsConfig
from ..shared.iam import AccountContext
from ..shared.secure_bucket import BucketLifecycle, SecureBucket, SecureBucketArgs

# Athena catalog names allow 128 characters; keep room for a disambiguating `_<account id>`.
MAX_CATALOG_NAME = 127
ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class OrgAccount:
    """One account as Organizations describes it."""

    id: str
    name: str
    state: str


def ou_id_of(ou_path: str) -> str:
    """`o-x/r-y/ou-a/ou-b/` → `ou-b`: the OU an entity path ends with."""
    return ou_path.rstrip("/").rsplit("/", 1)[-1]


def discover_accounts(ou_path: str, opts: Optional[pulumi.InvokeOptions] = None) -> list[OrgAccount]:
    """Every account below the OU (nested OUs included), as Organizations reports it at deploy time."""
    result = aws.organizations.get_organizational_unit_descendant_accounts(parent_id=ou_id_of(ou_path), opts=opts)
    return [
        # `status` is deprecated in favour of `state`; older provider answers carry only `status`.
        OrgAccount(id=a.id, name=a.name, state=(getattr(a, "state", None) or a.status or "").upper())
        for a in result.accounts
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def catalog_names(accounts: Iterable[OrgAccount], prefix: str) -> dict[str, str]:
    """Account id → Athena catalog name, for ACTIVE accounts only, sorted by account id.

    The name is `<prefix><account name>` lowercased with every other character turned into `_`, so it
    is a plain SQL identifier (no quoting needed). An account whose name yields nothing falls back to
    its id; accounts whose names collide all get `_<account id>` appended, so no catalog silently
    points at the wrong account.
    """
    active = sorted((a for a in accounts if a.state == ACTIVE), key=lambda a: a.id)
    base = {a.id: _slug(a.name) or a.id for a in active}
    counts: dict[str, int] = {}
    for slug in base.values():
        counts[slug] = counts.get(slug, 0) + 1
    names = {}
    for account_id, slug in base.items():
        if counts[slug] > 1 and slug != account_id:
            slug = f"{slug[: MAX_CATALOG_NAME - len(prefix) - 13]}_{account_id}"
        names[account_id] = f"{prefix}{slug}"[:MAX_CATALOG_NAME]
    return names


@dataclass(frozen=True)
class OrgAnalyticsArgs:
    """Arguments of `OrgAnalytics`."""

    account: AccountContext
    """The master account."""
    name_prefix: str
    """Prefix of physical names, e.g. `datalake`."""
    results_bucket_name: pulumi.Input[str]
    """Physical name of the query results bucket the component creates."""
    kms_key_arn: pulumi.Input[str]
    """Key that encrypts query results (SSE-KMS, enforced by the workgroup)."""
    access_log_bucket: pulumi.Input[str]
    """Bucket receiving the results bucket's server access logs."""
    silo_ou_path: str
    """Entity path of the silo OU; its last element is the OU whose accounts are discovered."""
    accounts: Optional[Sequence[OrgAccount]] = None
    """The silo accounts (default None: discovered through Organizations at deploy time)."""
    catalog_accounts: Optional[frozenset[str]] = None
    """Accounts to register catalogs for, when not all ACTIVE ones (default None: all). Names are still
    chosen among all `accounts`, so a silo's catalog keeps its name whichever region it is in."""
    config: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    """The `datalake:analytics` section: catalog-name prefix, per-query scan limit, days results are
    kept (default: its defaults)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags of every resource (default none)."""


class OrgAnalytics(pulumi.ComponentResource):
    """An Athena workgroup with enforced SSE-KMS results, and one GLUE data catalog per ACTIVE silo account."""

    workgroup: aws.athena.Workgroup
    results: SecureBucket
    catalogs: dict[str, aws.athena.DataCatalog]
    catalog_names: dict[str, str]

    def __init__(self, name: str, args: OrgAnalyticsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:analytics:OrgAnalytics", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._tags = dict(args.tags)

        self.results = self._results_bucket(args)
        self.workgroup = self._workgroup(args)
        self.catalog_names = self._catalog_names(args)
        self.catalogs = self._catalogs()
        self.register_outputs(
            {
                "workgroup": self.workgroup.name,
                "resultsBucket": self.results.name,
                "catalogs": self.catalog_names,
            }
        )

    def _results_bucket(self, args: OrgAnalyticsArgs) -> SecureBucket:
        return SecureBucket(
            f"{self._name}-results",
            SecureBucketArgs(
                bucket_name=args.results_bucket_name,
                purpose="athena-results",
                account=args.account,
                kms_key_arn=args.kms_key_arn,
                access_log_bucket=args.access_log_bucket,
                lifecycle=BucketLifecycle(
                    expiration_days=args.config.results_expiration_days, noncurrent_version_expiration_days=1
                ),
                tags=self._tags,
            ),
            opts=self._child,
        )

    def _workgroup(self, args: OrgAnalyticsArgs) -> aws.athena.Workgroup:
        """The workgroup: results in the results bucket, SSE-KMS, a scan limit per query; clients cannot override."""
        return aws.athena.Workgroup(
            f"{self._name}-workgroup",
            name=f"{args.name_prefix}-org-analytics",
            description="Org-wide queries over every silo's Glue catalog",
            state="ENABLED",
            force_destroy=False,
            configuration=aws.athena.WorkgroupConfigurationArgs(
                # Clients cannot override the output location or turn encryption off.
                enforce_workgroup_configuration=True,
                publish_cloudwatch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=args.config.bytes_scanned_cutoff_per_query,
                result_configuration=aws.athena.WorkgroupConfigurationResultConfigurationArgs(
                    output_location=pulumi.Output.concat("s3://", self.results.name, "/results/"),
                    expected_bucket_owner=args.account.account_id,
                    encryption_configuration=aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                        encryption_option="SSE_KMS",
                        kms_key_arn=args.kms_key_arn,
                    ),
                ),
            ),
            tags=self._tags,
            opts=self._child,
        )

    def _catalog_names(self, args: OrgAnalyticsArgs) -> dict[str, str]:
        """Account id → catalog name, for the given (or discovered) accounts this component registers."""
        accounts = (
            list(args.accounts)
            if args.accounts is not None
            else discover_accounts(args.silo_ou_path, pulumi.InvokeOptions(parent=self))
        )
        return {
            account_id: catalog
            for account_id, catalog in catalog_names(accounts, args.config.catalog_prefix).items()
            if args.catalog_accounts is None or account_id in args.catalog_accounts
        }

    def _catalogs(self) -> dict[str, aws.athena.DataCatalog]:
        return {
            # Logical names follow the account id, which never changes; a renamed account only
            # renames (replaces) its catalog.
            account_id: aws.athena.DataCatalog(
                f"{self._name}-catalog-{account_id}",
                name=catalog,
                type="GLUE",
                description=f"Glue Data Catalog of silo account {account_id}",
                parameters={"catalog-id": account_id},
                tags={**self._tags, "datalake:account": account_id},
                opts=self._child,
            )
            for account_id, catalog in self.catalog_names.items()
        }
