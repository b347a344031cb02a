"""`ApiGatewayLogging`: the account-wide role API Gateway writes CloudWatch logs with.

API Gateway has one CloudWatch role setting per account and region (`aws.apigateway.Account`);
without it no stage of any API can write access or execution logs. A silo has two APIs (dropzone
and ingestion), so the silo owns the setting once and both stages depend on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .iam import AccountContext, assume_role_policy, statement
from .naming import bounded_name
from .roles import role_with_policy


# One JSON line per request in every stage's access log: who called what, and why it failed.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "user": "$context.identity.userArn",
        "apiKeyId": "$context.identity.apiKeyId",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "integrationStatus": "$context.integration.status",
        "integrationError": "$context.integration.error",
        "validationError": "$context.error.validationErrorString",
    },
    separators=(",", ":"),
)


@dataclass(frozen=True)
class ApiGatewayLoggingArgs:
    """Arguments of `ApiGatewayLogging`."""

    account: AccountContext
    """The account whose API Gateway setting this is."""
    name_prefix: str
    """Prefix of physical names, e.g. `datalake`."""
    silo_name: str
    """Short silo name, e.g. `sales`."""
    log_group_names: Sequence[str] = ()
    """Access log groups (names, `*` allowed) API Gateway may write besides its execution logs (default none)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of the role (default none)."""


class ApiGatewayLogging(pulumi.ComponentResource):
    """The CloudWatch role of API Gateway in this account, limited to the silo's API log groups."""

    settings: aws.apigateway.Account

    def __init__(self, name: str, args: ApiGatewayLoggingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:apilogging:ApiGatewayLogging", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account
        groups = ["API-Gateway-Execution-Logs_*", *args.log_group_names]
        role, _ = role_with_policy(
            name,
            bounded_name(args.name_prefix, args.silo_name, "apigateway-logs"),
            assume_role_policy("apigateway.amazonaws.com"),
            [
                statement(
                    "WriteApiGatewayLogs",
                    ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                    [account.arn("logs", f"log-group:{group}") for group in groups]
                    + [account.arn("logs", f"log-group:{group}:log-stream:*") for group in groups],
                )
            ],
            args.tags,
            child,
        )
        self.settings = aws.apigateway.Account(f"{name}-settings", cloudwatch_role_arn=role.arn, opts=child)
        self.register_outputs({"cloudwatchRoleArn": role.arn})
