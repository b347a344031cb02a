"""Access rules: no admin wildcards in any statement, resource policies scoped to the organization (a
silo names no other account), and service trust tied to this account (the confused-deputy guard).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .documents import (
    ACCOUNT_IN_TEXT,
    SILO_STACK,
    accounts_a_silo_may_name,
    allows,
    as_list,
    aws_principals,
    condition_keys,
    config_of,
    document_of,
    has_org_condition,
    home_account,
    label,
    policy_documents,
    principal_account,
    statements,
)

# --- IAM statements everywhere ----------------------------------------------------------------------

def _wildcard_problems(s: Mapping[str, Any]) -> list[str]:
    actions = [str(a).lower() for a in as_list(s.get("Action"))]
    resources = [str(r) for r in as_list(s.get("Resource"))]
    on_everything = "*" in resources
    problems = []
    if on_everything and any(a in ("*", "*:*") for a in actions):
        problems.append("allows every action on every resource")
    if any(a == "iam:*" for a in actions):
        problems.append("allows iam:* (privilege escalation)")
    if on_everything and "s3:*" in actions:
        problems.append("allows s3:* on every resource")
    return problems


def validate_no_admin_wildcards(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for where, document in policy_documents(args.props):
        for s in statements(document):
            if not allows(s):
                continue
            for problem in _wildcard_problems(s):
                report_violation(f"{where} {label(s)} {problem}; name the actions and resources it needs")


iam_no_admin_wildcards = ResourceValidationPolicy(
    name="iam-no-admin-wildcards",
    description="No policy statement allows '*' on '*', iam:*, or s3:* on '*'.",
    validate=validate_no_admin_wildcards,
)


# --- resource policies: org-scoped, and a silo names no other account -------------------------------

def validate_resource_policies(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    config = config_of(args)
    home = home_account(args.urn, config)
    may_name = accounts_a_silo_may_name(home, config)
    is_silo = SILO_STACK.match(args.urn) is not None
    for where, document in policy_documents(args.props):
        for s in statements(document):
            if "Principal" not in s:
                continue  # an identity policy; iam-no-admin-wildcards judges those
            if allows(s):
                outside = [
                    p for p in aws_principals(s)
                    if p == "*" or (home is not None and principal_account(p) not in (None, home))
                ]
                if outside and not has_org_condition(s):
                    report_violation(
                        f"{where} {label(s)} grants to {', '.join(sorted(set(outside)))} outside this account "
                        "without an aws:PrincipalOrgPaths or aws:PrincipalOrgID condition"
                    )
            if is_silo:
                named = set(ACCOUNT_IN_TEXT.findall(json.dumps(s))) - may_name
                if named:
                    report_violation(
                        f"{where} {label(s)} names account(s) {', '.join(sorted(named))}: a silo's resource "
                        "policies name no other account (scope with aws:PrincipalOrgPaths instead)"
                    )
    if args.resource_type == "aws:lambda/permission:Permission":
        principal = str(args.props.get("principal", ""))
        account = principal_account(principal)
        if (principal == "*" or (home is not None and account not in (None, home))) and not args.props.get(
            "principalOrgId"
        ):
            report_violation(f"Lambda permission for {principal} outside this account needs principalOrgId")
        if is_silo and account is not None and account not in may_name:
            report_violation(f"Lambda permission names account {account}: a silo names no other account")


resource_policy_org_scoped = ResourceValidationPolicy(
    name="resource-policy-org-scoped",
    description="Resource policies granting outside the account carry an aws:PrincipalOrgPaths/PrincipalOrgID "
    "condition; a silo's resource policies name no account but its own and the master's.",
    validate=validate_resource_policies,
    config_schema=PolicyConfigSchema(
        properties={
            "masterAccountId": {
                "type": "string",
                "description": "The master account: home of the master stack, and the one account besides "
                "its own that a silo's resource policies may name (it reads processed data for org-wide Athena).",
            },
            "homeAccountId": {"type": "string", "description": "Account of a non-silo stack (default masterAccountId)."},
            "trustedAccountIds": {"type": "array", "items": {"type": "string"}},
        }
    ),
)


# --- service trust: tied to this account ------------------------------------------------------------

# Service principals that send aws:SourceAccount/aws:SourceArn when they assume a role, per each
# service's "cross-service confused deputy prevention" documentation; their trust policies must use
# them. Not here, on purpose: lambda (documents the keys only for policies on a function),
# apigateway (sends no aws:SourceAccount when it assumes integration roles), glue (documents none);
# firehose passes sts:ExternalId instead, which counts too.
SERVICES_SENDING_SOURCE_KEYS = (
    "codebuild.amazonaws.com",
    "codepipeline.amazonaws.com",
    "events.amazonaws.com",
    "scheduler.amazonaws.com",
    "states.amazonaws.com",
    "transfer.amazonaws.com",
    "redshift.amazonaws.com",
    "redshift-serverless.amazonaws.com",
    "firehose.amazonaws.com",
)
CONFUSED_DEPUTY_KEYS = ("aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid", "aws:sourceorgpaths", "sts:externalid")


def _services(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    return [str(p) for p in as_list(principal.get("Service"))] if isinstance(principal, Mapping) else []


def validate_service_trust(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:iam/role:Role":
        return
    document = document_of(args.props.get("assumeRolePolicy"))
    for s in statements(document) if document else []:
        services = [svc for svc in _services(s) if svc in SERVICES_SENDING_SOURCE_KEYS]
        if allows(s) and services and not condition_keys(s) & set(CONFUSED_DEPUTY_KEYS):
            report_violation(
                f"trust policy {label(s)} lets {', '.join(services)} assume the role for any account: add "
                "aws:SourceAccount (iam.account_service_trust) or aws:SourceArn, which these services send"
            )


service_trust_confused_deputy = ResourceValidationPolicy(
    name="service-trust-source-conditions",
    description="Roles trusted by services that send aws:SourceAccount/aws:SourceArn are tied to them "
    "(confused-deputy guard).",
    validate=validate_service_trust,
)
