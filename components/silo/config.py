"""Configuration of a `silo` stack: `SiloConfig` and the sections of the silo's capabilities.

Each section is the config of one component (`DropzoneConfig` of `Dropzone`, `SftpConfig` of
`SftpServer`, ...), which takes it whole; the datasets' models are in `dataset_config.py`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, Optional

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..shared.config import (
    NAMESPACE,
    CommonConfig,
    ConfigModel,
    check_account_id,
    checked_by,
    check_retention,
    matching,
    require_match,
    SCHEDULE_PATTERN,
    StorageConfig,
)
from ..shared.environments import master_stack_name
from ..shared.iam import partition_of
from ..shared.pulumi_names import BACKEND_NAMES, PulumiNameError, backend_kind_of_organization, parse_stack_reference
from .dataset_config import EXAMPLE_DATASET, DatasetConfig


# Silo names end up inside bucket names (63 chars max) and DNS labels: keep them short and plain.
SILO_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]$")
# The longest bucket name is `<prefix>-<silo>-athena-results-<account-id>`, at most S3's 63 characters:
# the prefix and the silo name share 34. `<namePrefix>-<env>` may take up to 16 (the silo names of
# such an environment are then at most 18: the runner derives them that short).
PREFIX_AND_SILO_BUDGET = 34
EXAMPLE_MASTER_STACK = {"diy": "organization/datalake/master", "service": "acme/datalake/master"}


ORIGIN_PATTERN = re.compile(r"^https://[a-z0-9.-]+(:\d{1,5})?$")
VPC_ID_PATTERN = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID_PATTERN = re.compile(r"^subnet-[0-9a-f]{8,17}$")
EXAMPLE_ORIGIN = "https://d111111abcdef8.cloudfront.net"
CIDR16_PATTERN = re.compile(r"^(10|172|192)\.\d{1,3}\.0\.0/16$")


ADOPT_KEY_PATTERN = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9/._-]*:[A-Za-z0-9]+::\S+$")
EXAMPLE_ADOPT_KEY = "aws:s3/bucket:Bucket::silo-sales-storage-raw-bucket"


# Transfer Family server security policies from 2024 on that serve SFTP: the ones AWS lists as
# current in https://docs.aws.amazon.com/transfer/latest/userguide/security-policies.html (older ones,
# e.g. the CloudFormation/provider default TransferSecurityPolicy-2018-11, keep SHA-1 MACs and
# CBC ciphers). AS2Restricted-2025-07 is for AS2 servers. The policy pack's
# `CURRENT_TRANSFER_POLICIES` (policy/rules.py) must hold every one of these; a test checks it.
TRANSFER_SECURITY_POLICIES = (
    "TransferSecurityPolicy-2025-03",
    "TransferSecurityPolicy-2024-01",
    "TransferSecurityPolicy-FIPS-2025-03",
    "TransferSecurityPolicy-FIPS-2024-05",
    "TransferSecurityPolicy-FIPS-2024-01",
    "TransferSecurityPolicy-Restricted-2024-06",
    "TransferSecurityPolicy-SshAuditCompliant-2025-02",
)


def _check_cidrs(values: list[str]) -> list[str]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ValueError(f"got {value!r}, which is not a CIDR block such as 203.0.113.0/24") from None
    return values


class DropzoneConfig(ConfigModel):
    """The third-party dropzone: credential-vending API, its Cognito users, janitor and audit log."""

    allowed_origin: str = Field("", examples=[EXAMPLE_ORIGIN])
    """Browser origin (the console's `https://` address) allowed to call the API (default none: no CORS)."""
    audit_log_retention_days: int = Field(365, examples=[365])
    """Days the audit log `datalake/<silo>/audit` keeps records (default 365; a CloudWatch retention value)."""
    function_log_retention_days: int = Field(90, examples=[90])
    """Days the dropzone Lambdas' own logs are kept (default 90; a CloudWatch retention value)."""
    upload_max_mb: int = Field(1024, ge=1, le=5120, examples=[1024])
    """Largest internal upload through a presigned POST, in MiB (default 1024; S3 caps POSTs at 5 GiB)."""
    upload_url_seconds: int = Field(900, ge=60, le=3600, examples=[900])
    """Lifetime of a presigned upload in seconds (default 900)."""
    janitor_schedule: str = Field("rate(1 hour)", examples=["rate(1 hour)"])
    """EventBridge schedule of the janitor that deactivates expired partners (default hourly)."""
    mfa: Literal["ON", "OPTIONAL"] = Field("ON", examples=["ON"])
    """Whether internal users must use TOTP MFA to sign in (default `ON`)."""
    throttle_rate_limit: float = Field(10, gt=0, le=10000, examples=[10])
    """Steady-state requests per second the API stage accepts (default 10)."""
    throttle_burst_limit: int = Field(20, ge=1, le=5000, examples=[20])
    """Request burst the API stage accepts (default 20)."""

    _retention = checked_by(check_retention, "audit_log_retention_days", "function_log_retention_days")

    @field_validator("allowed_origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        if value and not ORIGIN_PATTERN.match(value):
            raise ValueError(f"got {value!r}, which is not an https origin (scheme and host, no path or trailing slash)")
        return value

    _schedule = matching("janitor_schedule", pattern=SCHEDULE_PATTERN, what="an EventBridge schedule such as rate(1 hour) or cron(0 * * * ? *)")


class SftpConfig(ConfigModel):
    """The dropzone's SFTP endpoint (AWS Transfer Family with a Lambda identity provider)."""

    enabled: bool = Field(False, examples=[True])
    """Whether the silo gets an SFTP server (default false: a Transfer Family server bills about
    $0.30 per protocol-hour, ~$219/month, whether or not anyone connects). Off means no Transfer
    resource at all; partners still upload through the API and the console."""
    endpoint_type: Literal["PUBLIC", "VPC"] = Field("PUBLIC", examples=["PUBLIC"])
    """`PUBLIC` (default) or `VPC`: an endpoint in your VPC reachable only from `allowedCidrs`."""
    vpc_id: Optional[str] = Field(None, examples=["vpc-0123456789abcdef0"])
    """VPC of a `VPC` endpoint (required then)."""
    subnet_ids: list[str] = Field(default_factory=list, examples=[["subnet-0123456789abcdef0"]])
    """Subnets of a `VPC` endpoint (required then)."""
    allowed_cidrs: list[str] = Field(default_factory=list, examples=[["203.0.113.0/24"]])
    """Client address ranges allowed on port 22 of a `VPC` endpoint (required then)."""
    security_policy: str = Field("TransferSecurityPolicy-2025-03", examples=["TransferSecurityPolicy-2025-03"])
    """Transfer security policy (default the current recommended `TransferSecurityPolicy-2025-03`)."""

    _vpc = matching("vpc_id", pattern=VPC_ID_PATTERN, what="a VPC id such as vpc-0123456789abcdef0")

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, values: list[str]) -> list[str]:
        for value in values:
            require_match(SUBNET_ID_PATTERN, value, "a subnet id such as subnet-0123456789abcdef0")
        return values

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        return _check_cidrs(values)

    @field_validator("security_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        if value not in TRANSFER_SECURITY_POLICIES:
            raise ValueError(
                f"got {value!r}, which is not a current Transfer security policy; use one of "
                f"{', '.join(TRANSFER_SECURITY_POLICIES)}"
            )
        return value

    @model_validator(mode="after")
    def _endpoint_settings(self) -> "SftpConfig":
        if self.endpoint_type == "VPC":
            missing = [k for k, v in (("vpcId", self.vpc_id), ("subnetIds", self.subnet_ids), ("allowedCidrs", self.allowed_cidrs)) if not v]
            if missing:
                raise ValueError(
                    f"got endpointType VPC without {', '.join(missing)}; set {NAMESPACE}:sftp.{missing[0]} "
                    "or use endpointType PUBLIC"
                )
        elif self.vpc_id or self.subnet_ids or self.allowed_cidrs:
            raise ValueError(
                "got vpcId/subnetIds/allowedCidrs with endpointType PUBLIC, where they would do nothing; "
                f"set {NAMESPACE}:sftp.endpointType to VPC, or restrict partners by their own allowed_cidrs"
            )
        return self


# Why the console (a CloudFront distribution on its default domain) cannot exist in a partition.
CONSOLE_UNAVAILABLE = {
    "aws-cn": (
        "CloudFront in China does not serve content on a distribution's default domain (*.cloudfront.cn); "
        "it needs an alternate domain name with an ICP recordal, which the console does not manage"
    ),
    "aws-us-gov": (
        "CloudFront lies outside the AWS GovCloud (US) partition; a GovCloud account cannot create distributions"
    ),
}


class ConsoleConfig(ConfigModel):
    """The dropzone's web console: a static app on S3 behind CloudFront, signed in through Cognito."""

    enabled: bool = Field(True, examples=[True])
    """Whether the silo gets the web console (default true). Off removes the distribution, its
    bucket's objects and the console's Cognito app client; the API stays."""
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = Field(
        "PriceClass_100", examples=["PriceClass_100"]
    )
    """CloudFront price class (default `PriceClass_100`: edges in North America and Europe)."""
    session_minutes: int = Field(60, ge=5, le=1440, examples=[60])
    """Minutes a console sign-in lasts before the user signs in again (default 60; Cognito allows 5-1440)."""


class SharingConfig(ConfigModel):
    """Who besides the analytics OU may read the silo's processed data (read-only, see docs/analytics.md)."""

    master_queries: bool = Field(True, examples=[True])
    """Whether the master account may query this silo through its org-wide Athena catalogs (default
    true: the master's analytics are always on). Grants the master account, inside the organization,
    read on the processed bucket, its objects' key (through S3) and the processed Glue database;
    false keeps the silo out of the master's queries (the analytics OU still reads it)."""


class IngestionConfig(ConfigModel):
    """The ingestion API and the Firehose streams behind it."""

    buffering_size_mib: int = Field(128, examples=[128])
    """MiB Firehose buffers before it writes a Parquet file (default 128; 64-128 with format conversion)."""
    buffering_interval_seconds: int = Field(300, ge=60, le=900, examples=[300])
    """Seconds Firehose buffers at most before it writes (default 300; 60-900)."""
    authorization: Literal["iam", "apiKey"] = Field("iam", examples=["iam"])
    """`iam` (SigV4-signed requests, default) or `apiKey` (an API key with a usage plan)."""
    throttle_rate_limit: float = Field(50, gt=0, le=10000, examples=[50])
    """Steady-state requests per second the stage accepts (default 50)."""
    throttle_burst_limit: int = Field(100, ge=1, le=5000, examples=[100])
    """Request burst the stage accepts (default 100)."""
    daily_quota: Optional[int] = Field(None, ge=1, examples=[100000])
    """With `apiKey`: requests per day per key (default: no quota)."""
    log_retention_days: int = Field(90, examples=[90])
    """Retention of the API access logs and Firehose error logs (default 90)."""

    _retention = checked_by(check_retention, "log_retention_days")

    @field_validator("buffering_size_mib")
    @classmethod
    def _check_buffer(cls, value: int) -> int:
        if not 64 <= value <= 128:
            raise ValueError(
                f"got {value}, but Firehose needs 64-128 MiB when it converts records to Parquet"
            )
        return value


class EtlConfig(ConfigModel):
    """The Glue job and the Step Functions pipeline that runs it."""

    schedule: str = Field("cron(0 3 * * ? *)", examples=["cron(0 3 * * ? *)"])
    """EventBridge schedule expression that starts the pipeline (default daily at 03:00 UTC)."""
    skip_when_no_new_data: bool = Field(True, examples=[True])
    """End a scheduled run early when no raw object arrived since the last success (default true):
    crawlers bill at least 10 minutes per run, so an idle silo would otherwise pay for daily runs."""
    glue_version: Literal["4.0", "5.0"] = Field("5.0", examples=["5.0"])
    """Glue version of the job (default 5.0: Spark 3.5, Python 3.11)."""
    worker_type: Literal["G.1X", "G.2X"] = Field("G.1X", examples=["G.1X"])
    """Glue worker type (default G.1X, the cheapest)."""
    number_of_workers: int = Field(2, ge=2, le=100, examples=[2])
    """Glue workers (default 2, the minimum)."""
    job_timeout_minutes: int = Field(60, ge=1, le=2880, examples=[60])
    """Minutes after which a job run is stopped (default 60)."""
    crawler_poll_seconds: int = Field(30, ge=5, le=600, examples=[30])
    """Seconds between two crawler status checks (default 30)."""
    crawler_max_polls: int = Field(60, ge=1, le=1000, examples=[60])
    """Checks after which a crawler that is still running fails the pipeline (default 60)."""
    log_retention_days: int = Field(90, examples=[90])
    """Days the job's and the crawlers' log groups keep their logs (default 90; a CloudWatch Logs retention value)."""

    _retention = checked_by(check_retention, "log_retention_days")
    _check_schedule = matching("schedule", pattern=SCHEDULE_PATTERN, what="an EventBridge schedule such as rate(1 day) or cron(0 3 * * ? *)")


class QuickSightConfig(ConfigModel):
    """Optional QuickSight data source on the silo's Athena workgroup."""

    enabled: bool = Field(False, examples=[False])
    """Create the data source (default false: QuickSight needs an account subscription)."""
    owner_arn: Optional[str] = Field(None, examples=["arn:aws:quicksight:eu-west-1:123456789012:group/default/analysts"])
    """QuickSight user or group that owns the data source (default none)."""


class WarehouseConfig(ConfigModel):
    """Redshift Serverless, its VPC and the Athena workgroup."""

    base_capacity: int = Field(8, examples=[8])
    """Redshift Serverless base capacity in RPUs (default 8, the minimum; multiples of 8 up to 512)."""
    max_capacity: int = Field(64, examples=[64])
    """RPU ceiling, a cost guard (default 64; at least the base capacity)."""
    vpc_cidr: str = Field("10.20.0.0/16", examples=["10.20.0.0/16"])
    """CIDR of the warehouse VPC, a private /16 (default 10.20.0.0/16)."""
    interface_endpoints: list[Literal["secretsmanager", "glue", "redshift-data", "sts", "logs"]] = Field(
        default_factory=list, examples=[["secretsmanager"]]
    )
    """Interface VPC endpoints to add (default none: each costs about $7/month per AZ)."""
    athena_bytes_scanned_cutoff_gib: int = Field(10, ge=1, le=10240, examples=[10])
    """Athena stops a query after scanning this many GiB (default 10), a cost guard."""
    quicksight: QuickSightConfig = Field(default_factory=QuickSightConfig)
    log_retention_days: int = Field(365, examples=[365])
    """Days Redshift's exported connection, user and user-activity logs are kept (default 365: audit evidence)."""

    _retention = checked_by(check_retention, "log_retention_days")

    @field_validator("base_capacity", "max_capacity")
    @classmethod
    def _check_rpu(cls, value: int) -> int:
        if value < 8 or value > 512 or value % 8:
            raise ValueError(f"got {value}, which is not a Redshift Serverless capacity (8 to 512 RPUs in steps of 8)")
        return value

    _check_cidr = matching("vpc_cidr", pattern=CIDR16_PATTERN, what="a private /16 such as 10.20.0.0/16")

    @model_validator(mode="after")
    def _max_above_base(self) -> "WarehouseConfig":
        if self.max_capacity < self.base_capacity:
            raise ValueError(
                f"got maxCapacity {self.max_capacity} below baseCapacity {self.base_capacity}; raise maxCapacity"
            )
        return self


class SiloConfig(CommonConfig):
    """Configuration of one `silo-<account-id>` stack."""

    kind: Literal["silo"] = "silo"
    account_id: str = Field(examples=["123456789012"])
    """The silo's AWS account id: exactly 12 digits."""
    silo_name: str = Field(examples=["sales"])
    """Short silo name used in resource names: 2-20 lowercase letters, digits or inner hyphens."""
    master_stack: str = Field(examples=[EXAMPLE_MASTER_STACK["diy"]])
    """Fully qualified name of the master stack whose outputs this silo reads, in this stack's backend:
    `organization/<project>/master` on a DIY backend (S3, file), `<org>/<project>/master` on Pulumi Cloud."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    dropzone: DropzoneConfig = Field(default_factory=DropzoneConfig, examples=[{"allowedOrigin": EXAMPLE_ORIGIN}])
    """The credential-vending API and its audit log (defaults: no CORS origin, MFA on, audit kept 365 days)."""
    sftp: SftpConfig = Field(default_factory=SftpConfig, examples=[{"enabled": True, "endpointType": "PUBLIC"}])
    """The SFTP endpoint (default: off; when enabled, a public endpoint)."""
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, examples=[{"enabled": True, "priceClass": "PriceClass_100"}])
    """The dropzone's web console (default: on, `PriceClass_100`, 60-minute sessions)."""
    datasets: list[DatasetConfig] = Field(default_factory=list, examples=[[EXAMPLE_DATASET]])
    """Datasets the silo ingests (default none: then no ingestion API, ETL job or pipeline is built)."""
    ingestion: IngestionConfig = Field(default_factory=IngestionConfig)
    etl: EtlConfig = Field(default_factory=EtlConfig)
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    sharing: SharingConfig = Field(default_factory=SharingConfig, examples=[{"masterQueries": True}])
    """Read-only sharing of processed data beyond the analytics OU (default: the master may query)."""
    adopt: dict[str, str] = Field(default_factory=dict, examples=[{EXAMPLE_ADOPT_KEY: "datalake-sales-raw-123456789012"}])
    """Retained resources of a returning account to import instead of create: `<type>::<logical name>`
    → provider id. Written by the runner from its ledger (docs/runner.md); nobody sets it by hand."""

    _check_account = checked_by(check_account_id, "account_id", mode="before")

    _check_silo_name = matching(
        "silo_name",
        pattern=SILO_NAME_PATTERN,
        what="2-20 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen "
        "(no capitals, no underscores)",
    )

    @field_validator("datasets")
    @classmethod
    def _unique_datasets(cls, value: list[DatasetConfig]) -> list[DatasetConfig]:
        names = [dataset.name for dataset in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"got dataset name(s) {', '.join(twice)} more than once; each dataset needs its own name, for example orders and returns")
        return value

    @field_validator("adopt")
    @classmethod
    def _check_adopt(cls, value: dict[str, str]) -> dict[str, str]:
        for key, ident in value.items():
            if not ADOPT_KEY_PATTERN.match(key):
                raise ValueError(f"key {key!r} is not <type>::<logical name>, for example {EXAMPLE_ADOPT_KEY}")
            if not str(ident).strip():
                raise ValueError(f"{key} has an empty id; remove the entry to create the resource instead")
        return {key: str(ident) for key, ident in value.items()}

    @field_validator("master_stack")
    @classmethod
    def _check_master_stack(cls, value: str, info: ValidationInfo) -> str:
        # A StackReference resolves in the backend of the stack that holds it.
        backend = backend_kind_of_organization((info.context or {}).get("organization"))
        try:
            reference = parse_stack_reference(value, backend)
        except PulumiNameError as error:
            raise ValueError(
                f"got {value!r}, which {BACKEND_NAMES[backend]} refuses: {error}; "
                f"for example: {EXAMPLE_MASTER_STACK[backend]}"
            ) from None
        environment = (info.data or {}).get("environment")
        if environment and reference.stack != master_stack_name(environment):
            # A silo of one environment must never trust (share data with) another environment's master.
            expected = value[: len(value) - len(reference.stack)] + master_stack_name(environment)
            raise ValueError(
                f"got {value!r}, but a silo of environment {environment!r} reads the master stack "
                f"{master_stack_name(environment)!r}; for example: {expected}"
            )
        return value

    @model_validator(mode="after")
    def _bucket_names_fit(self) -> "SiloConfig":
        if len(self.name_prefix) + len(self.silo_name) > PREFIX_AND_SILO_BUDGET:
            room = PREFIX_AND_SILO_BUDGET - len(self.name_prefix)
            raise ValueError(
                f"{NAMESPACE}:siloName {self.silo_name!r} after the prefix {self.name_prefix!r} makes bucket names such as "
                f"{self.name_prefix}-{self.silo_name}-athena-results-{self.account_id} longer than S3's 63 characters; "
                f"with this prefix a silo name may have at most {room} characters, for example {self.silo_name[:room].rstrip('-')}"
            )
        return self

    @model_validator(mode="after")
    def _console_exists_in_the_partition(self) -> "SiloConfig":
        partition = partition_of(self.region)
        if self.console.enabled and partition in CONSOLE_UNAVAILABLE:
            raise ValueError(
                f"{NAMESPACE}:console.enabled is true, but the dropzone console cannot be served in {partition} "
                f"(aws:region {self.region}): {CONSOLE_UNAVAILABLE[partition]}. Set {NAMESPACE}:console.enabled "
                "to false; partners still upload through the credential-vending API (and SFTP when enabled)"
            )
        return self
