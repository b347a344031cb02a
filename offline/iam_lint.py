"""Every IAM policy document a program (or a handler) emits, linted with parliament, strictly.

`documents(recording)` finds each document a recorded program sends AWS, and what kind it is: an
identity policy (role, managed, user policy), a trust policy, a KMS key policy, a resource policy
(bucket, topic, Glue catalog, VPC endpoint, ...) or a Lambda permission (the statement Lambda adds
to the function's resource policy). A resource type that carries policy JSON but is not classified
here fails `unclassified(recording)`, so a new kind of policy cannot slip past the linter.

`lint(document)` runs parliament on it and returns every finding except the few in `ALLOWED`,
each of which says why AWS accepts what parliament flags and links the AWS documentation. Before
linting, a document is put in the form parliament reads as AWS does:
- a trust policy gets its role's ARN as `Resource` (AWS: "the role is the resource"); parliament
  would otherwise stop at "no Resource" and check nothing else (actions, condition keys);
- a key policy's `Resource: "*"` ("this KMS key", never every key) becomes the key's ARN, so each
  action is checked against the key resource type;
- a Lambda permission becomes the statement Lambda writes into the function policy.

On top of parliament, `arn_problems` checks every ARN in `Resource` and in ARN-typed conditions
against the ARN formats of its service (parliament's IAM definition): a malformed ARN (wrong
service name, missing resource type, `arn:aws:cloudwatch:` for an EventBridge rule) is denied on
AWS or, worse, silently matches nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Optional

from .harness import RecordedResource, Recording

IDENTITY = "identity"
TRUST = "trust"
KEY = "key"
RESOURCE = "resource"
PERMISSION = "lambda-permission"
SESSION = "session"

# Resource type -> (input key, kind) of each policy document it carries.
POLICY_INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "aws:iam/role:Role": (("assumeRolePolicy", TRUST),),
    "aws:iam/rolePolicy:RolePolicy": (("policy", IDENTITY),),
    "aws:iam/policy:Policy": (("policy", IDENTITY),),
    "aws:iam/userPolicy:UserPolicy": (("policy", IDENTITY),),
    "aws:iam/groupPolicy:GroupPolicy": (("policy", IDENTITY),),
    "aws:kms/key:Key": (("policy", KEY),),
    "aws:kms/keyPolicy:KeyPolicy": (("policy", KEY),),
    "aws:s3/bucketPolicy:BucketPolicy": (("policy", RESOURCE),),
    "aws:sns/topicPolicy:TopicPolicy": (("policy", RESOURCE),),
    "aws:sqs/queuePolicy:QueuePolicy": (("policy", RESOURCE),),
    "aws:glue/resourcePolicy:ResourcePolicy": (("policy", RESOURCE),),
    "aws:ec2/vpcEndpoint:VpcEndpoint": (("policy", RESOURCE),),
    "aws:apigateway/restApiPolicy:RestApiPolicy": (("policy", RESOURCE),),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": (("policyDocument", RESOURCE),),
    "aws:cloudwatch/eventBusPolicy:EventBusPolicy": (("policy", RESOURCE),),
}


@dataclass(frozen=True)
class PolicyDocument:
    """One policy document as AWS receives it, and where it comes from."""

    source: str
    """`<urn>.<input key>` for program resources, a description for handler-built policies."""
    kind: str
    document: dict[str, Any]
    resource_arn: Optional[str] = None
    """The resource a trust (role), key (key) or Lambda permission (function) policy is attached to."""
    resource_type: str = ""


@dataclass(frozen=True)
class Allowance:
    """One parliament finding AWS accepts, matched narrowly, with the documented reason."""

    issue: str
    reason: str
    """Why AWS accepts it, citing the AWS documentation (parliament's own data can be stale)."""
    applies: Callable[["PolicyDocument", dict[str, Any], Any], bool]
    """(document, statement, finding detail) → whether this finding is the one allowed."""


def _statement_actions(statement: Mapping[str, Any]) -> list[str]:
    actions = statement.get("Action", statement.get("NotAction", []))
    return [actions] if isinstance(actions, str) else list(actions)


def _key_policy_kms_star(document: PolicyDocument, statement: dict[str, Any], detail: Any) -> bool:
    """The account-root statement of a key policy: `kms:*` on this key (AWS's default key policy).

    Parliament expands `kms:*` to every KMS action, including those that take no key (CreateKey,
    ListKeys, ...) or an alias, and reports that the key ARN does not fit them.
    """
    if document.kind != KEY or _statement_actions(statement) != ["kms:*"]:
        return False
    key_format = "arn:*:kms:*:*:key/*"
    return all(entry["required_format"] != key_format for entry in detail)


ATHENA_TAGGING = frozenset({"athena:TagResource", "athena:UntagResource", "athena:ListTagsForResource"})


def _athena_data_catalog_tagging(document: PolicyDocument, statement: dict[str, Any], detail: Any) -> bool:
    """Athena tagging on data catalogs only: parliament's definition lists workgroups and capacity
    reservations as the only resources of these actions, and so reports a data catalog as a mismatch."""
    resources = statement.get("Resource", [])
    resources = [resources] if isinstance(resources, str) else list(resources)
    return (
        bool(resources)
        and all(isinstance(r, str) and r.split(":", 5)[-1].startswith("datacatalog/") for r in resources)
        and all(entry.get("action") in ATHENA_TAGGING for entry in detail)
    )


def _standard_execution_describe(document: PolicyDocument, statement: dict[str, Any], detail: Any) -> bool:
    """`states:DescribeExecution` granted on executions (`execution:`) but not on Express ones (`express:`)."""
    express = "arn:*:states:*:*:express:*:*:*"
    return "states:DescribeExecution" in _statement_actions(statement) and all(
        entry["action"] == "states:DescribeExecution" and entry["required_format"] == express for entry in detail
    )


ALLOWED: tuple[Allowance, ...] = (
    Allowance(
        "RESOURCE_MISMATCH",
        "A key policy's root statement grants `kms:*` on the key to the account, so that IAM policies "
        "can grant key use (AWS's default key policy, 'Allows access to the AWS account and enables IAM "
        "policies': https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html). In a "
        "key policy the Resource is always this key ('*' means 'this KMS key', https://docs.aws.amazon.com"
        "/kms/latest/developerguide/key-policy-overview.html); the key-less actions in `kms:*` simply do "
        "not apply. Only findings about actions that take no key resource are allowed.",
        _key_policy_kms_star,
    ),
    Allowance(
        "RESOURCE_MISMATCH",
        "Athena TagResource, UntagResource and ListTagsForResource act on 'workgroups, data catalogs, or "
        "capacity reservations' (Athena API reference, TagResource: https://docs.aws.amazon.com/athena/"
        "latest/APIReference/API_TagResource.html); parliament's definition lacks the data catalog. Only "
        "findings about those three actions on `datacatalog/...` resources are allowed (the runner's "
        "targeted update of the master's per-silo catalogs, components/master/runner_triggers.py).",
        _athena_data_catalog_tagging,
    ),
    Allowance(
        "RESOURCE_MISMATCH",
        "states:DescribeExecution lists two resource types, `execution` (Standard workflows) and `express` "
        "(Express workflows); parliament wants both. A Standard state machine's executions are `execution:` "
        "ARNs only, and AWS's least-privilege policy for a Distributed Map grants DescribeExecution on "
        "`execution:<stateMachineName>:*` alone ('IAM policies for using Distributed Map states', "
        "https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html). Only the missing "
        "`express:` format is allowed.",
        _standard_execution_describe,
    ),
)


# -- finding documents --------------------------------------------------------------------------


def _parse(value: Any) -> Optional[dict[str, Any]]:
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) and "Statement" in parsed else None
    if isinstance(value, dict) and "Statement" in value:
        return value
    return None


