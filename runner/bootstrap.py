"""`python -m runner bootstrap`: the Pulumi backend of the master account, created once with boto3.

What exists before the first `pulumi login` (docs/operations.md):

- the **state key** `alias/<namePrefix>-pulumi-state` (rotation on): SSE-KMS key of the state bucket
  and the `awskms://` secrets provider of the master stack. A key of its own, not the master key:
  the master key is created *by* the master stack, so it cannot encrypt that stack's secrets before
  the stack exists, and a backend must not depend on the stack it stores;
- the **state bucket** (`runner.stateBucket`, default `<prefix>-master-pulumi-state-<account>`):
  versioned, SSE-KMS with the state key, TLS-only, all four public-access flags, BucketOwnerEnforced,
  noncurrent versions kept `--noncurrent-days` (default 90) for restores, server access logging to
- the **state log bucket** `<prefix>-master-state-logs-<account>` with the same protections;
- the **master deployer role** (`delivery.masterDeployRoleName`, default `datalake-master-deployer`):
  what `pulumi up -s master` needs and no more, assumable by the delivery pipeline's deploy project
  and by the `--operator` principals.

Idempotent: what exists is read and checked, never changed. A setting weaker than bootstrap's (no
versioning, another key, public access partly open, rotation off, a broader role policy) is a
*finding*: reported with the fix, and the command exits 1. `--dry-run` only reads.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from components.master.config import MasterConfig
from components.shared.environments import master_stack_name
from components.shared.encryption import key_admin_statement
from components.shared.errors import UsageError
from components.shared.iam import AccountContext, partition_of, policy_document, statement, trust_statement
from components.shared.naming import plain_bucket_name
from components.shared.secure_bucket import access_log_delivery_statement, baseline_bucket_statements
from components.shared.storage import access_log_encryption_statement

log = logging.getLogger("runner.bootstrap")

DEFAULT_DEPLOYER_ROLE = "datalake-master-deployer"


def default_deployer_role(config: MasterConfig) -> str:
    """`datalake-master-deployer`; in environment `<env>` `<namePrefix>-<env>-master-deployer` (one master account may hold both)."""
    return f"{config.name_prefix}-master-deployer" if config.environment else DEFAULT_DEPLOYER_ROLE
DEPLOYER_POLICY_NAME = "pulumi-master-deploy"
# The delivery pipeline's deploy project role: Pulumi auto-names `master-delivery-deploy-role` (program.py
# names the top component `master`), so only the random suffix is unknown.
DELIVERY_DEPLOY_ROLE_PATTERN = "master-delivery-deploy-role-*"
MASTER_STACK_TAG = {"datalake:stack": "master"}
ABORT_MULTIPART_DAYS = 7
OPERATOR_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):(role|user)/[\w+=,.@/*-]+$")
# Operations that only read; every other call of a client changes something.
READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Head")


@dataclass(frozen=True)
class BootstrapSettings:
    """Names and choices of one bootstrap, all derived from the master config unless overridden."""

    account_id: str
    region: str
    name_prefix: str
    state_bucket: str
    log_bucket: str
    key_alias: str
    """Alias name without `alias/`."""
    deployer_role: str
    runner_role: str
    """The runner's CodeBuild role (`<prefix>-runner`, created by the master stack): reads and writes state."""
    athena_catalog_prefix: str
    organization_id: str
    operators: tuple[str, ...] = ()
    """Principal ARNs (patterns allowed) that may assume the deployer role besides the pipeline."""
    noncurrent_days: int = 90
    log_expiration_days: int = 365
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    @property
    def account(self) -> AccountContext:
        return AccountContext(account_id=self.account_id, partition=self.partition, region=self.region)

    def role_arn(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role/{name}"

    def bucket_arn(self, name: str) -> str:
        return f"arn:{self.partition}:s3:::{name}"

    @property
    def backend_url(self) -> str:
        return f"s3://{self.state_bucket}?region={self.region}"

    @property
    def secrets_provider(self) -> str:
        return f"awskms://alias/{self.key_alias}?region={self.region}"


def settings_from(
    config: MasterConfig,
    account_id: str,
    *,
    region: Optional[str] = None,
    state_bucket: Optional[str] = None,
    log_bucket: Optional[str] = None,
    key_alias: Optional[str] = None,
    deployer_role: Optional[str] = None,
    operators: Sequence[str] = (),
    noncurrent_days: int = 90,
) -> BootstrapSettings:
    """The names the rest of the project expects (master.py, delivery.py, runner_triggers.py, cli.py).

    An override that contradicts the master config is refused: the runner and the pipeline would
    look for the config's names, not for what bootstrap created.
    """
    prefix = config.name_prefix
    configured_alias = _alias_of(config.runner.secrets_provider)
    configured_role = config.delivery.master_deploy_role_name if config.delivery else None
    for flag, given, configured, key in (
        ("--state-bucket", state_bucket, config.runner.state_bucket, "runner.stateBucket"),
        ("--key-alias", key_alias, configured_alias, "runner.secretsProvider"),
        ("--deployer-role", deployer_role, configured_role, "delivery.masterDeployRoleName"),
    ):
        if given and configured and given != configured:
            raise UsageError(f"{flag} {given!r} contradicts datalake:{key} ({configured!r}) of the master config; change one of them")
    alias = key_alias or configured_alias or f"{prefix}-pulumi-state"
    if alias == f"{prefix}-master":
        raise UsageError(
            f"key alias {alias!r} is the master stack's own key (components/master/account.py creates it); "
            f"bootstrap needs another one, for example --key-alias {prefix}-pulumi-state"
        )
    for operator in operators:
        _check_operator(operator)
    if not 1 <= noncurrent_days <= 3650:
        raise UsageError(f"--noncurrent-days {noncurrent_days}: must be between 1 and 3650; for example: 90")
    return BootstrapSettings(
        account_id=account_id,
        region=region or config.region,
        name_prefix=prefix,
        state_bucket=state_bucket or config.runner.state_bucket or plain_bucket_name(prefix, "master", "pulumi-state", account_id),
        log_bucket=log_bucket or plain_bucket_name(prefix, "master", "state-logs", account_id),
        key_alias=alias,
        deployer_role=deployer_role or configured_role or default_deployer_role(config),
        runner_role=f"{prefix}-runner",
        athena_catalog_prefix=config.analytics.catalog_prefix,
        organization_id=config.organization_id,
        operators=tuple(operators),
        noncurrent_days=noncurrent_days,
        tags=dict(config.tags),
    )


def _alias_of(secrets_provider: Optional[str]) -> Optional[str]:
    """`awskms://alias/x?region=r` → `x`; a provider naming a key id or ARN → UsageError (no alias to create)."""
    if not secrets_provider:
        return None
    target = secrets_provider.removeprefix("awskms://").split("?", 1)[0]
    if not target.startswith("alias/"):
        raise UsageError(
            f"datalake:runner.secretsProvider {secrets_provider!r} names a key, not an alias; bootstrap creates "
            "the key by alias: set it to awskms://alias/<name>?region=<region> or pass --key-alias"
        )
    return target.removeprefix("alias/")


def _check_operator(arn: str) -> None:
    if ":assumed-role/" in arn:
        raise UsageError(
            f"--operator {arn!r} is a role session; trust policies see the role itself: "
            "pass arn:aws:iam::<account>:role/<path/name> (see `aws iam get-role`)"
        )
    if not OPERATOR_ARN.match(arn):
        raise UsageError(f"--operator {arn!r} is not an IAM role or user ARN; for example: arn:aws:iam::111111111111:role/platform-admin")


# ---------------------------------------------------------------------------------------------
# The documents bootstrap writes. Built with the program's own helpers (components/shared/iam.py,
# secure_bucket.py), so the state bucket has the posture of every bucket the programs create.


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


# ---------------------------------------------------------------------------------------------
# Comparing what exists with what bootstrap would write.


def _strings(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(sorted(str(v) for v in values))


def normalized_statement(st: Mapping[str, Any]) -> tuple[Any, ...]:
    """A statement without its Sid, in a form where `"*"` equals `{"AWS": "*"}` and order does not matter."""
    principal = st.get("Principal")
    if principal == "*":
        principal = {"AWS": "*"}
    principal_key = tuple(sorted((k, _strings(v)) for k, v in (principal or {}).items()))
    condition = tuple(
        sorted((op, tuple(sorted((key, _strings(v)) for key, v in keys.items()))) for op, keys in (st.get("Condition") or {}).items())
    )
    return (
        st.get("Effect"),
        principal_key,
        _strings(st.get("Action", [])),
        _strings(st.get("NotAction", [])),
        _strings(st.get("Resource", [])),
        condition,
    )


def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        from urllib.parse import unquote

        raw = json.loads(raw if raw.lstrip().startswith("{") else unquote(raw))
    statements = raw.get("Statement", [])
    return {**raw, "Statement": statements if isinstance(statements, list) else [statements]}


def trusted_patterns(raw: Any) -> tuple[set[str], list[str]]:
    """(principal ARN patterns trusted in bootstrap's form, Sids of the other Allow statements).

    Bootstrap's form: `sts:AssumeRole` for account roots narrowed by `ArnLike aws:PrincipalArn`. A pattern
    counts only when its account's root is among the statement's principals.
    """
    patterns: set[str] = set()
    foreign: list[str] = []
    for i, st in enumerate(_document(raw)["Statement"]):
        if st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal")
        roots = set(_strings(principal.get("AWS", []))) if isinstance(principal, dict) and set(principal) == {"AWS"} else set()
        condition = st.get("Condition") or {}
        narrowed = set(condition) == {"ArnLike"} and set(condition["ArnLike"]) == {"aws:PrincipalArn"}
        if _strings(st.get("Action", [])) != ("sts:AssumeRole",) or not roots or not all(r.endswith(":root") for r in roots) or not narrowed:
            foreign.append(st.get("Sid") or f"statement {i + 1}")
            continue
        for pattern in _strings(condition["ArnLike"]["aws:PrincipalArn"]):
            account = pattern.split(":")[4] if pattern.count(":") >= 5 else ""
            if any(root.split(":")[4] == account for root in roots):
                patterns.add(pattern)
    return patterns, foreign


def policy_gaps(actual_raw: Any, wanted: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(Sids of wanted statements missing from `actual`, Sids of actual Allow statements bootstrap would not write)."""
    actual = _document(actual_raw)["Statement"]
    have = {normalized_statement(st) for st in actual}
    want = {normalized_statement(st) for st in wanted["Statement"]}
    missing = [st["Sid"] for st in wanted["Statement"] if normalized_statement(st) not in have]
    extra = [st.get("Sid") or f"statement {i + 1}" for i, st in enumerate(actual) if st.get("Effect") == "Allow" and normalized_statement(st) not in want]
    return missing, extra


@dataclass
class Finding:
    """Something that exists and is weaker than, or different from, what bootstrap would create."""

    resource: str
    problem: str
    fix: str


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    """What was created (or, in a dry run, would be)."""
    kept: list[str] = field(default_factory=list)
    """What existed and was only checked."""
    findings: list[Finding] = field(default_factory=list)
    key_arn: str = ""
    documents: dict[str, Any] = field(default_factory=dict)
    """File name → the document bootstrap would write; saved under --out-dir for the fixes."""


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class Bootstrap:
    """Creates what is missing and checks what exists; every AWS call goes through the given boto3 clients."""

    def __init__(
        self,
        settings: BootstrapSettings,
        *,
        s3: Any,
        kms: Any,
        iam: Any,
        dry_run: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.s = settings
        self.s3, self.kms, self.iam = s3, kms, iam
        self.dry_run = dry_run
        self.sleep = sleep
        self.out = Outcome()

    def run(self) -> Outcome:
        role_created = self._role()
        self._key()
        self._bucket(self.s.log_bucket, receives_logs=True, log_target=None)
        self._bucket(self.s.state_bucket, receives_logs=False, log_target=self.s.log_bucket)
        self._role_policy(role_created)
        return self.out

    # -- small helpers -------------------------------------------------------------------------

    def _created(self, what: str) -> None:
        self.out.created.append(what)
        log.debug("%s %s", "would create" if self.dry_run else "creating", what)

    def _finding(self, resource: str, problem: str, fix: str) -> None:
        self.out.findings.append(Finding(resource, problem, fix))

    def _tags(self, purpose: str) -> dict[str, str]:
        return {**self.s.tags, "datalake:stack": "bootstrap", "datalake:purpose": purpose}

    def _document_file(self, name: str, document: Any) -> str:
        self.out.documents[name] = aws_form(document)
        return name

    # -- the deployer role ----------------------------------------------------------------------

    def _role(self) -> bool:
        s, name = self.s, self.s.deployer_role
        trust = trust_policy(s)
        trust_file = self._document_file(f"{name}.trust.json", trust)
        try:
            role = self.iam.get_role(RoleName=name)["Role"]
        except Exception as exc:  # noqa: BLE001 - only NoSuchEntity means "create it"
            if _code(exc) != "NoSuchEntity":
                raise
            self._created(f"IAM role {name} (assumable by {', '.join(trust['Statement'][0]['Condition']['ArnLike']['aws:PrincipalArn'])})")
            if not self.dry_run:
                self.iam.create_role(
                    RoleName=name,
                    AssumeRolePolicyDocument=dumps(trust),
                    Description="Runs pulumi up -s master (created by python -m runner bootstrap)",
                    MaxSessionDuration=3600,
                    Tags=[{"Key": k, "Value": v} for k, v in self._tags("master-deployer").items()],
                )
            return True
        patterns, foreign = trusted_patterns(role["AssumeRolePolicyDocument"])
        wanted = set(trust["Statement"][0]["Condition"]["ArnLike"]["aws:PrincipalArn"])
        also = sorted(patterns - wanted)
        self.out.kept.append(f"IAM role {name}" + (f" (also trusts {', '.join(also)})" if also else ""))
        missing = sorted(wanted - patterns)
        if missing:
            # The fix keeps the principals trusted before: bootstrap adds, it never takes trust away.
            merged = trust_policy(replace(s, operators=tuple(sorted(set(s.operators) | set(also)))))
            fix_file = self._document_file(f"{name}.trust.json", merged)
            self._finding(
                f"IAM role {name}",
                f"its trust policy does not let {', '.join(missing)} assume it",
                f"aws iam update-assume-role-policy --role-name {name} --policy-document file://{fix_file}",
            )
        if foreign:
            self._finding(
                f"IAM role {name}",
                f"its trust policy has statements bootstrap would not write ({', '.join(foreign)}): other principals may assume it",
                f"review them; bootstrap's trust policy is in {trust_file}",
            )
        attached = [p["PolicyArn"] for p in self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]
        if attached:
            self._finding(
                f"IAM role {name}",
                f"managed policies are attached ({', '.join(attached)}); the deployer gets least privilege from its inline policy only",
                "; ".join(f"aws iam detach-role-policy --role-name {name} --policy-arn {arn}" for arn in attached),
            )
        others = [p for p in self.iam.list_role_policies(RoleName=name)["PolicyNames"] if p != DEPLOYER_POLICY_NAME]
        if others:
            self._finding(
                f"IAM role {name}",
                f"inline policies other than {DEPLOYER_POLICY_NAME} ({', '.join(others)}) may grant more than `pulumi up -s master` needs",
                "; ".join(f"aws iam delete-role-policy --role-name {name} --policy-name {p}" for p in others),
            )
        return False

    def _role_policy(self, role_created: bool) -> None:
        s, name = self.s, self.s.deployer_role
        key_arn = self.out.key_arn or f"arn:{s.partition}:kms:{s.region}:{s.account_id}:key/<created by this run>"
        wanted = deployer_policy(s, key_arn)
        policy_file = self._document_file(f"{name}.policy.json", wanted)
        if not role_created:
            try:
                actual = self.iam.get_role_policy(RoleName=name, PolicyName=DEPLOYER_POLICY_NAME)["PolicyDocument"]
            except Exception as exc:  # noqa: BLE001
                if _code(exc) != "NoSuchEntity":
                    raise
                actual = None
            fix = f"aws iam put-role-policy --role-name {name} --policy-name {DEPLOYER_POLICY_NAME} --policy-document file://{policy_file}"
            if actual is None:
                self._finding(f"IAM role {name}", f"has no inline policy {DEPLOYER_POLICY_NAME}: it cannot run `pulumi up -s master`", fix)
                return
            missing, extra = policy_gaps(actual, wanted)
            if missing:
                self._finding(f"IAM role {name}", f"policy {DEPLOYER_POLICY_NAME} lacks {', '.join(missing)}", fix)
            if extra:
                self._finding(f"IAM role {name}", f"policy {DEPLOYER_POLICY_NAME} grants more than bootstrap would ({', '.join(extra)})", fix)
            return
        self._created(f"inline policy {DEPLOYER_POLICY_NAME} of {name} ({len(wanted['Statement'])} statements)")
        if not self.dry_run:
            self.iam.put_role_policy(RoleName=name, PolicyName=DEPLOYER_POLICY_NAME, PolicyDocument=dumps(wanted))

    # -- the state key ---------------------------------------------------------------------------

    def _key(self) -> None:
        s = self.s
        alias = f"alias/{s.key_alias}"
        wanted = key_policy(s)
        policy_file = self._document_file(f"{s.key_alias}.key-policy.json", wanted)
        try:
            key = self.kms.describe_key(KeyId=alias)["KeyMetadata"]
        except Exception as exc:  # noqa: BLE001
            if _code(exc) != "NotFoundException":
                raise
            self._created(f"KMS key {alias} (symmetric, yearly rotation, policy: account IAM, {s.deployer_role}, {s.runner_role}, the pipeline's deploy role, S3 log delivery)")
            if self.dry_run:
                return
            key = self._create_key(wanted)
            self.kms.enable_key_rotation(KeyId=key["KeyId"])
            self.kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
            self.out.key_arn = key["Arn"]
            return
        self.out.key_arn = key["Arn"]
        self.out.kept.append(f"KMS key {alias} ({key['Arn']})")
        where = f"KMS key {alias}"
        if key.get("KeyManager") != "CUSTOMER":
            self._finding(where, "is an AWS managed key: its policy cannot grant the deployer, the runner or S3 log delivery", "delete the alias or pass --key-alias <new name>")
            return
        if key.get("KeyState") != "Enabled":
            self._finding(where, f"is {key.get('KeyState')}: nothing can be encrypted or decrypted with it", f"aws kms enable-key --key-id {key['KeyId']} (or cancel its deletion)")
        if key.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT" or key.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
            self._finding(where, f"is {key.get('KeySpec')}/{key.get('KeyUsage')}; S3 and awskms:// need SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT", "pass --key-alias <new name>")
        if not self.kms.get_key_rotation_status(KeyId=key["KeyId"]).get("KeyRotationEnabled"):
            self._finding(where, "has automatic rotation off", f"aws kms enable-key-rotation --key-id {key['KeyId']}")
        missing, extra = policy_gaps(self.kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"], wanted)
        fix = f"aws kms put-key-policy --key-id {key['KeyId']} --policy-name default --policy file://{policy_file}"
        if missing:
            self._finding(where, f"its key policy lacks {', '.join(missing)}", fix)
        if extra:
            self._finding(where, f"its key policy grants more than bootstrap would ({', '.join(extra)})", fix + " (after review)")

    def _create_key(self, policy: dict[str, Any]) -> dict[str, Any]:
        # A role created seconds ago may not be a valid key policy principal yet (IAM is eventually consistent).
        for attempt in range(6):
            try:
                return self.kms.create_key(
                    Description=f"Pulumi state bucket and secrets provider of {self.s.name_prefix} (python -m runner bootstrap)",
                    KeyUsage="ENCRYPT_DECRYPT",
                    KeySpec="SYMMETRIC_DEFAULT",
                    Policy=dumps(policy),
                    Tags=[{"TagKey": k, "TagValue": v} for k, v in self._tags("pulumi-state").items()],
                )["KeyMetadata"]
            except Exception as exc:  # noqa: BLE001
                if _code(exc) != "MalformedPolicyDocumentException" or attempt == 5:
                    raise
                self.sleep(2.0 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- buckets -----------------------------------------------------------------------------------

    def _bucket(self, name: str, *, receives_logs: bool, log_target: Optional[str]) -> None:
        s = self.s
        key_arn = self.out.key_arn or "<the state key>"
        policy = bucket_policy(s, name, key_arn, receives_logs=receives_logs)
        rules = lifecycle_rules(s, log_bucket=receives_logs)
        self._document_file(f"{name}.policy.json", policy)
        self._document_file(f"{name}.lifecycle.json", {"Rules": rules})
        try:
            self.s3.head_bucket(Bucket=name, ExpectedBucketOwner=s.account_id)
        except Exception as exc:  # noqa: BLE001
            code = _code(exc)
            if code in ("403", "AccessDenied", "Forbidden"):
                self._finding(f"bucket {name}", "exists but not in this account (or is not readable here)", f"pass --{'log' if receives_logs else 'state'}-bucket <another name>")
                return
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
            self._create_bucket(name, policy, rules, log_target, receives_logs)
            return
        self.out.kept.append(f"bucket {name}")
        self._check_bucket(name, policy, receives_logs, log_target)

    def _create_bucket(self, name: str, policy: dict[str, Any], rules: list[dict[str, Any]], log_target: Optional[str], receives_logs: bool) -> None:
        s = self.s
        logging_note = f", access logs to {log_target}" if log_target else ", receives access logs"
        self._created(
            f"bucket {name} (versioned, SSE-KMS alias/{s.key_alias}, TLS-only, public access blocked, "
            f"BucketOwnerEnforced, noncurrent versions kept {s.noncurrent_days} days{logging_note})"
        )
        if self.dry_run:
            return
        create: dict[str, Any] = {"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"}
        if s.region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": s.region}
        self.s3.create_bucket(**create)
        self.s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={flag: True for flag in PUBLIC_ACCESS_FLAGS},
        )
        self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.out.key_arn}, "BucketKeyEnabled": True}]
            },
        )
        self.s3.put_bucket_policy(Bucket=name, Policy=dumps(policy))
        self.s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        self.s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in self._tags("pulumi-state-logs" if receives_logs else "pulumi-state").items()]})
        if log_target:
            self.s3.put_bucket_logging(
                Bucket=name, BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": log_target, "TargetPrefix": f"{name}/"}}
            )

    def _read(self, call: Callable[[], Any], absent: Sequence[str]) -> Any:
        """The call's answer, or None when the error code says the setting does not exist."""
        try:
            return call()
        except Exception as exc:  # noqa: BLE001
            if _code(exc) in absent:
                return None
            raise

    def _check_bucket(self, name: str, policy: dict[str, Any], receives_logs: bool, log_target: Optional[str]) -> None:
        s, s3, where = self.s, self.s3, f"bucket {name}"
        region = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        region = "eu-west-1" if region == "EU" else region
        if region != s.region:
            self._finding(where, f"is in {region}, not {s.region}: the backend URL and the stacks expect {s.region}", f"pass --{'log' if receives_logs else 'state'}-bucket <a bucket in {s.region}>")
        if s3.get_bucket_versioning(Bucket=name).get("Status") != "Enabled":
            self._finding(where, "is not versioned: an overwritten or deleted state file cannot be restored", f"aws s3api put-bucket-versioning --bucket {name} --versioning-configuration Status=Enabled")

        encryption = self._read(lambda: s3.get_bucket_encryption(Bucket=name), ("ServerSideEncryptionConfigurationNotFoundError",))
        defaults = [r.get("ApplyServerSideEncryptionByDefault", {}) for r in (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])]
        key_names = {self.out.key_arn, self.out.key_arn.rsplit("/", 1)[-1], f"alias/{s.key_alias}", f"arn:{s.partition}:kms:{s.region}:{s.account_id}:alias/{s.key_alias}"}
        if not any(d.get("SSEAlgorithm") == "aws:kms" and d.get("KMSMasterKeyID") in key_names for d in defaults):
            found = ", ".join(f"{d.get('SSEAlgorithm')} {d.get('KMSMasterKeyID', '')}".strip() for d in defaults) or "none"
            self._finding(
                where,
                f"default encryption is {found}, not SSE-KMS with alias/{s.key_alias}",
                f"aws s3api put-bucket-encryption --bucket {name} --server-side-encryption-configuration "
                f"'{{\"Rules\":[{{\"ApplyServerSideEncryptionByDefault\":{{\"SSEAlgorithm\":\"aws:kms\",\"KMSMasterKeyID\":\"{self.out.key_arn or 'alias/' + s.key_alias}\"}},\"BucketKeyEnabled\":true}}]}}'",
            )

        block = self._read(lambda: s3.get_public_access_block(Bucket=name), ("NoSuchPublicAccessBlockConfiguration",))
        flags = (block or {}).get("PublicAccessBlockConfiguration", {})
        open_flags = [flag for flag in PUBLIC_ACCESS_FLAGS if not flags.get(flag)]
        if open_flags:
            self._finding(
                where,
                f"public access is not fully blocked ({', '.join(open_flags)} off)",
                f"aws s3api put-public-access-block --bucket {name} --public-access-block-configuration "
                + ",".join(f"{flag}=true" for flag in PUBLIC_ACCESS_FLAGS),
            )

        ownership = self._read(lambda: s3.get_bucket_ownership_controls(Bucket=name), ("OwnershipControlsNotFoundError",))
        rules = [r.get("ObjectOwnership") for r in (ownership or {}).get("OwnershipControls", {}).get("Rules", [])]
        if rules != ["BucketOwnerEnforced"]:
            self._finding(where, f"object ownership is {rules[0] if rules else 'not set (ACLs enabled)'}, not BucketOwnerEnforced", f"aws s3api put-bucket-ownership-controls --bucket {name} --ownership-controls Rules=[{{ObjectOwnership=BucketOwnerEnforced}}]")

        actual = self._read(lambda: s3.get_bucket_policy(Bucket=name)["Policy"], ("NoSuchBucketPolicy",))
        fix = f"aws s3api put-bucket-policy --bucket {name} --policy file://{name}.policy.json (merge your own statements first)"
        if actual is None:
            self._finding(where, "has no bucket policy: plain-HTTP requests and uploads under other keys are allowed", fix)
        else:
            missing, extra = policy_gaps(actual, policy)
            if missing:
                self._finding(where, f"its policy lacks {', '.join(missing)}", fix)
            if extra:
                self._finding(where, f"its policy allows more than bootstrap would ({', '.join(extra)})", fix + " (after review)")

        self._check_lifecycle(name, receives_logs)
        if log_target is not None:
            enabled = s3.get_bucket_logging(Bucket=name).get("LoggingEnabled")
            if not enabled:
                self._finding(
                    where,
                    "has server access logging off: reads and writes of the state leave no trace",
                    f"aws s3api put-bucket-logging --bucket {name} --bucket-logging-status "
                    f"'{{\"LoggingEnabled\":{{\"TargetBucket\":\"{log_target}\",\"TargetPrefix\":\"{name}/\"}}}}'",
                )

    def _check_lifecycle(self, name: str, receives_logs: bool) -> None:
        s, where = self.s, f"bucket {name}"
        config = self._read(lambda: self.s3.get_bucket_lifecycle_configuration(Bucket=name), ("NoSuchLifecycleConfiguration",))
        rules = [r for r in (config or {}).get("Rules", []) if r.get("Status") == "Enabled"]
        fix = f"aws s3api put-bucket-lifecycle-configuration --bucket {name} --lifecycle-configuration file://{name}.lifecycle.json"
        noncurrent = [r["NoncurrentVersionExpiration"].get("NoncurrentDays", 0) for r in rules if r.get("NoncurrentVersionExpiration")]
        if not rules:
            self._finding(where, "has no lifecycle rules: superseded versions are kept (and paid for) forever", fix)
        elif noncurrent and min(noncurrent) < s.noncurrent_days:
            self._finding(where, f"expires superseded versions after {min(noncurrent)} days; restores need {s.noncurrent_days}", fix)
        if not receives_logs:
            expiring = [r.get("ID", "?") for r in rules if r.get("Expiration", {}).get("Days") or r.get("Expiration", {}).get("Date")]
            if expiring:
                self._finding(where, f"lifecycle rule(s) {', '.join(expiring)} expire current objects: they would delete stack state", fix)


PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def write_calls(client: Any, into: list[str]) -> list[str]:
    """Records the name of every call of `client` that may change something (not Get/List/Describe/Head)."""

    def record(model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_ONLY_PREFIXES):
            into.append(f"{client.meta.service_model.service_name}:{model.name}")

    client.meta.events.register("before-call.*.*", record)
    return into


# ---------------------------------------------------------------------------------------------
# The command.


def add_parser(commands: Any) -> None:
    boot = commands.add_parser(
        "bootstrap",
        help="create the Pulumi state bucket, state key and master deployer role (once, in the master account)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    boot.add_argument("--project-dir", type=Path, help="Pulumi project directory (default: this checkout)")
    boot.add_argument("--master-config", type=Path, help="master stack file (default: <project>/Pulumi.master.yaml)")
    boot.add_argument("--region", help="region of the backend (default: aws:region of the master config)")
    boot.add_argument("--endpoint-url", help="AWS endpoint (a local emulator)")
    boot.add_argument("--state-bucket", help="state bucket name (default: runner.stateBucket, else <prefix>-master-pulumi-state-<account>)")
    boot.add_argument("--log-bucket", help="access-log bucket of the state bucket (default <prefix>-master-state-logs-<account>)")
    boot.add_argument("--key-alias", help="alias of the state key, without alias/ (default: runner.secretsProvider's, else <prefix>-pulumi-state)")
    boot.add_argument("--deployer-role", help="master deployer role (default: delivery.masterDeployRoleName, else datalake-master-deployer)")
    boot.add_argument("--operator", action="append", default=[], metavar="ARN", help="IAM role/user ARN (patterns allowed) that may assume the deployer role, e.g. your admin role (repeatable)")
    boot.add_argument("--noncurrent-days", type=int, default=90, help="days superseded state versions are kept for restores (default 90)")
    boot.add_argument("--out-dir", type=Path, default=Path("out/bootstrap"), help="where the documents bootstrap would write are saved for the fixes (default out/bootstrap)")
    boot.add_argument("--dry-run", action="store_true", help="only read: print what would be created and what is weaker")
    boot.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def next_steps(s: BootstrapSettings, config: MasterConfig) -> list[str]:
    """The commands after bootstrap, with the config keys the project reads when a name was overridden."""
    steps = [
        f"pulumi login '{s.backend_url}'",
        f"pulumi stack init {master_stack_name(config.environment)} --secrets-provider '{s.secrets_provider}'",
    ]
    default_bucket = plain_bucket_name(s.name_prefix, "master", "pulumi-state", s.account_id)
    if config.runner.state_bucket is None and s.state_bucket != default_bucket:
        steps.append(f"pulumi config set --path 'datalake:runner.stateBucket' {s.state_bucket} -s master")
    if config.delivery is None and s.deployer_role != default_deployer_role(config):
        steps.append(f"# when you add datalake:delivery, set masterDeployRoleName: {s.deployer_role}")
    steps.append(f"# as the deployer: a profile with role_arn = {s.role_arn(s.deployer_role)} (an --operator may assume it)")
    steps.append(f"pulumi up -s {master_stack_name(config.environment)}")
    return steps


def run_bootstrap(args: argparse.Namespace, config: MasterConfig) -> int:
    """Builds the clients, runs `Bootstrap`, prints the outcome and the next commands; returns the exit code."""
    import boto3

    region = args.region or config.region

    def client(service: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=args.endpoint_url)

    identity = client("sts").get_caller_identity()
    settings = settings_from(
        config,
        identity["Account"],
        region=region,
        state_bucket=args.state_bucket,
        log_bucket=args.log_bucket,
        key_alias=args.key_alias,
        deployer_role=args.deployer_role,
        operators=args.operator,
        noncurrent_days=args.noncurrent_days,
    )
    print(f"bootstrap of account {settings.account_id} ({settings.region}) as {identity['Arn']}{' - dry run, nothing is changed' if args.dry_run else ''}")
    outcome = Bootstrap(settings, s3=client("s3"), kms=client("kms"), iam=client("iam"), dry_run=args.dry_run).run()
    verb = "would create" if args.dry_run else "created"
    for line in outcome.created:
        print(f"  {verb}: {line}")
    for line in outcome.kept:
        print(f"  exists: {line}")
    if not settings.operators:
        print(f"  note: no --operator given: only the delivery pipeline can assume {settings.deployer_role}; "
              f"the first `pulumi up -s master` needs a person (you are {identity['Arn']})")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for file_name, document in outcome.documents.items():
        (args.out_dir / file_name).write_text(json.dumps(document, indent=2) + "\n")
    if outcome.findings:
        print(f"\n{len(outcome.findings)} finding(s): existing resources weaker than bootstrap's; nothing of them was changed.")
        print(f"Fix each (the documents are in {args.out_dir}/; run the fixes from there), then run bootstrap again:")
        for finding in outcome.findings:
            print(f"  - {finding.resource}: {finding.problem}\n      fix: {finding.fix}")
        return 1
    if args.dry_run:
        print("\ndry run: nothing was changed; run without --dry-run to create the above")
        return 0
    print("\nThe backend is ready. Next:")
    for step in next_steps(settings, config):
        print(f"  {step}")
    return 0
