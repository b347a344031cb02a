"""Configuration of the `master` stack: `MasterConfig` and the sections of the master's capabilities."""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..shared.config import (
    ACCOUNT_ID_PATTERN,
    NAMESPACE,
    SCHEDULE_PATTERN,
    CommonConfig,
    ConfigModel,
    check_account_id,
    checked_by,
    check_retention,
    check_role_name,
    matching,
    require_match,
)
from ..shared.errors import ConfigError
from ..shared.pulumi_names import BACKEND_NAMES, DIY, DIY_ORGANIZATION, BackendKind, PulumiNameError, check_organization
from .pulumi_cli import CHECKSUMS_URL, PULUMI_CLI_VERSION, SHA256_PATTERN, pinned_sha256


class ArtifactsConfig(ConfigModel):
    """Settings of the master's artifact store."""

    noncurrent_version_expiration_days: int = Field(365, ge=1, le=3650, examples=[365])
    """Days an older bundle version is kept (default 365), so a silo can be rolled back."""


CONNECTION_ARN_PATTERN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$"
)
REPOSITORY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
S3_KEY_PATTERN = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,512}$")
BUCKET_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
KMS_KEY_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[0-9a-f-]{36}|alias/[A-Za-z0-9/_-]+)$")
ATHENA_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
EXAMPLE_CONNECTION_ARN = "arn:aws:codeconnections:eu-west-1:111111111111:connection/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
EXAMPLE_SECRETS_KEY_ARN = "arn:aws:kms:eu-west-1:111111111111:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"


VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+$")


class _InstallsPulumiCli(ConfigModel):
    """Checks of the `pulumiVersion` / `pulumiCliSha256` pair a build that installs the CLI declares."""

    _check_version = matching("pulumi_version", pattern=VERSION_PATTERN, what="a Pulumi CLI version such as 3.272.0", check_fields=False)

    _check_sha256 = matching("pulumi_cli_sha256", pattern=SHA256_PATTERN, what="a SHA-256 (64 lowercase hex digits)", check_fields=False)


class DeliveryConfig(_InstallsPulumiCli):
    """The master's delivery pipeline: source → test → package → deploy (master up, then the runner)."""

    source: Literal["codestar", "s3"] = Field("codestar", examples=["codestar"])
    """Where commits come from (default `codestar`): a CodeStar/CodeConnections connection to a Git
    host, or `s3`, a zip uploaded to the pipeline bucket under `sourceObjectKey`."""
    repository: Optional[str] = Field(None, examples=["acme/datalake"])
    """Full repository id `owner/name` on the Git host; required when `source` is `codestar`."""
    branch: str = Field("main", examples=["main"])
    """Branch that triggers the pipeline (default `main`)."""
    connection_arn: Optional[str] = Field(None, examples=[EXAMPLE_CONNECTION_ARN])
    """An existing connection to reuse (default none: the stack creates one, which stays PENDING
    until someone authorises it once in the console)."""
    connection_provider: Literal["GitHub", "GitHubEnterpriseServer", "Bitbucket", "GitLab"] = Field(
        "GitHub", examples=["GitHub"]
    )
    """Git host of the connection the stack creates (default `GitHub`)."""
    source_object_key: str = Field("source/datalake.zip", examples=["source/datalake.zip"])
    """Key of the source zip in the pipeline bucket when `source` is `s3` (default `source/datalake.zip`)."""
    secrets_key_arn: Optional[str] = Field(None, examples=[EXAMPLE_SECRETS_KEY_ARN])
    """KMS key of the stacks' `awskms://` secrets provider, which the deploy stage may use (default
    the master key, the runner's default secrets provider; required when `runner.secretsProvider`
    names another key). The state bucket is the runner's (`runner.stateBucket`): one backend."""
    master_deploy_role_name: str = Field("datalake-master-deployer", examples=["datalake-master-deployer"])
    """Role in the master account that `pulumi up -s master` runs as (default `datalake-master-deployer`);
    created once by `python -m runner bootstrap`, see docs/operations.md."""
    pulumi_version: str = Field(PULUMI_CLI_VERSION, examples=[PULUMI_CLI_VERSION])
    """Pulumi CLI version the deploy stage installs (default `3.272.0`, the SDK's version)."""
    pulumi_cli_sha256: Optional[str] = Field(None, examples=["0123456789abcdef" * 4])
    """SHA-256 of that version's `pulumi-v<version>-linux-x64.tar.gz`, as Pulumi publishes it (default the
    one pinned in components/master/pulumi_cli.py); the build refuses an archive that does not match."""
    log_retention_days: int = Field(30, examples=[30])
    """Days the build logs are kept (default 30)."""

    _check_repository = matching("repository", pattern=REPOSITORY_PATTERN, what="a repository id such as owner/name")

    _check_connection = matching("connection_arn", pattern=CONNECTION_ARN_PATTERN, what="a CodeConnections connection ARN")

    _check_key = matching("source_object_key", pattern=S3_KEY_PATTERN, what="an S3 object key such as source/datalake.zip")

    _check_secrets_key = matching("secrets_key_arn", pattern=KMS_KEY_ARN_PATTERN, what="a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")

    _check_role = checked_by(check_role_name, "master_deploy_role_name")

    _check_retention = checked_by(check_retention, "log_retention_days")

    @model_validator(mode="after")
    def _codestar_needs_repository(self) -> "DeliveryConfig":
        if self.source == "codestar" and self.repository is None:
            raise ValueError(
                f"{NAMESPACE}:delivery.repository is required when delivery.source is 'codestar'; "
                "for example: acme/datalake (or set delivery.source to 's3')"
            )
        return self


