"""The documents bootstrap writes. Built with the program's own helpers (components/shared/iam.py,
secure_bucket.py), so the state bucket has the posture of every bucket the programs create."""

from __future__ import annotations

import json
from typing import Any

from components.shared.encryption import key_admin_statement
from components.shared.iam import policy_document, statement, trust_statement
from components.shared.secure_bucket import access_log_delivery_statement, baseline_bucket_statements
from components.shared.storage import access_log_encryption_statement

from .settings import DELIVERY_DEPLOY_ROLE_PATTERN, OPERATOR_ARN, BootstrapSettings

MASTER_STACK_TAG = {"datalake:stack": "master"}
ABORT_MULTIPART_DAYS = 7


def trust_policy(s: BootstrapSettings) -> dict[str, Any]:
    """Who may become the deployer: the pipeline's deploy project and the given operators, by ARN pattern.

    The principal is each account's root, narrowed by `aws:PrincipalArn`: a role that does not exist
    yet (the pipeline's, created by the first `pulumi up -s master`) cannot be named directly.
    """
    patterns = [s.role_arn(DELIVERY_DEPLOY_ROLE_PATTERN), *s.operators]
    accounts = sorted({s.account_id} | {OPERATOR_ARN.match(arn).group(1) for arn in s.operators})  # type: ignore[union-attr]
    assume = trust_statement(
        "AssumeFromDeliveryPipelineAndOperators",
        {"AWS": [f"arn:{s.partition}:iam::{account}:root" for account in accounts]},
        {"ArnLike": {"aws:PrincipalArn": patterns}},
    )
    return policy_document([assume])


def key_policy(s: BootstrapSettings) -> dict[str, Any]:
    """The state key: administered through the account's IAM, used by the deployer, the runner and the
    pipeline's deploy project (by name: they are created later), and by S3 log delivery."""
    use = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    return policy_document(
        [
            key_admin_statement(s.account),
            statement("UseStateKeyAsDeployer", use, "*", principal={"AWS": s.role_arn(s.deployer_role)}),
            statement(
                "UseStateKeyAsRunnerAndPipeline",
                use,
                "*",
                principal={"AWS": "*"},
                conditions={
                    "StringEquals": {"aws:PrincipalAccount": s.account_id},
                    "ArnLike": {"aws:PrincipalArn": [s.role_arn(s.runner_role), s.role_arn(DELIVERY_DEPLOY_ROLE_PATTERN)]},
                },
            ),
            access_log_encryption_statement(s.account),
        ]
    )


def bucket_policy(s: BootstrapSettings, bucket: str, key_arn: str, *, receives_logs: bool) -> dict[str, Any]:
    statements = baseline_bucket_statements(s.bucket_arn(bucket), key_arn)
    if receives_logs:
        statements.append(access_log_delivery_statement(s.bucket_arn(bucket), s.account))
    return policy_document(statements)


def lifecycle_rules(s: BootstrapSettings, *, log_bucket: bool) -> list[dict[str, Any]]:
    """Noncurrent state versions stay `noncurrent_days` (the restore window); current state never expires."""
    everything = {"Prefix": ""}
    rules: list[dict[str, Any]] = [
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": everything,
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
        },
        {
            "ID": "expire-noncurrent-versions",
            "Status": "Enabled",
            "Filter": everything,
            "NoncurrentVersionExpiration": {"NoncurrentDays": s.noncurrent_days},
        },
    ]
    if log_bucket:
        rules.append({"ID": "expire-current-objects", "Status": "Enabled", "Filter": everything, "Expiration": {"Days": s.log_expiration_days}})
    return rules


