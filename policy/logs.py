"""Log rules: every log group has retention and a customer key and belongs to the stack (no service
creates one of its own, no policy grants logs:CreateLogGroup); Lambda functions and API stages log.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any, Optional

from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .documents import allows, as_list, label, policy_documents, statements, urn_of

# --- retention --------------------------------------------------------------------------------------

def validate_log_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:cloudwatch/logGroup:LogGroup":
        return
    days = args.props.get("retentionInDays")
    if not days or int(days) <= 0:
        report_violation("CloudWatch log group: retentionInDays is not set, so logs are kept (and billed) forever")


log_group_retention = ResourceValidationPolicy(
    name="log-group-retention",
    description="Every CloudWatch log group has a retention period.",
    validate=validate_log_retention,
)


LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def validate_lambda_log_groups(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    groups = [r for r in args.resources if r.resource_type == LOG_GROUP]
    by_name = {g.props.get("name"): g for g in groups}
    by_urn = {g.urn: g for g in groups}
    for function in (r for r in args.resources if r.resource_type == "aws:lambda/function:Function"):
        props = function.props
        explicit = (props.get("loggingConfig") or {}).get("logGroup")
        candidates = [by_name.get(explicit), by_name.get(f"/aws/lambda/{props.get('name')}")]
        deps = (getattr(function, "property_dependencies", {}) or {}).get("loggingConfig") or []
        candidates += [by_urn.get(urn_of(d)) for d in deps]
        candidates += [
            by_urn.get(urn_of(d))
            for d in function.dependencies
            if urn_of(d) in by_urn and str(by_urn[urn_of(d)].props.get("name", "")).startswith("/aws/lambda/")
        ]
        if not any(g is not None and (g.props.get("retentionInDays") or 0) > 0 for g in candidates):
            report_violation(
                f"Lambda function {function.name} has no log group with retention: create "
                "aws.cloudwatch.LogGroup '/aws/lambda/<function name>' with retentionInDays, or point "
                "loggingConfig.logGroup at one",
                function.urn,
            )


lambda_log_group = StackValidationPolicy(
    name="lambda-log-group-retention",
    description="Every Lambda function logs to a log group of this stack that has a retention period.",
    validate=validate_lambda_log_groups,
)


def validate_api_stage_logging(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in ("aws:apigateway/stage:Stage", "aws:apigatewayv2/stage:Stage"):
        return
    settings = args.props.get("accessLogSettings") or {}
    if not settings.get("destinationArn") or not settings.get("format"):
        report_violation("API Gateway stage: accessLogSettings needs a destinationArn and a format")


apigateway_access_logging = ResourceValidationPolicy(
    name="apigateway-stage-access-logging",
    description="API Gateway stages write access logs.",
    validate=validate_api_stage_logging,
)


# --- encrypted log groups, none left to services ----------------------------------------------------

def validate_log_group_encryption(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != LOG_GROUP:
        return
    if not args.props.get("kmsKeyId"):
        report_violation(
            f"CloudWatch log group {args.props.get('name') or args.name}: kmsKeyId is not set; encrypt it with "
            "the stack's key (and grant CloudWatch Logs that key for this group in the key policy)"
        )


log_group_encryption = ResourceValidationPolicy(
    name="log-group-kms-encrypted",
    description="Every CloudWatch log group is encrypted with a customer-managed KMS key.",
    validate=validate_log_group_encryption,
)


def _grants(actions: Sequence[str], wanted: str) -> bool:
    """Whether an Action list (with IAM wildcards) covers `wanted`, case-insensitively."""
    return any(fnmatch.fnmatchcase(wanted.lower(), str(a).lower()) for a in actions)


def validate_no_create_log_group(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for where, document in policy_documents(args.props):
        for s in statements(document):
            if allows(s) and _grants(as_list(s.get("Action")), "logs:CreateLogGroup"):
                report_violation(
                    f"{where} {label(s)} allows logs:CreateLogGroup: a group a service makes itself has no "
                    "retention and no key; create the group in the stack and grant only streams and events"
                )


def _role_path_and_name(arn: Any) -> Optional[str]:
    text = str(arn or "")
    return text.split(":role/", 1)[1] if ":role/" in text else (text or None)


def expected_service_log_groups(resource: Any) -> list[str]:
    """Names of the log groups AWS writes for `resource` and would create itself if missing."""
    props, kind = resource.props, resource.resource_type
    if kind == "aws:apigateway/methodSettings:MethodSettings":
        level = str((props.get("settings") or {}).get("loggingLevel") or "OFF").upper()
        if level != "OFF" and props.get("restApi") and props.get("stageName"):
            return [f"API-Gateway-Execution-Logs_{props['restApi']}/{props['stageName']}"]
    if kind == "aws:redshiftserverless/namespace:Namespace":
        return [f"/aws/redshift/{props.get('namespaceName')}/{t}" for t in as_list(props.get("logExports"))]
    if kind in ("aws:glue/crawler:Crawler", "aws:glue/job:Job") and props.get("securityConfiguration"):
        config = props["securityConfiguration"]
        role = _role_path_and_name(props.get("role") or props.get("roleArn"))
        if role is None:
            return []
        if kind == "aws:glue/crawler:Crawler":
            return [f"/aws-glue/crawlers-role/{role}-{config}"]
        groups = [f"/aws-glue/jobs/{config}-role/{role}/output", f"/aws-glue/jobs/{config}-role/{role}/error"]
        if str((props.get("defaultArguments") or {}).get("--enable-continuous-cloudwatch-log")).lower() == "true":
            groups.append(f"/aws-glue/jobs/logs-v2-{config}")
        return groups
    return []


def validate_service_log_groups(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    groups = {r.props.get("name") for r in args.resources if r.resource_type == LOG_GROUP}
    for resource in args.resources:
        if resource.resource_type == "aws:transfer/server:Server":
            if resource.props.get("loggingRole") and not resource.props.get("structuredLogDestinations"):
                report_violation(
                    "Transfer server logs through a logging role into /aws/transfer/<server id>, a group it creates "
                    "itself without retention; set structuredLogDestinations to a log group of the stack",
                    resource.urn,
                )
            continue
        missing = [name for name in expected_service_log_groups(resource) if name not in groups]
        if missing:
            report_violation(
                f"{resource.resource_type.split(':')[-1]} {resource.name} writes to {', '.join(missing)}, which the "
                "stack does not create: AWS would create it with no retention and no key; add an "
                "aws.cloudwatch.LogGroup of that name (and make the resource depend on it)",
                resource.urn,
            )


service_log_groups = StackValidationPolicy(
    name="service-log-groups-in-the-stack",
    description="Log groups that API Gateway, Transfer, Glue and Redshift Serverless write exist in the stack "
    "(with retention and a key), so no service creates one of its own.",
    validate=validate_service_log_groups,
)


no_create_log_group = ResourceValidationPolicy(
    name="no-create-log-group-grants",
    description="No policy allows logs:CreateLogGroup: every log group belongs to the stack.",
    validate=validate_no_create_log_group,
)