def _policy_strings(value: Any, path: str = "") -> Iterator[str]:
    """Input paths (under one resource) whose value is a JSON document with a top-level Statement."""
    if _parse(value) is not None:
        yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _policy_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _policy_strings(item, f"{path}[{index}]")


def _arn_of(recording: Recording, resource: RecordedResource) -> Optional[str]:
    arn = resource.outputs.get("arn")
    return arn if isinstance(arn, str) else None


def _lambda_permission(recording: Recording, permission: RecordedResource) -> PolicyDocument:
    """The statement `lambda:AddPermission` writes into the function's resource policy.

    https://docs.aws.amazon.com/lambda/latest/dg/access-control-resource-based.html: Principal is
    the service, Action the permitted action, Resource the function, and the source ARN / account
    become `ArnLike AWS:SourceArn` / `StringEquals AWS:SourceAccount` conditions.
    """
    inputs = permission.inputs
    function = inputs["function"]
    functions = {r.outputs.get("name"): r for r in recording.of_type("aws:lambda/function:Function")}
    functions.update({r.outputs.get("arn"): r for r in recording.of_type("aws:lambda/function:Function")})
    target = functions.get(function)
    function_arn = target.outputs["arn"] if target is not None else function
    principal = inputs["principal"]
    statement: dict[str, Any] = {
        "Sid": re.sub(r"[^0-9A-Za-z]", "", inputs.get("statementId") or permission.name) or "Permission",
        "Effect": "Allow",
        "Principal": {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal},
        "Action": inputs["action"],
        "Resource": function_arn,
    }
    conditions: dict[str, dict[str, Any]] = {}
    if inputs.get("sourceArn"):
        conditions["ArnLike"] = {"AWS:SourceArn": inputs["sourceArn"]}
    if inputs.get("sourceAccount"):
        conditions["StringEquals"] = {"AWS:SourceAccount": inputs["sourceAccount"]}
    if inputs.get("principalOrgId"):
        conditions.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = inputs["principalOrgId"]
    if conditions:
        statement["Condition"] = conditions
    return PolicyDocument(
        f"{permission.urn}.(function policy)",
        PERMISSION,
        {"Version": "2012-10-17", "Statement": [statement]},
        function_arn,
        permission.type,
    )


