"""CloudWatch log groups of the silo, encrypted with the silo key, and the key grant that allows it."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .iam import AccountContext, Statement, statement


def logs_service_key_statement(
    sid: str, account: AccountContext, operator: str, log_group_arns: pulumi.Input[str] | list[pulumi.Input[str]]
) -> Statement:
    """Key policy grant: CloudWatch Logs of this account and region may encrypt the log groups whose
    ARNs match `log_group_arns` (by `operator`, `StringLike` or `StringEquals`) with the key.

    The encryption context names the log group. No kms:DescribeKey: it carries no encryption
    context, so the condition would never match it. (Encryption-context keys are strings to IAM:
    parliament flags ArnLike on them.)
    """
    return statement(
        sid,
        ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
         "kms:GenerateDataKeyWithoutPlaintext"],
        "*",
        principal={"Service": pulumi.Output.concat("logs.", account.region, ".amazonaws.com")},
        conditions={operator: {"kms:EncryptionContext:aws:logs:arn": log_group_arns}},
    )


def logs_key_statement(account: AccountContext) -> Statement:
    """Key policy grant: CloudWatch Logs of this account and region may encrypt log groups with the key.

    Log groups with a `kms_key_id`, and Glue's CloudWatch encryption, fail to create without it.
    The encryption context names the log group, so only this account's groups qualify.
    """
    return logs_service_key_statement("AllowCloudWatchLogsEncryption", account, "StringLike", account.arn("logs", "log-group:*"))


def log_group_arn(account: AccountContext, name: pulumi.Input[str]) -> pulumi.Output[str]:
    return account.arn("logs", pulumi.Output.concat("log-group:", name))


def encrypted_log_group(
    resource_name: str,
    group_name: pulumi.Input[str],
    kms_key_arn: pulumi.Input[str],
    retention_days: int,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.LogGroup:
    """A log group with a retention (logs kept forever cost forever) and the silo key."""
    return aws.cloudwatch.LogGroup(
        resource_name,
        name=group_name,
        retention_in_days=retention_days,
        kms_key_id=kms_key_arn,
        tags=tags,
        opts=opts,
    )
