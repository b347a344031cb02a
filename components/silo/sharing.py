"""Read-only sharing of a silo's processed data, as policy statements.

The seed: "the company master account and other accounts for global analytics will be able to
access files on s3 and run Athena queries". A silo shares its processed data with two readers:

- the **analytics OU**: any principal whose `aws:PrincipalOrgPaths` is under `analyticsOuPath`
  (never an account list);
- the **master account** (`sharing.masterQueries`, default on): its Athena workgroup has one GLUE
  catalog per silo (`components/master/analytics.py`), and the master is not in the analytics OU. The grant
  names the master's root principal (the master's own IAM policies then decide which of its
  principals may query) with an `aws:PrincipalOrgID` condition.

Each reader gets three grants, all limited to the processed data: the processed bucket policy, the
silo key policy (decrypt through S3, for objects of the processed bucket only) and the Glue catalog
policy (`catalog.processed_catalog_statement`). Nothing is granted on raw, dropzone, athena-results,
access-logs or any other silo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from ..shared.iam import AccountContext, Statement, kms_via_service, merge_conditions, principal_in_ou, statement

BUCKET_LIST_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation")
BUCKET_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
# Athena reads current objects only; superseded versions (kept 90 days, e.g. rows a re-run replaced
# or deleted) stay out of the master's reach.
MASTER_BUCKET_READ_ACTIONS = ("s3:GetObject",)
# What a reader needs to plan an Athena query on a shared table: read-only metadata. Athena lists
# databases and tables (GetDatabases, GetTables) and reads partitions (GetPartitions, BatchGetPartition).
CATALOG_READ_ACTIONS = (
    "glue:GetDatabase",
    "glue:GetDatabases",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetTableVersion",
    "glue:GetTableVersions",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
)
# The master's Athena catalogs need no table versions: exactly what Athena calls, nothing more.
MASTER_CATALOG_READ_ACTIONS = tuple(a for a in CATALOG_READ_ACTIONS if not a.startswith("glue:GetTableVersion"))


@dataclass(frozen=True)
class Reader:
    """Who a silo shares its processed data with, and how the grant is scoped."""

    sid: str
    """Prefix of the statements' Sids, e.g. `AnalyticsOu` → `AnalyticsOuReadsProcessed`."""
    principal: dict[str, Any]
    """The statements' `Principal`."""
    conditions: dict[str, dict[str, Any]]
    """Condition every grant carries (an org path or org id: never an unconditioned account)."""
    object_actions: tuple[str, ...] = BUCKET_READ_ACTIONS
    """Actions on the processed bucket's objects (default GetObject and GetObjectVersion)."""
    catalog_actions: tuple[str, ...] = CATALOG_READ_ACTIONS
    """Glue actions on the catalog, the processed database and its tables (default `CATALOG_READ_ACTIONS`)."""


def analytics_reader(analytics_ou_path: str) -> Reader:
    """Every principal of an account under the analytics OU."""
    return Reader(sid="AnalyticsOu", principal={"AWS": "*"}, conditions=principal_in_ou(analytics_ou_path))


def master_reader(
    master_account_id: pulumi.Input[str], partition: pulumi.Input[str], organization_id: pulumi.Input[str]
) -> Reader:
    """The master account (its root principal: the master's IAM policies pick who queries), inside the organization."""
    return Reader(
        sid="Master",
        principal={"AWS": pulumi.Output.concat("arn:", partition, ":iam::", master_account_id, ":root")},
        conditions={"StringEquals": {"aws:PrincipalOrgID": organization_id}},
        object_actions=MASTER_BUCKET_READ_ACTIONS,
        catalog_actions=MASTER_CATALOG_READ_ACTIONS,
    )


def processed_bucket_statements(bucket_arn: pulumi.Input[str], reader: Reader) -> list[Statement]:
    """Processed bucket policy: list the bucket and get its objects, for `reader` only."""
    return [
        statement(
            f"{reader.sid}ListsProcessed",
            list(BUCKET_LIST_ACTIONS),
            bucket_arn,
            principal=reader.principal,
            conditions=reader.conditions,
        ),
        statement(
            f"{reader.sid}ReadsProcessed",
            list(reader.object_actions),
            pulumi.Output.concat(bucket_arn, "/*"),
            principal=reader.principal,
            conditions=reader.conditions,
        ),
    ]


def processed_key_statement(account: AccountContext, processed_bucket_arn: pulumi.Input[str], reader: Reader) -> Statement:
    """Silo key policy: `reader` may decrypt, only through S3 and only objects of the processed
    bucket (S3 puts the bucket ARN, with bucket keys, in the encryption context)."""
    return statement(
        f"{reader.sid}DecryptsProcessedObjects",
        "kms:Decrypt",
        "*",
        principal=reader.principal,
        conditions=merge_conditions(
            reader.conditions,
            {
                "StringEquals": {"kms:ViaService": kms_via_service("s3", account.region)},
                "StringLike": {
                    "kms:EncryptionContext:aws:s3:arn": [
                        processed_bucket_arn,
                        pulumi.Output.concat(processed_bucket_arn, "/*"),
                    ]
                },
            },
        ),
    )
