"""The project's security rules as CrossGuard policies, importable without starting a server.

Every rule works by resource type, never by our component names, so a component added later is
judged the moment it registers an S3 bucket, a key, a policy document, a Lambda function, an API
stage or a Transfer server. `policy/__main__.py` builds the pack from `POLICIES`; tests call each
policy's `validate` directly with the camelCase inputs the engine (and our mocks) hand over.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
ORG_CONDITION_KEYS = ("aws:principalorgpaths", "aws:principalorgid")
# Stacks the runner creates are named `silo-<account id>`: the account a silo's policies may name.
SILO_STACK = re.compile(r"^urn:pulumi:silo-(\d{12})::")
ACCOUNT_IN_TEXT = re.compile(r"(?<![0-9])(\d{12})(?![0-9])")
ACCOUNT_PRINCIPAL = re.compile(r"^(?:arn:aws[a-z-]*:(?:iam|sts)::)?(\d{12})(?::|$)")

# Lambda runtimes not deprecated as of 2026-11 (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html).
# Override with the policy's `allowedRuntimes` config when AWS's table moves.
SUPPORTED_LAMBDA_RUNTIMES = (
    "python3.11", "python3.12", "python3.13", "python3.14",
    "nodejs22.x", "nodejs24.x",
    "java17", "java21", "java25",
    "dotnet8", "dotnet10",
    "ruby3.3", "ruby3.4",
    "provided.al2023",
)
# Transfer Family server policies from 2024 on (https://docs.aws.amazon.com/transfer/latest/userguide/security-policies.html);
# the provider's default, TransferSecurityPolicy-2018-11, still allows SHA-1 and CBC ciphers.
CURRENT_TRANSFER_POLICIES = (
    "TransferSecurityPolicy-2024-01",
    "TransferSecurityPolicy-2025-03",
    "TransferSecurityPolicy-FIPS-2024-01",
    "TransferSecurityPolicy-FIPS-2024-05",
    "TransferSecurityPolicy-FIPS-2025-03",
    "TransferSecurityPolicy-Restricted-2024-06",
    "TransferSecurityPolicy-SshAuditCompliant-2025-02",
    "TransferSecurityPolicy-AS2Restricted-2025-07",
)
MAX_PROVISIONED_CONCURRENCY = 5
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


# --- reading policy documents -------------------------------------------------------------------

def _is_list(value: Any) -> bool:
    # The engine hands policies read-only Mapping/Sequence proxies, not dicts and lists.
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if _is_list(value) else [value]


def _plain(value: Any) -> Any:
    """Proxies → dicts and lists (touching an unknown value during preview raises, as it should)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if _is_list(value):
        return [_plain(v) for v in value]
    return value


def _document(value: Any) -> Optional[Mapping[str, Any]]:
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, Mapping) and "Statement" in value:
        return _plain(value)
    return None


