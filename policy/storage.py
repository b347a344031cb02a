"""Storage rules: the S3 bucket baseline (a stack-wide check, since a bucket's settings are separate
resources) and KMS keys (rotation; key policies scoped to the organization).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .documents import allows, as_list, aws_principals, document_of, has_org_condition, label, statements, urn_of

# --- S3 ---------------------------------------------------------------------------------------------

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
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


def _bucket_of(part: Any, buckets: Mapping[str, Any]) -> Optional[str]:
    """URN of the bucket a bucket-configuration resource configures.

    During a preview the `bucket` input of a new bucket's parts is unknown, so the dependency on the
    bucket decides; when a part depends on several buckets, the `bucket` value picks one.
    """
    deps = getattr(part, "property_dependencies", {}).get("bucket") or getattr(part, "dependencies", [])
    candidates = [urn_of(d) for d in deps if urn_of(d) in buckets]
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
        actions = [str(a).lower() for a in as_list(s.get("Action"))]
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
        defaults = [(r or {}).get("applyServerSideEncryptionByDefault") or {} for r in as_list(rules)]
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

    documents = [d for p in parts.get("policy", []) for d in [document_of(p.props.get("policy"))] if d is not None]
    inline_policy = document_of(props.get("policy"))
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


# --- KMS --------------------------------------------------------------------------------------------

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
    document = document_of(args.props.get("policy"))
    for s in statements(document) if document else []:
        if allows(s) and "*" in aws_principals(s) and not has_org_condition(s):
            report_violation(
                f"KMS key policy {label(s)} allows principal '*' without an aws:PrincipalOrgPaths or "
                "aws:PrincipalOrgID condition: anyone in any account could use the key"
            )


kms_key_policy_org_scoped = ResourceValidationPolicy(
    name="kms-key-policy-org-scoped",
    description="No KMS key policy statement allows principal '*' without an org-path condition.",
    validate=validate_key_policy,
)
