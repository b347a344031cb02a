"""`ApiGatewayLogging`: the account-wide role API Gateway writes CloudWatch logs with.

API Gateway has one CloudWatch role setting per account and region (`aws.apigateway.Account`);
without it no stage of any API can write access or execution logs. A silo has two APIs (dropzone
and ingestion), so the silo owns the setting once and both stages depend on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from ..shared.iam import assume_role_policy, statement
from ..shared.logs import encrypted_log_group
from ..shared.naming import bounded_name
from ..shared.roles import role_with_policy
from ..shared.context import SiloContext


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

    context: SiloContext
    """The silo: account, names, key and tags (`SiloAccount` passes its own)."""
    log_group_names: Sequence[str] = ()
    """Access log groups (names, `*` allowed) API Gateway may write besides its execution logs (default none)."""


class ApiGatewayLogging(pulumi.ComponentResource):
    """The CloudWatch role of API Gateway in this account, limited to the silo's API log groups."""

    settings: aws.apigateway.Account

    def __init__(self, name: str, args: ApiGatewayLoggingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:apilogging:ApiGatewayLogging", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.context.account
        groups = ["API-Gateway-Execution-Logs_*", *args.log_group_names]
        role, _ = role_with_policy(
            name,
            bounded_name(args.context.name_prefix, args.context.silo_name, "apigateway-logs"),
            # No aws:SourceAccount/aws:SourceArn: API Gateway documents neither for this role (its
            # setup guide's trust has none), and it does not send aws:SourceAccount when it assumes
            # integration roles (aws-solutions-library-samples/accelerated-intelligent-document-processing-on-aws#479).
            # The role is the account's own setting; iam:PassRole keeps other accounts from using it.
            assume_role_policy("apigateway.amazonaws.com"),
            [
                # No logs:CreateLogGroup: every group API Gateway writes is created by the stack,
                # with a retention and the silo key (`logged_stage` makes the execution-log group).
                statement(
                    "WriteApiGatewayLogs",
                    ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                    [account.arn("logs", f"log-group:{group}") for group in groups]
                    + [account.arn("logs", f"log-group:{group}:log-stream:*") for group in groups],
                )
            ],
            args.context.tags,
            child,
        )
        self.settings = aws.apigateway.Account(f"{name}-settings", cloudwatch_role_arn=role.arn, opts=child)
        self.register_outputs({"cloudwatchRoleArn": role.arn})


def logged_stage(
    name: str,
    *,
    rest_api: pulumi.Input[str],
    deployment: pulumi.Input[str],
    stage_name: str,
    access_log_arn: pulumi.Input[str],
    throttle_rate_limit: float,
    throttle_burst_limit: int,
    execution_logging_level: Optional[str] = None,
    execution_log_retention_days: Optional[int] = None,
    kms_key_arn: Optional[pulumi.Input[str]] = None,
    depends_on: Sequence[pulumi.Resource] = (),
    tags: Optional[dict[str, str]] = None,
    parent: pulumi.Resource,
) -> aws.apigateway.Stage:
    """`<name>-stage` with JSON access logs, and `<name>-stage-settings` throttling every method.

    `depends_on` should hold the account's `ApiGatewayLogging.settings`: a stage with access logs
    fails to create before the account's CloudWatch role is set. Request and response bodies never go
    to the logs (`data_trace_enabled` stays off): they are data.

    With an `execution_logging_level`, API Gateway writes execution logs to
    `API-Gateway-Execution-Logs_<rest api id>/<stage>`; that group (`<name>-execution-logs`) is made
    here first, with `execution_log_retention_days` and `kms_key_arn`, or API Gateway would create
    it with no retention and no key.
    """
    execution_logs: list[pulumi.Resource] = []
    if execution_logging_level:
        if not execution_log_retention_days or kms_key_arn is None:
            raise ValueError(f"{name}: execution logging needs execution_log_retention_days and kms_key_arn")
        execution_logs.append(
            encrypted_log_group(
                f"{name}-execution-logs",
                pulumi.Output.concat("API-Gateway-Execution-Logs_", rest_api, "/", stage_name),
                kms_key_arn,
                execution_log_retention_days,
                tags or {},
                pulumi.ResourceOptions(parent=parent),
            )
        )
    stage = aws.apigateway.Stage(
        f"{name}-stage",
        rest_api=rest_api,
        deployment=deployment,
        stage_name=stage_name,
        access_log_settings=aws.apigateway.StageAccessLogSettingsArgs(destination_arn=access_log_arn, format=ACCESS_LOG_FORMAT),
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
    aws.apigateway.MethodSettings(
        f"{name}-stage-settings",
        rest_api=rest_api,
        stage_name=stage.stage_name,
        method_path="*/*",
        settings=aws.apigateway.MethodSettingsSettingsArgs(
            throttling_rate_limit=throttle_rate_limit,
            throttling_burst_limit=throttle_burst_limit,
            logging_level=execution_logging_level,
            data_trace_enabled=False,
            metrics_enabled=True,
        ),
        # The logging level is what starts execution logs: the group must exist by then.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=execution_logs),
    )
    return stage