def deployer_policy(s: BootstrapSettings, key_arn: str) -> dict[str, Any]:
    """What `pulumi up -s master` needs, scoped to the names the master program gives its resources.

    One statement per resource family of components/master/account.py (the test maps every resource type of
    the master program to one of them). Explicit denies keep the deployer away from the backend's own
    configuration and from its own role.
    """
    p, a, prefix = s.partition, s.account_id, s.name_prefix
    arn = s.account.arn
    state, logs_bucket = s.bucket_arn(s.state_bucket), s.bucket_arn(s.log_bucket)
    master_buckets = s.bucket_arn(f"{prefix}-master-*")
    master_roles = [s.role_arn(f"{prefix}-*"), s.role_arn("master-delivery-*")]
    master_tagged = {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in MASTER_STACK_TAG.items()}}
    org = s.organization_id
    # What the master's SecureBucket children write (no ACLs, CORS or websites: ownership is enforced).
    bucket_config_writes = [
        "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketVersioning", "s3:PutBucketPublicAccessBlock",
        "s3:PutBucketOwnershipControls", "s3:PutBucketLogging", "s3:PutBucketTagging", "s3:PutBucketNotification",
        # Deleting a lifecycle or an encryption configuration is authorised as the matching Put.
        "s3:PutLifecycleConfiguration", "s3:PutEncryptionConfiguration",
    ]
    return policy_document(
        [
            statement("ListPulumiState", ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning"], state),
            statement("ReadWritePulumiState", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], f"{state}/*"),
            statement("UsePulumiStateKey", ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], key_arn),
            # The backend's protections are bootstrap's, not the master stack's; old versions are the restore points.
            statement(
                "ProtectPulumiBackend",
                ["s3:PutBucket*", "s3:DeleteBucket*", "s3:PutLifecycleConfiguration", "s3:PutEncryptionConfiguration"],
                [state, logs_bucket],
                effect="Deny",
            ),
            statement("KeepPulumiStateVersions", "s3:DeleteObjectVersion", [f"{state}/*", f"{logs_bucket}/*"], effect="Deny"),
            # Master buckets are retained on delete: the stack never deletes one.
            statement(
                "ManageMasterBuckets",
                [
                    "s3:CreateBucket", "s3:ListBucket", "s3:GetBucket*", "s3:GetLifecycleConfiguration",
                    "s3:GetEncryptionConfiguration", "s3:GetAccelerateConfiguration", "s3:GetReplicationConfiguration",
                    *bucket_config_writes,
                ],
                master_buckets,
            ),
            statement(
                "CreateMasterKey",
                "kms:CreateKey",
                "*",
                conditions={"StringEquals": {f"aws:RequestTag/{k}": v for k, v in MASTER_STACK_TAG.items()}},
            ),
            statement("ListKeyAliases", "kms:ListAliases", "*"),
            statement(
                "ManageMasterKey",
                [
                    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags",
                    "kms:EnableKeyRotation", "kms:PutKeyPolicy", "kms:TagResource", "kms:UntagResource",
                    "kms:UpdateKeyDescription",
                ],
                arn("kms", "key/*"),
                conditions=master_tagged,
            ),
            # Alias actions are authorised on the alias and on the key; the alias name is what is scoped.
            statement(
                "ManageMasterKeyAlias",
                ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
                [arn("kms", f"alias/{prefix}-master"), arn("kms", "key/*")],
            ),
            statement(
                "ManageMasterRoles",
                [
                    "iam:CreateRole", "iam:GetRole", "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateRoleDescription",
                    "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags",
                    "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
                    "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
                ],
                master_roles,
            ),
            statement(
                "PassMasterRolesToTheirServices",
                "iam:PassRole",
                master_roles,
                conditions={"StringEquals": {"iam:PassedToService": ["codebuild.amazonaws.com", "codepipeline.amazonaws.com", "events.amazonaws.com"]}},
            ),
            statement("ProtectDeployerRole", "iam:*", s.role_arn(s.deployer_role), effect="Deny"),
            statement(
                "CreateNotificationsServiceRole",
                "iam:CreateServiceLinkedRole",
                f"arn:{p}:iam::{a}:role/aws-service-role/codestar-notifications.amazonaws.com/*",
                conditions={"StringEquals": {"iam:AWSServiceName": "codestar-notifications.amazonaws.com"}},
            ),
            statement(
                "ManageAlertTopic",
                [
                    "sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
                    "sns:TagResource", "sns:UntagResource", "sns:ListTagsForResource",
                ],
                arn("sns", f"{prefix}-*"),
            ),
            statement(
                "ManageAnalytics",
                [
                    "athena:CreateWorkGroup", "athena:GetWorkGroup", "athena:UpdateWorkGroup", "athena:DeleteWorkGroup",
                    "athena:CreateDataCatalog", "athena:GetDataCatalog", "athena:UpdateDataCatalog", "athena:DeleteDataCatalog",
                    "athena:TagResource", "athena:UntagResource", "athena:ListTagsForResource",
                ],
                [arn("athena", f"workgroup/{prefix}-*"), arn("athena", f"datacatalog/{s.athena_catalog_prefix}*")],
            ),
            statement(
                "ManageBuildLogGroups",
                [
                    "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
                    "logs:AssociateKmsKey", "logs:DisassociateKmsKey", "logs:TagResource", "logs:UntagResource",
                    "logs:ListTagsForResource", "logs:TagLogGroup", "logs:UntagLogGroup", "logs:ListTagsLogGroup",
                ],
                [arn("logs", f"log-group:/aws/codebuild/{prefix}-*"), arn("logs", f"log-group:/aws/codebuild/{prefix}-*:*")],
            ),
            statement("DescribeLogGroups", "logs:DescribeLogGroups", "*"),
            statement(
                "ManageBuildProjects",
                ["codebuild:CreateProject", "codebuild:UpdateProject", "codebuild:DeleteProject", "codebuild:BatchGetProjects"],
                arn("codebuild", f"project/{prefix}-*"),
            ),
            statement(
                "ManageDeliveryPipeline",
                [
                    "codepipeline:CreatePipeline", "codepipeline:UpdatePipeline", "codepipeline:DeletePipeline",
                    "codepipeline:GetPipeline", "codepipeline:TagResource", "codepipeline:UntagResource",
                    "codepipeline:ListTagsForResource",
                ],
                arn("codepipeline", f"{prefix}-*"),
            ),
            statement("CreateSourceConnection", ["codestar-connections:CreateConnection", "codeconnections:CreateConnection"], "*"),
            *[
                statement(
                    f"ManageSourceConnection{label}",
                    [
                        f"{service}:DeleteConnection", f"{service}:GetConnection",
                        f"{service}:PassConnection", f"{service}:TagResource", f"{service}:UntagResource",
                        f"{service}:ListTagsForResource",
                    ],
                    arn(service, "connection/*"),
                )
                # The service was renamed; a connection answers to both namespaces.
                for label, service in (("", "codestar-connections"), ("CodeConnections", "codeconnections"))
            ],
            statement(
                "ManageFailureNotifications",
                [
                    "codestar-notifications:CreateNotificationRule", "codestar-notifications:DeleteNotificationRule",
                    "codestar-notifications:DescribeNotificationRule", "codestar-notifications:UpdateNotificationRule",
                    "codestar-notifications:TagResource", "codestar-notifications:UntagResource",
                    "codestar-notifications:ListTagsForResource",
                ],
                arn("codestar-notifications", "notificationrule/*"),
            ),
            statement(
                "ManageRunnerSchedules",
                [
                    "events:PutRule", "events:DeleteRule", "events:DescribeRule", "events:EnableRule", "events:DisableRule",
                    "events:PutTargets", "events:RemoveTargets", "events:ListTargetsByRule", "events:TagResource",
                    "events:UntagResource", "events:ListTagsForResource",
                ],
                # The Organizations-events rule lives in us-east-1 whatever the master region.
                f"arn:{p}:events:*:{a}:rule/{prefix}-*",
            ),
            statement(
                "ReadSiloOrganization",
                [
                    "organizations:ListChildren", "organizations:ListAccountsForParent",
                    "organizations:ListOrganizationalUnitsForParent", "organizations:ListParents",
                    "organizations:DescribeAccount", "organizations:DescribeOrganizationalUnit",
                    "organizations:ListTagsForResource",
                ],
                [
                    f"arn:{p}:organizations::{a}:root/{org}/r-*",
                    f"arn:{p}:organizations::{a}:ou/{org}/ou-*",
                    f"arn:{p}:organizations::{a}:account/{org}/*",
                ],
            ),
        ]
    )


def aws_form(document: Any) -> Any:
    """One-element lists as scalars: the form AWS documents and returns, and the one moto's
    log-delivery check of `PutBucketLogging` reads."""
    if isinstance(document, dict):
        return {k: aws_form(v) for k, v in document.items()}
    if isinstance(document, list):
        items = [aws_form(v) for v in document]
        return items[0] if len(items) == 1 and not isinstance(items[0], dict) else items
    return document


def dumps(document: Any) -> str:
    return json.dumps(aws_form(document), separators=(",", ":"))