def policy_documents(props: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every IAM/resource policy document anywhere in a resource's inputs: (property path, document).

    Finds `policy`, `assumeRolePolicy`, `inlinePolicies[*].policy` and any other property that holds
    a policy document, as JSON text or as an object.
    """
    for key, value in props.items():
        where = f"{path}{key}"
        document = _document(value)
        if document is not None:
            yield where, document
        elif isinstance(value, Mapping):
            yield from policy_documents(value, f"{where}.")
        elif _is_list(value):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from policy_documents(item, f"{where}[{index}].")


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, Mapping)]


def _allows(statement: Mapping[str, Any]) -> bool:
    return statement.get("Effect") == "Allow"


def _label(statement: Mapping[str, Any]) -> str:
    return f"statement {statement.get('Sid') or '(no Sid)'}"


def condition_keys(statement: Mapping[str, Any]) -> set[str]:
    """Condition keys of a statement, lowercased, whatever the operator."""
    keys = set()
    for block in (statement.get("Condition") or {}).values():
        if isinstance(block, Mapping):
            keys.update(str(k).lower() for k in block)
    return keys


def has_org_condition(statement: Mapping[str, Any]) -> bool:
    return bool(condition_keys(statement) & set(ORG_CONDITION_KEYS))


def aws_principals(statement: Mapping[str, Any]) -> list[str]:
    """The `AWS` principals of a statement; `"Principal": "*"` counts as `*`."""
    principal = statement.get("Principal")
    if principal is None:
        return []
    if isinstance(principal, str):
        return [principal]
    if isinstance(principal, Mapping):
        return [str(p) for p in _as_list(principal.get("AWS"))]
    return []


def principal_account(principal: str) -> Optional[str]:
    match = ACCOUNT_PRINCIPAL.match(principal)
    return match.group(1) if match else None


def home_account(urn: str, config: Mapping[str, Any]) -> Optional[str]:
    """The account a stack deploys into: from a `silo-<account>` stack name, else the policy config
    (`homeAccountId`, or `masterAccountId`: a stack that is not a silo is the master)."""
    match = SILO_STACK.match(urn)
    if match:
        return match.group(1)
    value = config.get("homeAccountId") or config.get("masterAccountId")
    return str(value) if value else None


def accounts_a_silo_may_name(home: Optional[str], config: Mapping[str, Any]) -> set[Optional[str]]:
    """Its own account, the master (`masterAccountId`: not a silo, its Athena catalogs query every
    silo) and `trustedAccountIds`; never another silo's account."""
    allowed = {home, *(str(a) for a in _as_list(config.get("trustedAccountIds")))}
    if config.get("masterAccountId"):
        allowed.add(str(config["masterAccountId"]))
    return allowed


def _config(args: Any) -> Mapping[str, Any]:
    try:
        return args.get_config() or {}
    except AttributeError:
        return {}


# --- S3 ------------------------------------------------------------------------------------------

BUCKET_PARTS = {
    "versioning": "aws:s3/bucketVersioning:BucketVersioning",
    "versioningV2": "aws:s3/bucketVersioningV2:BucketVersioningV2",
    "encryption": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "encryptionV2": "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    "publicAccess": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "ownership": "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "policy": "aws:s3/bucketPolicy:BucketPolicy",
}
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _urn(resource: Any) -> str:
    return resource if isinstance(resource, str) else resource.urn


def _bucket_of(part: Any, buckets: Mapping[str, Any]) -> Optional[str]:
    """URN of the bucket a bucket-configuration resource configures.

    During a preview the `bucket` input of a new bucket's parts is unknown, so the dependency on the
    bucket decides; when a part depends on several buckets, the `bucket` value picks one.
    """
    deps = getattr(part, "property_dependencies", {}).get("bucket") or getattr(part, "dependencies", [])
    candidates = [_urn(d) for d in deps if _urn(d) in buckets]
    if len(candidates) == 1:
        return candidates[0]
    name = part.props.get("bucket")
    for urn, bucket in buckets.items():
        if name is not None and name in (bucket.props.get("bucket"), bucket.props.get("id")):
            return urn
    return None


def tls_deny_statement(document: Mapping[str, Any]) -> bool:
    """A statement denying every S3 action to everyone when `aws:SecureTransport` is false."""
    for s in statements(document):
        actions = [str(a).lower() for a in _as_list(s.get("Action"))]
        bool_block = {str(k).lower(): v for k, v in ((s.get("Condition") or {}).get("Bool") or {}).items()}
        if (
            s.get("Effect") == "Deny"
            and "*" in aws_principals(s)
            and ("s3:*" in actions or "*" in actions)
            and str(bool_block.get("aws:securetransport")).lower() == "false"
        ):
            return True
    return False


def bucket_problems(bucket: Any, parts: Mapping[str, list[Any]]) -> list[str]:
    """What a bucket lacks of the baseline; `parts` maps part kind → resources configuring it."""
    props = bucket.props
    problems = []

    versioning = parts.get("versioning", []) + parts.get("versioningV2", [])
    inline_versioning = (props.get("versioning") or {}).get("enabled") is True
    if not inline_versioning and not any(
        (v.props.get("versioningConfiguration") or {}).get("status") == "Enabled" for v in versioning
    ):
        problems.append("versioning is not Enabled (add aws.s3.BucketVersioning with status 'Enabled')")

    def kms_rules(rules: Any) -> bool:
        defaults = [(r or {}).get("applyServerSideEncryptionByDefault") or {} for r in _as_list(rules)]
        return bool(defaults) and all(
            d.get("sseAlgorithm") in ("aws:kms", "aws:kms:dsse") and d.get("kmsMasterKeyId") for d in defaults
        )

    inline_sse = (props.get("serverSideEncryptionConfiguration") or {}).get("rule")
    encryption = parts.get("encryption", []) + parts.get("encryptionV2", [])
    if not (inline_sse and kms_rules(inline_sse)) and not any(kms_rules(e.props.get("rules")) for e in encryption):
        problems.append(
            "default encryption is not SSE-KMS with a customer key (add BucketServerSideEncryptionConfiguration "
            "with sseAlgorithm 'aws:kms' and kmsMasterKeyId)"
        )

    blocks = parts.get("publicAccess", [])
    if not any(all(b.props.get(flag) is True for flag in PUBLIC_ACCESS_FLAGS) for b in blocks):
        problems.append(f"public access is not fully blocked (set all of {', '.join(PUBLIC_ACCESS_FLAGS)} to true)")

    ownership = parts.get("ownership", [])
    if not any((o.props.get("rule") or {}).get("objectOwnership") == "BucketOwnerEnforced" for o in ownership):
        problems.append("object ownership is not BucketOwnerEnforced (ACLs stay active)")

    documents = [d for p in parts.get("policy", []) for d in [_document(p.props.get("policy"))] if d is not None]
    inline_policy = _document(props.get("policy"))
    if inline_policy is not None:
        documents.append(inline_policy)
    if not any(tls_deny_statement(d) for d in documents):
        problems.append("no bucket policy statement denies s3:* when aws:SecureTransport is false")
    return problems


def validate_buckets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    buckets = {r.urn: r for r in args.resources if r.resource_type in BUCKET_TYPES}
    parts: dict[str, dict[str, list[Any]]] = {urn: {} for urn in buckets}
    kinds = {token: kind for kind, token in BUCKET_PARTS.items()}
    for resource in args.resources:
        kind = kinds.get(resource.resource_type)
        if kind is None:
            continue
        owner = _bucket_of(resource, buckets)
        if owner is not None:
            parts[owner].setdefault(kind, []).append(resource)
    for urn, bucket in buckets.items():
        for problem in bucket_problems(bucket, parts[urn]):
            report_violation(f"S3 bucket {bucket.name}: {problem}", urn)


s3_bucket_baseline = StackValidationPolicy(
    name="s3-bucket-baseline",
    description="Every S3 bucket: SSE-KMS, versioning, all four public-access-block flags, a TLS-deny policy, "
    "BucketOwnerEnforced.",
    validate=validate_buckets,
)


# --- KMS -----------------------------------------------------------------------------------------

def validate_key_rotation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:kms/key:Key":
        return
    spec = args.props.get("customerMasterKeySpec") or args.props.get("keySpec") or "SYMMETRIC_DEFAULT"
    if spec != "SYMMETRIC_DEFAULT":
        return  # AWS rotates only symmetric encryption keys.
    if args.props.get("enableKeyRotation") is not True:
        report_violation("KMS key: enableKeyRotation must be true (yearly rotation of the key material)")


kms_key_rotation = ResourceValidationPolicy(
    name="kms-key-rotation",
    description="Every symmetric KMS key rotates its key material.",
    validate=validate_key_rotation,
)

KEY_POLICY_TYPES = ("aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy", "aws:kms/replicaKey:ReplicaKey")


def validate_key_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in KEY_POLICY_TYPES:
        return
    document = _document(args.props.get("policy"))
    for s in statements(document) if document else []:
        if _allows(s) and "*" in aws_principals(s) and not has_org_condition(s):
            report_violation(
                f"KMS key policy {_label(s)} allows principal '*' without an aws:PrincipalOrgPaths or "
                "aws:PrincipalOrgID condition: anyone in any account could use the key"
            )


kms_key_policy_org_scoped = ResourceValidationPolicy(
    name="kms-key-policy-org-scoped",
    description="No KMS key policy statement allows principal '*' without an org-path condition.",
    validate=validate_key_policy,
)


# --- IAM statements everywhere --------------------------------------------------------------------

def _wildcard_problems(s: Mapping[str, Any]) -> list[str]:
    actions = [str(a).lower() for a in _as_list(s.get("Action"))]
    resources = [str(r) for r in _as_list(s.get("Resource"))]
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
            if not _allows(s):
                continue
            for problem in _wildcard_problems(s):
                report_violation(f"{where} {_label(s)} {problem}; name the actions and resources it needs")


iam_no_admin_wildcards = ResourceValidationPolicy(
    name="iam-no-admin-wildcards",
    description="No policy statement allows '*' on '*', iam:*, or s3:* on '*'.",
    validate=validate_no_admin_wildcards,
)


# --- resource policies: org-scoped, and a silo names no other account ------------------------------

def validate_resource_policies(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    config = _config(args)
    home = home_account(args.urn, config)
    may_name = accounts_a_silo_may_name(home, config)
    is_silo = SILO_STACK.match(args.urn) is not None
    for where, document in policy_documents(args.props):
        for s in statements(document):
            if "Principal" not in s:
                continue  # an identity policy; iam-no-admin-wildcards judges those
            if _allows(s):
                outside = [
                    p for p in aws_principals(s)
                    if p == "*" or (home is not None and principal_account(p) not in (None, home))
                ]
                if outside and not has_org_condition(s):
                    report_violation(
                        f"{where} {_label(s)} grants to {', '.join(sorted(set(outside)))} outside this account "
                        "without an aws:PrincipalOrgPaths or aws:PrincipalOrgID condition"
                    )
            if is_silo:
                named = set(ACCOUNT_IN_TEXT.findall(json.dumps(s))) - may_name
                if named:
                    report_violation(
                        f"{where} {_label(s)} names account(s) {', '.join(sorted(named))}: a silo's resource "
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


# --- Lambda --------------------------------------------------------------------------------------

def validate_lambda_function(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig":
        limit = int(_config(args).get("maxProvisionedConcurrency", MAX_PROVISIONED_CONCURRENCY))
        value = args.props.get("provisionedConcurrentExecutions")
        if value is None or not 1 <= int(value) <= limit:
            report_violation(f"provisioned concurrency {value} is outside 1..{limit}: it is billed while idle")
        return
    if args.resource_type != "aws:lambda/function:Function":
        return
    if args.props.get("packageType", "Zip") == "Zip":
        allowed = tuple(_config(args).get("allowedRuntimes") or SUPPORTED_LAMBDA_RUNTIMES)
        runtime = args.props.get("runtime")
        if runtime not in allowed:
            report_violation(f"Lambda runtime {runtime!r} is not a supported runtime; use one of {', '.join(allowed)}")
    if "reservedConcurrentExecutions" in args.props:
        reserved = args.props.get("reservedConcurrentExecutions")
        if reserved is None or int(reserved) < 0:
            report_violation(
                f"reservedConcurrentExecutions is {reserved} (unlimited); set a bound so one function cannot "
                "take the account's whole concurrency"
            )


lambda_function_baseline = ResourceValidationPolicy(
    name="lambda-function-baseline",
    description="Lambda functions use a supported runtime; reserved/provisioned concurrency is bounded where set.",
    validate=validate_lambda_function,
    config_schema=PolicyConfigSchema(
        properties={
            "allowedRuntimes": {"type": "array", "items": {"type": "string"}},
            "maxProvisionedConcurrency": {"type": "integer"},
        }
    ),
)


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
        candidates += [by_urn.get(_urn(d)) for d in deps]
        candidates += [
            by_urn.get(_urn(d))
            for d in function.dependencies
            if _urn(d) in by_urn and str(by_urn[_urn(d)].props.get("name", "")).startswith("/aws/lambda/")
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


# --- API Gateway, Transfer Family, and the other services we encrypt ----------------------------------

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


def validate_transfer_server(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:transfer/server:Server":
        return
    name = args.props.get("securityPolicyName") or "TransferSecurityPolicy-2018-11 (the provider default)"
    if name not in CURRENT_TRANSFER_POLICIES:
        report_violation(
            f"Transfer server security policy {name} is outdated; use one of {', '.join(CURRENT_TRANSFER_POLICIES)}"
        )


transfer_security_policy = ResourceValidationPolicy(
    name="transfer-server-security-policy",
    description="Transfer Family servers use a current security policy.",
    validate=validate_transfer_server,
)


def validate_encrypted_services(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = args.props
    if args.resource_type == "aws:sns/topic:Topic" and not props.get("kmsMasterKeyId"):
        report_violation("SNS topic: kmsMasterKeyId is not set; encrypt messages at rest with a customer key")
    if args.resource_type == "aws:athena/workgroup:Workgroup":
        configuration = props.get("configuration") or {}
        encryption = (configuration.get("resultConfiguration") or {}).get("encryptionConfiguration") or {}
        if configuration.get("enforceWorkgroupConfiguration") is not True:
            report_violation("Athena workgroup: enforceWorkgroupConfiguration must be true (clients could drop encryption)")
        if encryption.get("encryptionOption") not in ("SSE_KMS", "CSE_KMS"):
            report_violation("Athena workgroup: query results must be encrypted with SSE_KMS or CSE_KMS")


encrypted_services = ResourceValidationPolicy(
    name="encrypted-topics-and-query-results",
    description="SNS topics are KMS-encrypted; Athena workgroups enforce KMS-encrypted results.",
    validate=validate_encrypted_services,
)


# --- issue 12: encrypted log groups, none left to services, trust tied to this account --------------

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
            if _allows(s) and _grants(_as_list(s.get("Action")), "logs:CreateLogGroup"):
                report_violation(
                    f"{where} {_label(s)} allows logs:CreateLogGroup: a group a service makes itself has no "
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
        return [f"/aws/redshift/{props.get('namespaceName')}/{t}" for t in _as_list(props.get("logExports"))]
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


def _services(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    return [str(p) for p in _as_list(principal.get("Service"))] if isinstance(principal, Mapping) else []


def validate_service_trust(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:iam/role:Role":
        return
    document = _document(args.props.get("assumeRolePolicy"))
    for s in statements(document) if document else []:
        services = [svc for svc in _services(s) if svc in SERVICES_SENDING_SOURCE_KEYS]
        if _allows(s) and services and not condition_keys(s) & set(CONFUSED_DEPUTY_KEYS):
            report_violation(
                f"trust policy {_label(s)} lets {', '.join(services)} assume the role for any account: add "
                "aws:SourceAccount (iam.account_service_trust) or aws:SourceArn, which these services send"
            )


service_trust_confused_deputy = ResourceValidationPolicy(
    name="service-trust-source-conditions",
    description="Roles trusted by services that send aws:SourceAccount/aws:SourceArn are tied to them "
    "(confused-deputy guard).",
    validate=validate_service_trust,
)


POLICIES = [
    s3_bucket_baseline,
    kms_key_rotation,
    kms_key_policy_org_scoped,
    iam_no_admin_wildcards,
    resource_policy_org_scoped,
    lambda_function_baseline,
    log_group_retention,
    lambda_log_group,
    apigateway_access_logging,
    transfer_security_policy,
    encrypted_services,
    log_group_encryption,
    no_create_log_group,
    service_log_groups,
    service_trust_confused_deputy,
]
ENFORCEMENT = EnforcementLevel.MANDATORY
