"""Read-only sharing of a silo's processed data with the analytics OU, as policy statements.

The seed: "the company master account and other accounts for global analytics will be able to
access files on s3 and run Athena queries". Three grants make that work, each conditioned on
`aws:PrincipalOrgPaths` under the analytics OU (never an account list) and each limited to the
processed data: the processed bucket policy, the silo key policy (decrypt through S3, for objects
of the processed bucket only) and the Glue catalog policy (`catalog.analytics_catalog_statement`).
Nothing is granted on raw, dropzone, athena-results or any other silo.
"""

from __future__ import annotations

import pulumi

from .iam import AccountContext, Statement, principal_in_ou, statement

BUCKET_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
BUCKET_LIST_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation")


def analytics_bucket_statements(bucket_arn: pulumi.Input[str], analytics_ou_path: str) -> list[Statement]:
    """Processed bucket policy: list the bucket and get its objects, for analytics principals only."""
    condition = principal_in_ou(analytics_ou_path)
    return [
        statement(
            "AnalyticsOuListsProcessed",
            list(BUCKET_LIST_ACTIONS),
            bucket_arn,
            principal={"AWS": "*"},
            conditions=condition,
        ),
        statement(
            "AnalyticsOuReadsProcessed",
            list(BUCKET_READ_ACTIONS),
            pulumi.Output.concat(bucket_arn, "/*"),
            principal={"AWS": "*"},
            conditions=condition,
        ),
    ]


def analytics_key_statement(
    account: AccountContext, processed_bucket_arn: pulumi.Input[str], analytics_ou_path: str
) -> Statement:
    """Silo key policy: analytics principals may decrypt, only through S3 and only objects of the
    processed bucket (S3 puts the bucket ARN, with bucket keys, in the encryption context)."""
    return statement(
        "AnalyticsOuDecryptsProcessedObjects",
        "kms:Decrypt",
        "*",
        principal={"AWS": "*"},
        conditions={
            **principal_in_ou(analytics_ou_path),
            "StringEquals": {"kms:ViaService": pulumi.Output.concat("s3.", account.region, ".amazonaws.com")},
            "StringLike": {
                "kms:EncryptionContext:aws:s3:arn": [processed_bucket_arn, pulumi.Output.concat(processed_bucket_arn, "/*")]
            },
        },
    )
