"""The dropzone's shared pieces: the site (silo context and dropzone bucket), its Lambda functions
and the IAM statements that tie partners to their prefix; used by `Dropzone` and `SftpServer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

# The partner path, the staff prefix and what partners may do are a contract between these IAM
# policies and the handlers: one definition.
from functions.dropzone_partners.partners import (
    DEFAULT_NAMESPACE,
    NAMESPACE_ENV,
    PARTNER_OBJECT_ACTIONS,
    partner_path,
    staff_deny_statements,
)

from .. import FUNCTIONS_DIR
from ..shared.context import SiloContext
from ..shared.iam import AccountContext, Statement, assume_role_policy, kms_via_service, statement
from ..shared.logs import encrypted_log_group, logs_service_key_statement
from ..shared.roles import role_with_policy

SHARED_PACKAGES = ("dropzone_partners",)
LAMBDA_RUNTIME = "python3.12"


def lambda_code(package: str) -> pulumi.AssetArchive:
    """The Lambda bundle: the function's package and the shared partner package, each as a folder.

    Handlers are addressed as `<package>.<module>.<function>`, so the package keeps its relative
    imports and shares `dropzone_partners` with the other dropzone functions without a copy.
    """
    return pulumi.AssetArchive(
        {name: pulumi.FileArchive(str(FUNCTIONS_DIR / name)) for name in (package, *SHARED_PACKAGES)}
    )


def partner_users_arn(account: AccountContext, silo_name: str, namespace: str = DEFAULT_NAMESPACE) -> pulumi.Output[str]:
    """Every partner user of the silo, and nothing else of IAM."""
    return account.arn("iam", f"user{partner_path(silo_name, namespace)}*", regional=False)


def list_users_statement() -> Statement:
    """`iam:ListUsers` has no resource type (the service authorization reference lists none), so
    it takes `*`; it returns names and paths only, and the functions filter by the partner path."""
    return statement("ListUsersByPath", "iam:ListUsers", "*")


def audit_log_group_name(silo_name: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"{namespace}/{silo_name}/audit"


def audit_log_key_statement(account: AccountContext, silo_name: str, namespace: str = DEFAULT_NAMESPACE) -> Statement:
    """Silo key policy grant: CloudWatch Logs may encrypt the silo's `datalake/<silo>/*` log groups."""
    return logs_service_key_statement(
        "AllowDropzoneLogEncryption", account, "StringLike", account.arn("logs", f"log-group:{namespace}/{silo_name}/*")
    )


