"""Service rules: Lambda functions (supported runtime, bounded concurrency), Transfer Family servers
(a current security policy), and the other services we encrypt (SNS topics, Athena results).
"""

from __future__ import annotations

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .documents import config_of

# --- Lambda -----------------------------------------------------------------------------------------

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
MAX_PROVISIONED_CONCURRENCY = 5


def validate_lambda_function(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig":
        limit = int(config_of(args).get("maxProvisionedConcurrency", MAX_PROVISIONED_CONCURRENCY))
        value = args.props.get("provisionedConcurrentExecutions")
        if value is None or not 1 <= int(value) <= limit:
            report_violation(f"provisioned concurrency {value} is outside 1..{limit}: it is billed while idle")
        return
    if args.resource_type != "aws:lambda/function:Function":
        return
    if args.props.get("packageType", "Zip") == "Zip":
        allowed = tuple(config_of(args).get("allowedRuntimes") or SUPPORTED_LAMBDA_RUNTIMES)
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


# --- Transfer Family, and the other services we encrypt ---------------------------------------------

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