def documents(recording: Recording) -> list[PolicyDocument]:
    """Every policy document the recorded program sends AWS, classified."""
    found: list[PolicyDocument] = []
    for resource in recording.resources:
        for key, kind in POLICY_INPUTS.get(resource.type, ()):
            document = _parse(resource.inputs.get(key))
            if document is not None:
                attached = _arn_of(recording, resource) if kind in (TRUST, KEY) else None
                found.append(PolicyDocument(f"{resource.urn}.{key}", kind, document, attached, resource.type))
        if resource.type == "aws:iam/role:Role":
            for index, inline in enumerate(resource.inputs.get("inlinePolicies") or []):
                document = _parse(inline.get("policy"))
                if document is not None:
                    found.append(PolicyDocument(f"{resource.urn}.inlinePolicies[{index}]", IDENTITY, document, None, resource.type))
        if resource.type == "aws:lambda/permission:Permission":
            found.append(_lambda_permission(recording, resource))
    return found


def unclassified(recording: Recording) -> list[str]:
    """Inputs that hold policy JSON the linter does not know how to read (`<urn>.<path>`)."""
    known = {(t, key) for t, pairs in POLICY_INPUTS.items() for key, _ in pairs}
    problems = []
    for resource in recording.resources:
        for path in _policy_strings(resource.inputs):
            if (resource.type, path) in known:
                continue
            if resource.type == "aws:iam/role:Role" and re.fullmatch(r"inlinePolicies\[\d+\]\.policy", path):
                continue
            problems.append(f"{resource.urn}.{path}")
    return problems


# -- linting ------------------------------------------------------------------------------------


def _for_parliament(document: PolicyDocument) -> dict[str, Any]:
    """The document in the form parliament reads as AWS does (see the module docstring)."""
    statements = []
    for statement in document.document["Statement"]:
        statement = dict(statement)
        # Without the role's or key's ARN (a policy built outside a program), any role or key stands in.
        if document.kind == TRUST and "Resource" not in statement and "NotResource" not in statement:
            statement["Resource"] = document.resource_arn or "arn:aws:iam::*:role/*"
        if document.kind == KEY:
            resources = statement.get("Resource")
            if resources == "*" or resources == ["*"]:
                statement["Resource"] = document.resource_arn or "arn:aws:kms:*:*:key/*"
        statements.append(statement)
    return {**document.document, "Statement": statements}


