"""The project's security rules as CrossGuard policies, importable without starting a server.

Every rule works by resource type, never by our component names, so a component added later is
judged the moment it registers an S3 bucket, a key, a policy document, a Lambda function, an API
stage or a Transfer server. The rules are grouped by area: `storage.py` (S3, KMS), `access.py` (IAM
statements, resource policies, service trust), `logs.py` (log groups, Lambda and API logging) and
`services.py` (Lambda, Transfer, encrypted topics and query results), over the document readers of
`documents.py`. `policy/__main__.py` builds the pack from `POLICIES`; tests call each policy's
`validate` directly with the camelCase inputs the engine (and our mocks) hand over.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel

from .access import iam_no_admin_wildcards, resource_policy_org_scoped, service_trust_confused_deputy
from .logs import (
    apigateway_access_logging,
    lambda_log_group,
    log_group_encryption,
    log_group_retention,
    no_create_log_group,
    service_log_groups,
)
from .services import encrypted_services, lambda_function_baseline, transfer_security_policy
from .storage import kms_key_policy_org_scoped, kms_key_rotation, s3_bucket_baseline

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