def partner_reach_statements(
    sid_prefix: str,
    bucket_arn: pulumi.Input[str],
    key_arn: pulumi.Input[str],
    region: pulumi.Input[str],
    prefix: str,
) -> list[Statement]:
    """Put/Get/Abort under `prefix` of the dropzone bucket, List limited to it, the key through S3
    for this bucket only, and never the staff prefixes (explicit Denies: `prefix` may cover them)."""
    return [
        statement(f"{sid_prefix}ReadWrite", list(PARTNER_OBJECT_ACTIONS), pulumi.Output.concat(bucket_arn, "/", prefix, "*")),
        statement(
            f"{sid_prefix}List",
            "s3:ListBucket",
            bucket_arn,
            conditions={"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
        ),
        statement(
            f"{sid_prefix}Key",
            ["kms:GenerateDataKey", "kms:Decrypt"],
            key_arn,
            conditions={
                "StringEquals": {"kms:ViaService": kms_via_service("s3", region)},
                # With S3 Bucket Keys the context is the bucket ARN, without them the object's.
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")]},
            },
        ),
        *staff_deny_statements(bucket_arn, pulumi.Output.concat, sid_prefix),
    ]


# Keys with `.` or `..` segments: S3 stores them literally, and tools that treat keys as paths
# (sync clients, SFTP, Spark) resolve them elsewhere. S3 ARN patterns match the key as it is.
DOT_SEGMENT_KEYS = ("./*", "../*", "*/./*", "*/../*", "*/.", "*/..")


def dropzone_bucket_statements(bucket_arn: pulumi.Input[str]) -> list[Statement]:
    """Extra dropzone bucket policy: nobody writes keys with `.` or `..` segments (the API
    refuses them for staff uploads; partners write straight to S3 or over SFTP)."""
    return [
        statement(
            "DenyDotSegmentKeys",
            "s3:PutObject",
            [pulumi.Output.concat(bucket_arn, "/", pattern) for pattern in DOT_SEGMENT_KEYS],
            effect="Deny",
            principal={"AWS": "*"},
        )
    ]


def log_write_statement(sid: str, account: AccountContext, log_group: str) -> Statement:
    """May write streams of one log group (`log-group:<name>:*`), nothing more."""
    return statement(sid, ["logs:CreateLogStream", "logs:PutLogEvents"], account.arn("logs", f"log-group:{log_group}:*"))


@dataclass(frozen=True)
class FunctionSpec:
    """One dropzone Lambda: what runs, with which permissions and settings."""

    role: str
    """Role name inside the component (`api`, `janitor`, `auth`), used in logical and physical names."""
    package: str
    """Package under `functions/`."""
    handler: str
    """`<package>.<module>.<function>`."""
    statements: Sequence[Statement]
    """Permissions beyond writing its own log group."""
    environment: dict[str, pulumi.Input[str]]
    """Environment variables."""
    description: str
    timeout: int = 30


class DropzoneFunction(pulumi.ComponentResource):
    """A Lambda with its own role, least-privilege inline policy and log group with retention,
    encrypted with the silo key (the logs hold partner names and client addresses)."""

    def __init__(
        self,
        name: str,
        spec: FunctionSpec,
        physical_name: str,
        account: AccountContext,
        log_retention_days: int,
        kms_key_arn: pulumi.Input[str],
        tags: dict[str, str],
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("datalake:dropzone:DropzoneFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        log_group_name = f"/aws/lambda/{physical_name}"
        # The silo key's CloudWatch Logs grant (`logs.logs_key_statement`) covers this group.
        self.log_group = encrypted_log_group(f"{name}-logs", log_group_name, kms_key_arn, log_retention_days, tags, child)
        self.role, self.policy = role_with_policy(
            name,
            physical_name,
            # No aws:SourceAccount/aws:SourceArn: Lambda documents those keys only for policies that
            # target a function (https://docs.aws.amazon.com/lambda/latest/dg/permissions-source-function-arn.html),
            # not for its assuming the execution role; iam:PassRole already keeps other accounts from
            # handing this role to their functions.
            assume_role_policy("lambda.amazonaws.com"),
            [log_write_statement("WriteOwnLogs", account, log_group_name), *spec.statements],
            tags,
            child,
        )
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=physical_name,
            description=spec.description,
            runtime=LAMBDA_RUNTIME,
            handler=spec.handler,
            code=lambda_code(spec.package),
            role=self.role.arn,
            timeout=spec.timeout,
            memory_size=256,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=spec.environment),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=self.log_group.name),
            tags=tags,
            # The log group and the role's permissions must exist before the first invocation.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.log_group, self.policy])),
        )
        self.register_outputs({"arn": self.function.arn, "roleArn": self.role.arn})


@dataclass(frozen=True)
class DropzoneSite:
    """Where a silo's dropzone lives (the silo and its dropzone bucket); shared by `Dropzone` and `SftpServer`."""

    context: SiloContext
    """The silo: account, names, namespace, tags and the silo key (the bucket's default encryption
    key, also used for the audit log); the key is required."""
    bucket_name: pulumi.Input[str]
    """The silo's dropzone bucket (from `SiloStorage`)."""
    bucket_arn: pulumi.Input[str]
    """Its ARN."""

    @property
    def account(self) -> AccountContext:
        return self.context.account

    @property
    def silo_name(self) -> str:
        return self.context.silo_name

    @property
    def base_name(self) -> str:
        """`<prefix>-<silo>`, the start of every physical name."""
        return self.context.base_name

    @property
    def key_arn(self) -> pulumi.Input[str]:
        return self.context.key

    @property
    def namespace(self) -> str:
        return self.context.namespace

    def namespace_environment(self) -> dict[str, str]:
        """What the functions need to find the partner path; nothing in the default namespace."""
        return {} if self.namespace == DEFAULT_NAMESPACE else {NAMESPACE_ENV: self.namespace}

    def tags(self, capability: str) -> dict[str, str]:
        """The silo's tags plus `datalake:silo` and `datalake:capability` (`dropzone` or `sftp`)."""
        return {**self.context.tags, "datalake:silo": self.silo_name, "datalake:capability": capability}

    def reach_statements(self, sid_prefix: str, prefix: str) -> list[Statement]:
        """`partner_reach_statements` on this site's bucket and key."""
        return partner_reach_statements(sid_prefix, self.bucket_arn, self.key_arn, self.account.region, prefix)