class AnalyticsConfig(ConfigModel):
    """The master's org-wide analytics: an Athena workgroup and one data catalog per ACTIVE silo account."""

    catalog_prefix: str = Field("silo_", examples=["silo_"])
    """Prefix of each silo's Athena catalog name (default `silo_`): queries read `silo_<name>.<db>.<table>`."""
    bytes_scanned_cutoff_per_query: int = Field(10 * 1024**3, ge=10 * 1024**2, examples=[10737418240])
    """Queries scanning more bytes are cancelled (default 10 GiB, minimum 10 MiB): a cost guard."""
    results_expiration_days: int = Field(30, ge=1, le=3650, examples=[30])
    """Days query results are kept in the master's results bucket (default 30)."""

    _check_prefix = matching("catalog_prefix", pattern=ATHENA_PREFIX_PATTERN, what="1-20 lowercase letters, digits or underscores starting with a letter")


class RunnerConfig(_InstallsPulumiCli):
    """Settings of the runner (`python -m runner`) and of its triggers in the master account."""

    schedule: str = Field("rate(1 hour)", examples=["rate(1 hour)"])
    """EventBridge schedule of `runner apply` (default hourly); Organizations events also start it at once."""
    drift_schedule: Optional[str] = Field("rate(1 day)", examples=["rate(1 day)"])
    """EventBridge schedule of `runner drift` (default daily); null disables the drift check."""
    state_bucket: Optional[str] = Field(None, examples=["acme-dl-pulumi-state"])
    """Bucket of the Pulumi state (`s3://<bucket>` backend) and of the runner's reports; default
    `<namePrefix>-master-pulumi-state-<account-id>`, created by `python -m runner bootstrap` before the first `pulumi login`."""
    secrets_provider: Optional[str] = Field(None, examples=["awskms://alias/acme-dl-master?region=eu-west-1"])
    """Secrets provider of silo stacks; default the master key, `awskms://alias/<namePrefix>-master?region=<region>`."""
    pulumi_org: str = Field(DIY_ORGANIZATION, examples=[DIY_ORGANIZATION])
    """Organization part of the silo stacks' fully qualified names: `organization` on the S3 backend the
    runner's build uses (and on every DIY backend); your Pulumi Cloud org only when the runner is run
    by hand with a Pulumi Cloud `--backend-url`."""
    max_concurrency: int = Field(8, ge=1, le=64, examples=[8])
    """Stack operations running at once (default 8)."""
    failure_tolerance: int = Field(3, ge=0, le=10000, examples=[3])
    """Failed operations tolerated before no new one starts (default 3); running ones always finish."""
    max_retire_share: float = Field(0.2, ge=0.0, le=1.0, examples=[0.2])
    """Largest share of existing stacks one run may retire without `--allow-mass-retire` (default 0.2)."""
    retire_grace_days: int = Field(7, ge=0, le=365, examples=[7])
    """Days between revoking a leaving silo's partners and destroying its stack (default 7; 0 destroys at
    once). An account that returns within them is updated, and nothing is destroyed."""
    opt_out_tag: str = Field("datalake:silo", min_length=1, max_length=128, examples=["datalake:silo"])
    """Account tag key that opts an account of the silo OU out (default `datalake:silo`)."""
    opt_out_value: str = Field("false", min_length=1, max_length=256, examples=["false"])
    """Value of that tag that opts out, case-insensitive (default `false`)."""
    profile_tag: str = Field("datalake:profile", min_length=1, max_length=128, examples=["datalake:profile"])
    """Account tag key whose value names the silo profile, `<settings dir>/profiles/<value>.yaml`
    (default `datalake:profile`; docs/runner.md, "Per-silo settings")."""
    allow_accounts: list[str] = Field(default_factory=list, examples=[["123456789012"]])
    """When set, only these accounts are managed (default empty: every account of the silo OU)."""
    deny_accounts: list[str] = Field(default_factory=list, examples=[["123456789012"]])
    """Accounts the runner never touches (default empty)."""
    bundle_key: str = Field("bundles/datalake.zip", min_length=1, examples=["bundles/datalake.zip"])
    """Key of the project bundle in the artifact bucket that the runner's CodeBuild project checks out."""
    pulumi_version: str = Field(PULUMI_CLI_VERSION, examples=[PULUMI_CLI_VERSION])
    """Pulumi CLI version the CodeBuild project installs (default the SDK's version)."""
    pulumi_cli_sha256: Optional[str] = Field(None, examples=["0123456789abcdef" * 4])
    """SHA-256 of that version's `pulumi-v<version>-linux-x64.tar.gz`, as Pulumi publishes it (default the
    one pinned in components/master/pulumi_cli.py); the build refuses an archive that does not match."""
    build_timeout_minutes: int = Field(120, ge=5, le=2160, examples=[120])
    """Longest a runner build may take (default 120 minutes)."""
    build_compute_type: Literal["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"] = Field(
        "BUILD_GENERAL1_MEDIUM", examples=["BUILD_GENERAL1_MEDIUM"]
    )
    """CodeBuild compute of the runner (default MEDIUM, 7 GB): each concurrent operation is a CLI, a
    language host and an AWS provider process, a few hundred MB together."""
    engine: Literal["local", "stepfunctions"] = Field("local", examples=["local"])
    """How a full rollout fans out (docs/runner.md, "Choosing an engine"): `local` (default) runs every
    operation in one build, `maxConcurrency` at once; `stepfunctions` deploys a state machine whose
    Distributed Map runs `batchSize` operations per CodeBuild build, `mapMaxConcurrency` builds at once."""
    batch_size: int = Field(40, ge=1, le=1000, examples=[40])
    """stepfunctions engine: operations per child build (default 40; each build runs them `maxConcurrency` at once)."""
    map_max_concurrency: int = Field(25, ge=1, le=1000, examples=[25])
    """stepfunctions engine: child builds at once (default 25); the account's CodeBuild concurrent-build quota must allow it."""
    tolerated_failure_percentage: int = Field(5, ge=0, le=100, examples=[5])
    """stepfunctions engine: share of failed child builds the rollout tolerates before it stops (default 5)."""
    targeted_concurrency: int = Field(4, ge=1, le=100, examples=[4])
    """Builds of the targeted project at once (default 4): account events run there, never behind a rollout."""
    tag_sweep_hours: float = Field(24.0, gt=0.0, le=720.0, examples=[24.0])
    """Every account's tags are read again once a recorded opt-out verdict is older than this (default 24)."""
    discovery_concurrency: int = Field(4, ge=1, le=16, examples=[4])
    """Organizations calls in flight at once during discovery (default 4; each is retried on throttling)."""

    _check_schedule = matching("schedule", "drift_schedule", pattern=SCHEDULE_PATTERN, what="an EventBridge schedule such as rate(1 hour) or cron(0 * * * ? *)")

    _check_bucket = matching("state_bucket", pattern=BUCKET_NAME_PATTERN, what="an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)")

    @field_validator("secrets_provider")
    @classmethod
    def _check_secrets(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.startswith("awskms://"):
            raise ValueError(f"got {value!r}, which is not an awskms:// secrets provider URL")
        return value

    @field_validator("allow_accounts", "deny_accounts")
    @classmethod
    def _check_accounts(cls, value: list[str]) -> list[str]:
        for account in value:
            require_match(ACCOUNT_ID_PATTERN, str(account), "a 12-digit AWS account id")
        return [str(account) for account in value]

    @field_validator("pulumi_org")
    @classmethod
    def _check_pulumi_org(cls, value: str, info: ValidationInfo) -> str:
        backend: BackendKind = (info.context or {}).get("runner_backend", DIY)
        try:
            return check_organization(value, backend)
        except PulumiNameError as error:
            where = "the runner's S3 state backend" if backend == DIY else BACKEND_NAMES[backend]
            fix = DIY_ORGANIZATION if backend == DIY else "your Pulumi Cloud organization, such as acme"
            raise ValueError(f"got {value!r}, which {where} refuses: {error}; for example: {fix}") from None


class MasterConfig(CommonConfig):
    """Configuration of the `master` stack."""

    kind: Literal["master"] = "master"
    management_account_id: str = Field(examples=["111111111111"])
    """The organization's management account (`aws organizations describe-organization --query
    Organization.MasterAccountId`): every Organizations ARN carries its id. The master's own id when
    the master is the management account; another one when the master is a delegated administrator."""
    artifacts: ArtifactsConfig = Field(default_factory=ArtifactsConfig)
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    """Org-wide Athena over every silo (always on; costs nothing idle)."""
    delivery: Optional[DeliveryConfig] = Field(None, examples=[{"repository": "acme/datalake"}])
    """The delivery pipeline (default none: no pipeline until its repository is set)."""
    runner: RunnerConfig = Field(default_factory=RunnerConfig)

    _check_management_account = checked_by(check_account_id, "management_account_id", mode="before")

    @model_validator(mode="after")
    def _deploy_stage_can_use_the_secrets_key(self) -> "MasterConfig":
        if self.delivery is not None and self.runner.secrets_provider and self.delivery.secrets_key_arn is None:
            raise ValueError(
                f"{NAMESPACE}:delivery.secretsKeyArn is required when {NAMESPACE}:runner.secretsProvider is set "
                f"({self.runner.secrets_provider!r}): the deploy stage must be allowed to use that key; "
                f"for example: {EXAMPLE_SECRETS_KEY_ARN}"
            )
        return self

    def pulumi_cli_checksums(self) -> dict[str, str]:
        """SHA-256 of the CLI archive each build installs (`runner`, `delivery`), or a `ConfigError`.

        The builds can assume the deploy role in every silo account: an archive nobody pinned is
        refused here, before anything is deployed, rather than installed unverified.
        """
        sections = {"runner": self.runner}
        if self.delivery is not None:
            sections["delivery"] = self.delivery
        found, problems = {}, []
        for name, section in sections.items():
            checksum = pinned_sha256(section.pulumi_version, section.pulumi_cli_sha256)
            if checksum is None:
                version = section.pulumi_version
                problems.append(
                    f"{NAMESPACE}:{name}.pulumiCliSha256: is required for Pulumi CLI {version} "
                    f"({NAMESPACE}:{name}.pulumiVersion), which has no SHA-256 pinned in components/master/pulumi_cli.py; "
                    f"take the line of pulumi-v{version}-linux-x64.tar.gz from {CHECKSUMS_URL.format(version=version)}, "
                    f"for example: pulumi config set --path {NAMESPACE}:{name}.pulumiCliSha256 <64 hex digits>"
                )
            else:
                found[name] = checksum
        if problems:
            raise ConfigError("master", problems)
        return found

    @property
    def key_alias(self) -> str:
        """Alias name of the master key (`<namePrefix>-master`, without `alias/`), which `MasterAccount`
        creates; the runner's reports, exports, ledger and restores are encrypted with it."""
        return f"{self.name_prefix}-master"

    def runner_secrets_provider(self) -> str:
        """Secrets provider of silo stacks: `runner.secretsProvider`, else the master key's alias."""
        return self.runner.secrets_provider or f"awskms://alias/{self.key_alias}?region={self.region}"