@dataclass(frozen=True)
class LintFinding:
    source: str
    sid: str
    issue: str
    detail: Any

    def __str__(self) -> str:
        return f"{self.source} [{self.sid}]: {self.issue} {self.detail}"


def lint(document: PolicyDocument, allowed: Iterable[Allowance] = ALLOWED) -> list[LintFinding]:
    """Parliament's findings on `document`, minus the allowed ones, plus `arn_problems`."""
    from parliament import analyze_policy_string

    prepared = _for_parliament(document)
    policy = analyze_policy_string(json.dumps(prepared), ignore_private_auditors=True)
    allowed = tuple(allowed)
    found = [LintFinding(document.source, "(policy)", f.issue, f.detail) for f in policy._findings]
    # Parliament analyses statements in order; each keeps its own findings.
    for statement, analysed in zip(prepared["Statement"], policy.statements):
        sid = str(statement.get("Sid", "?"))
        for finding in analysed.findings:
            if any(a.issue == finding.issue and a.applies(document, statement, finding.detail) for a in allowed):
                continue
            found.append(LintFinding(document.source, sid, finding.issue, finding.detail))
        found.extend(LintFinding(document.source, sid, "ARN_FORMAT", problem) for problem in arn_problems(statement))
    return found


# -- ARN formats --------------------------------------------------------------------------------

_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov|\*):([a-z0-9-]+|\*):([a-z0-9-]*|\*):(\d{12}|\*|):(.+)$")


@lru_cache(maxsize=1)
def _service_arn_patterns() -> dict[str, list[re.Pattern[str]]]:
    """Service name in ARNs → regexes of `<region>:<account>:<resource>` of its documented ARNs.

    A variable matches anything; an empty region or account (IAM, S3 buckets, CloudFront) must stay
    empty: `arn:aws:iam:eu-west-1:...` names no IAM resource.
    """
    from parliament import iam_definition

    patterns: dict[str, list[re.Pattern[str]]] = {}
    for service in iam_definition:
        for resource in service["resources"]:
            parts = resource["arn"].split(":", 5)
            if len(parts) < 6:
                continue
            tail = re.sub(r"\\\$\\\{[^}]*\\\}", ".+", re.escape(":".join(parts[3:])))
            patterns.setdefault(parts[2], []).append(re.compile(f"^{tail}$"))
    return patterns


def _instances(arn_resource: str) -> list[str]:
    """Concrete names a policy's resource part stands for: variables and wildcards filled in.

    In IAM a `*` may span `/` (`<api-id>/*/*` covers `<api-id>/prod/POST/partners`), so a wildcard
    is tried as one segment and as several.
    """
    filled = re.sub(r"\$\{[^}]+\}", "x", arn_resource).replace("?", "x")
    return [filled.replace("*", part) for part in ("x", "x/x", "x/x/x")]


def arn_problems(statement: Mapping[str, Any]) -> list[str]:
    """ARNs in `Resource` and in ARN conditions that fit no documented format of their service."""
    arns: list[str] = []
    resources = statement.get("Resource", statement.get("NotResource", []))
    arns.extend([resources] if isinstance(resources, str) else resources)
    for operator, block in (statement.get("Condition") or {}).items():
        if operator.replace("IfExists", "").split(":")[-1] in ("ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"):
            for values in block.values():
                arns.extend([values] if isinstance(values, str) else values)
    problems = []
    patterns = _service_arn_patterns()
    for arn in arns:
        if arn == "*":
            continue
        match = _ARN.match(arn)
        if not match:
            problems.append(f"{arn}: not arn:<partition>:<service>:<region>:<account>:<resource>")
            continue
        service = match.group(2)
        resource_part = ":".join(match.group(3, 4, 5))
        if service == "*":
            continue
        if service not in patterns:
            problems.append(f"{arn}: no AWS service uses {service!r} in its ARNs")
            continue
        if not any(p.match(name) for p in patterns[service] for name in _instances(resource_part)):
            problems.append(f"{arn}: fits no {service} resource ARN format")
    return problems


def lint_all(documents_: Iterable[PolicyDocument]) -> list[str]:
    return [str(f) for document in documents_ for f in lint(document)]
