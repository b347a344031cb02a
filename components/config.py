"""The stack configuration model: read once, validated eagerly, typed everywhere after.

Every key lives in the `datalake:` namespace (plus `aws:region`). A stack is either the `master`
stack or one `silo` stack per account (`datalake:kind`). Structured values are set with
`pulumi config set --path 'datalake:storage.dropzoneExpirationDays' 14` or written as YAML
objects in the stack file.

Bad configuration raises one `ConfigError` that lists every problem: the key, what was wrong and
an example of a right value. Capability sections (`storage`, and later ones) are sub-models with
secure defaults, so a minimal stack file stays short.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any, Literal, Optional, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .shared.errors import ConfigError
from .master.pulumi_cli import CHECKSUMS_URL, PULUMI_CLI_VERSION, SHA256_PATTERN, pinned_sha256
from .shared.pulumi_names import (
    BACKEND_NAMES,
    DIY,
    DIY_ORGANIZATION,
    BackendKind,
    PulumiNameError,
    backend_kind_of_organization,
    check_organization,
    parse_stack_reference,
)
from .shared.iam import SUPPORTED_PARTITIONS, partition_of
from .shared.environments import environment_problem, master_stack_name, name_namespace, resource_prefix

NAMESPACE = "datalake"
DEFAULT_DEPLOY_ROLE = "OrganizationAccountAccessRole"

ORG_ID_PATTERN = re.compile(r"^o-[a-z0-9]{10,32}$")
# Organizations entity path: o-<org>/r-<root>/ou-<root>-<ou>/.../ (always ends with a slash).
OU_PATH_PATTERN = re.compile(r"^o-[a-z0-9]{10,32}/r-[a-z0-9]{4,32}/(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}/)+$")
ACCOUNT_ID_PATTERN = re.compile(r"^\d{12}$")
# Silo names end up inside bucket names (63 chars max) and DNS labels: keep them short and plain.
SILO_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]$")
NAME_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,10}[a-z0-9]$")
# The longest bucket name is `<prefix>-<silo>-athena-results-<account-id>`, at most S3's 63 characters:
# the prefix and the silo name share 34. `<namePrefix>-<env>` may take up to 16 (the silo names of
# such an environment are then at most 18: the runner derives them that short).
PREFIX_AND_SILO_BUDGET = 34
MAX_ENVIRONMENT_PREFIX = 16
ENVIRONMENT_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$")
ROLE_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{1,64}$")
EXAMPLE_MASTER_STACK = {"diy": "organization/datalake/master", "service": "acme/datalake/master"}

EXAMPLE_ORG_ID = "o-a1b2c3d4e5"
EXAMPLE_SILO_OU_PATH = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/"
EXAMPLE_ANALYTICS_OU_PATH = "o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/"
# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


class _Model(BaseModel):
    """Config models: camelCase keys as in the stack files, unknown keys rejected, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _require(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"got {value!r}, which is not {what}")
    return value


class StorageConfig(_Model):
    """Lifecycle settings of a silo's buckets."""

    dropzone_expiration_days: int = Field(30, ge=1, le=3650, examples=[30])
    """Days after which partner uploads in the dropzone bucket expire (default 30)."""
    raw_infrequent_access_days: int = Field(30, ge=30, le=3650, examples=[30])
    """Days after which raw objects move to STANDARD_IA (default 30; S3 requires at least 30)."""
    noncurrent_version_expiration_days: int = Field(90, ge=1, le=3650, examples=[90])
    """Days a superseded object version is kept before it expires (default 90)."""
    abort_incomplete_multipart_days: int = Field(7, ge=1, le=365, examples=[7])
    """Days after which unfinished multipart uploads are aborted (default 7)."""


SCHEDULE_PATTERN = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$")
ORIGIN_PATTERN = re.compile(r"^https://[a-z0-9.-]+(:\d{1,5})?$")
VPC_ID_PATTERN = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID_PATTERN = re.compile(r"^subnet-[0-9a-f]{8,17}$")
EXAMPLE_ORIGIN = "https://d111111abcdef8.cloudfront.net"


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


def _check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"got {value}, which CloudWatch Logs does not accept; use one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return value


def _check_account_id(value: Any) -> str:
    text = str(value)
    if not ACCOUNT_ID_PATTERN.match(text):
        raise ValueError(f"got {text!r} ({len(text)} characters), which is not a 12-digit AWS account id")
    return text


def _check_role_name(value: str) -> str:
    return _require(ROLE_NAME_PATTERN, value, "an IAM role name (1-64 of letters, digits and +=,.@_-)")


def _check_cidrs(values: list[str]) -> list[str]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ValueError(f"got {value!r}, which is not a CIDR block such as 203.0.113.0/24") from None
    return values


class DropzoneConfig(_Model):
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

    @field_validator("audit_log_retention_days", "function_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @field_validator("allowed_origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        if value and not ORIGIN_PATTERN.match(value):
            raise ValueError(f"got {value!r}, which is not an https origin (scheme and host, no path or trailing slash)")
        return value

    @field_validator("janitor_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return _require(SCHEDULE_PATTERN, value, "an EventBridge schedule such as rate(1 hour) or cron(0 * * * ? *)")


class SftpConfig(_Model):
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

    @field_validator("vpc_id")
    @classmethod
    def _vpc(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _require(VPC_ID_PATTERN, value, "a VPC id such as vpc-0123456789abcdef0")

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, values: list[str]) -> list[str]:
        for value in values:
            _require(SUBNET_ID_PATTERN, value, "a subnet id such as subnet-0123456789abcdef0")
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


class ConsoleConfig(_Model):
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


class SharingConfig(_Model):
    """Who besides the analytics OU may read the silo's processed data (read-only, see docs/analytics.md)."""

    master_queries: bool = Field(True, examples=[True])
    """Whether the master account may query this silo through its org-wide Athena catalogs (default
    true: the master's analytics are always on). Grants the master account, inside the organization,
    read on the processed bucket, its objects' key (through S3) and the processed Glue database;
    false keeps the silo out of the master's queries (the analytics OU still reads it)."""


# Column types a dataset may declare: the Hive/Glue names, which Spark, Athena and Parquet share.
SIMPLE_COLUMN_TYPES = ("string", "int", "bigint", "double", "boolean", "timestamp", "date")
DECIMAL_TYPE_PATTERN = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
# Lowercase because Glue, Athena and Redshift fold identifiers to lowercase anyway.
DATASET_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,29}$")
COLUMN_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Columns the data flow adds itself: the raw partition `ingest_date` (Firehose), the processed
# partition `event_date` and the quarantine's `_reason`.
RESERVED_COLUMNS = ("ingest_date", "event_date", "_reason")
EXAMPLE_DATASET = {
    "name": "orders",
    "columns": [
        {"name": "order_id", "type": "string"},
        {"name": "amount", "type": "decimal(12,2)"},
        {"name": "ordered_at", "type": "timestamp"},
    ],
    "required": ["order_id", "ordered_at"],
    "dedupeKey": ["order_id"],
    "eventTimeColumn": "ordered_at",
}
CIDR16_PATTERN = re.compile(r"^(10|172|192)\.\d{1,3}\.0\.0/16$")


def column_type_problem(type_name: str) -> Optional[str]:
    """None when `type_name` is a supported column type, else what is wrong with it."""
    if type_name in SIMPLE_COLUMN_TYPES:
        return None
    match = DECIMAL_TYPE_PATTERN.match(type_name)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if 1 <= precision <= 38 and scale <= precision:
            return None
        return f"decimal({precision},{scale}) needs 1 <= precision <= 38 and scale <= precision"
    return f"{type_name!r} is not one of {', '.join(SIMPLE_COLUMN_TYPES)}, decimal(p,s)"


RULE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
NUMERIC_TYPES = ("int", "bigint", "double")
RULE_KINDS = ("notNull", "min/max", "allowedValues", "pattern", "unique")
EXAMPLE_RULES = [
    {"name": "amount_positive", "column": "amount", "min": 0.01},
    {"name": "known_channel", "column": "channel", "allowedValues": ["web", "store"]},
    {"name": "order_id_format", "column": "order_id", "pattern": "^o-[0-9]+$"},
    {"name": "one_row_per_order", "unique": ["order_id"]},
]


class QualityRule(_Model):
    """One data-quality check the ETL job applies to every row; failing rows are quarantined with
    `rule <name>:` in their reason. Exactly one of `notNull`, `min`/`max`, `allowedValues`,
    `pattern`, `unique`."""

    name: str = Field(examples=["amount_positive"])
    """Rule name (lowercase letters, digits, underscores): in quarantine reasons and metrics."""
    column: Optional[str] = Field(None, examples=["amount"])
    """The checked column (every kind but `unique`)."""
    not_null: bool = Field(False, examples=[True])
    """The column must hold a value (like `required`, but counted under the rule's name)."""
    min: Optional[Union[int, float, str]] = Field(None, examples=[0.01])
    """Smallest allowed value (numbers; ISO dates or timestamps for date and timestamp columns)."""
    max: Optional[Union[int, float, str]] = Field(None, examples=[10000])
    """Largest allowed value."""
    allowed_values: Optional[list[Union[bool, int, float, str]]] = Field(None, examples=[["web", "store"]])
    """The only values the column may hold (null aside)."""
    pattern: Optional[str] = Field(None, examples=["^o-[0-9]+$"])
    """Regular expression (Java syntax, as Spark's RLIKE) the column's text must match somewhere."""
    unique: Optional[list[str]] = Field(None, examples=[["order_id"]])
    """Columns whose values no two rows of one batch may share (rows with a null among them aside)."""

    def kinds(self) -> list[str]:
        present = {
            "notNull": self.not_null,
            "min/max": self.min is not None or self.max is not None,
            "allowedValues": self.allowed_values is not None,
            "pattern": self.pattern is not None,
            "unique": self.unique is not None,
        }
        return [kind for kind in RULE_KINDS if present[kind]]


class QualityConfig(_Model):
    """A dataset's data-quality rules and the share of rejected rows that raises an alarm."""

    rules: list[QualityRule] = Field(default_factory=list, examples=[EXAMPLE_RULES])
    """Checks applied to every row after the type checks (default none)."""
    max_quarantine_share: Optional[float] = Field(None, gt=0, le=1, examples=[0.05])
    """Largest share of a run's rows that may be quarantined before the silo's alert topic hears of
    it (a CloudWatch alarm on the job's `QuarantineShare` metric; default none: no alarm)."""


def _bound_problem(value: Any, type_name: str) -> Optional[str]:
    """None when `value` is a valid bound or allowed value for a column of `type_name`."""
    if type_name in NUMERIC_TYPES or DECIMAL_TYPE_PATTERN.match(type_name):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if type_name in ("int", "bigint") and not float(value).is_integer():
            return f"{value!r} is not an integer"
        return None
    if type_name in ("date", "timestamp"):
        import datetime as dt

        try:
            (dt.date if type_name == "date" else dt.datetime).fromisoformat(str(value))
        except ValueError:
            return f"{value!r} is not an ISO {type_name} such as {'2024-05-01' if type_name == 'date' else '2024-05-01T00:00:00'}"
        return None
    if type_name == "boolean":
        return None if isinstance(value, bool) else f"{value!r} is not true or false"
    return None if isinstance(value, str) else f"{value!r} is not text"


def quality_problems(where: str, quality: QualityConfig, types: Mapping[str, str]) -> list[str]:
    """Every problem of a dataset's quality rules, each naming the rule and the fix."""
    problems, seen = [], set()
    for rule in quality.rules:
        at = f"{where}, rule {rule.name!r}"
        if not RULE_NAME_PATTERN.match(rule.name):
            problems.append(f"{at}: name must be lowercase letters, digits or underscores starting with a letter")
        if rule.name in seen:
            problems.append(f"{at}: declared twice; each rule needs its own name")
        seen.add(rule.name)
        kinds = rule.kinds()
        if len(kinds) != 1:
            problems.append(
                f"{at}: declares {' and '.join(kinds) if kinds else 'no check'}; give exactly one of "
                f"{', '.join(RULE_KINDS)} per rule"
            )
            continue
        if kinds == ["unique"]:
            unknown = [c for c in rule.unique or [] if c not in types]
            if not rule.unique or unknown:
                problems.append(f"{at}: unique names {unknown or 'no column'}; list columns of the dataset")
            if rule.column is not None:
                problems.append(f"{at}: a unique rule takes its columns in unique, not column")
            continue
        if rule.column not in types:
            problems.append(f"{at}: column {rule.column!r} is not in columns; name the checked column")
            continue
        type_name = types[rule.column]
        if kinds == ["min/max"]:
            if type_name in ("string", "boolean"):
                problems.append(f"{at}: min/max needs a number, date or timestamp column, not {type_name}")
                continue
            bound_problems = [
                f"{at}: {key} {problem} (column {rule.column!r} is {type_name})"
                for key, bound in (("min", rule.min), ("max", rule.max))
                if bound is not None and (problem := _bound_problem(bound, type_name))
            ]
            problems += bound_problems
            # ISO dates and timestamps of one form compare as text.
            if not bound_problems and rule.min is not None and rule.max is not None and rule.min > rule.max:  # type: ignore[operator]
                problems.append(f"{at}: min {rule.min!r} is above max {rule.max!r}; swap them")
        elif kinds == ["allowedValues"]:
            if not rule.allowed_values:
                problems.append(f"{at}: allowedValues is empty; list the values the column may hold")
            for value in rule.allowed_values or []:
                problem = _bound_problem(value, type_name)
                if problem:
                    problems.append(f"{at}: allowed value {problem} (column {rule.column!r} is {type_name})")
        elif kinds == ["pattern"]:
            try:
                re.compile(rule.pattern or "")
            except re.error as exc:
                problems.append(f"{at}: pattern {rule.pattern!r} is not a regular expression ({exc})")
    return problems


class DatasetColumn(_Model):
    """One column of a dataset's schema."""

    name: str = Field(examples=["order_id"])
    """Column name: lowercase letters, digits and underscores, starting with a letter or underscore."""
    type: str = Field(examples=["string"])
    """One of string, int, bigint, double, boolean, timestamp, date, decimal(p,s)."""


class DatasetConfig(_Model):
    """A dataset the silo ingests: its API path, Firehose stream, Glue tables and Redshift table."""

    name: str = Field(examples=["orders"])
    """Dataset name (2-30 lowercase letters, digits, underscores): the API path, S3 prefix and table name."""
    columns: list[DatasetColumn] = Field(examples=[EXAMPLE_DATASET["columns"]])
    """The schema, in order: at least one column, names unique."""
    required: list[str] = Field(default_factory=list, examples=[["order_id"]])
    """Columns every record must carry (default none besides the event time column)."""
    dedupe_key: list[str] = Field(default_factory=list, examples=[["order_id"]])
    """Columns that identify a record: the ETL job keeps only the latest row per key (default: no dedupe)."""
    event_time_column: str = Field(examples=["ordered_at"])
    """A timestamp or date column: processed data is partitioned by its (UTC) date and the latest duplicate wins."""
    quality: QualityConfig = Field(default_factory=QualityConfig, examples=[{"rules": EXAMPLE_RULES, "maxQuarantineShare": 0.05}])
    """Data-quality rules and the alarm threshold (default: no rules, no alarm)."""

    @model_validator(mode="after")
    def _check_schema(self) -> "DatasetConfig":
        where = f"dataset {self.name!r}"
        problems = []
        if not DATASET_NAME_PATTERN.match(self.name):
            problems.append(f"{where}: name must be 2-30 lowercase letters, digits or underscores starting with a letter")
        if not self.columns:
            problems.append(f"{where}: the schema is empty; declare at least one column, for example {{name: id, type: string}}")
        seen: set[str] = set()
        types = {}
        for column in self.columns:
            at = f"{where}, column {column.name!r}"
            if not COLUMN_NAME_PATTERN.match(column.name):
                problems.append(f"{at}: name must be lowercase letters, digits or underscores (at most 63)")
            if column.name in RESERVED_COLUMNS:
                problems.append(f"{at}: the name is reserved for the data flow's own columns ({', '.join(RESERVED_COLUMNS)}); rename it")
            if column.name in seen:
                problems.append(f"{at}: declared twice; each column name must appear once")
            seen.add(column.name)
            type_problem = column_type_problem(column.type)
            if type_problem:
                problems.append(f"{at}: type {type_problem}; for example: decimal(12,2)")
            types[column.name] = column.type
        for list_name, names in (("required", self.required), ("dedupeKey", self.dedupe_key)):
            for name in names:
                if name not in types:
                    problems.append(f"{where}: {list_name} names column {name!r}, which is not in columns")
        if self.event_time_column not in types:
            problems.append(f"{where}: eventTimeColumn names column {self.event_time_column!r}, which is not in columns")
        elif types[self.event_time_column] not in ("timestamp", "date"):
            problems.append(
                f"{where}, column {self.event_time_column!r}: eventTimeColumn must be of type timestamp or date, "
                f"not {types[self.event_time_column]}"
            )
        problems += quality_problems(where, self.quality, types)
        if problems:
            raise ValueError("got " + "; ".join(problems))
        return self

    @property
    def required_columns(self) -> list[str]:
        """Required columns, the event time column always among them (a row needs a partition)."""
        return list(dict.fromkeys([*self.required, self.event_time_column]))


class IngestionConfig(_Model):
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

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @field_validator("buffering_size_mib")
    @classmethod
    def _check_buffer(cls, value: int) -> int:
        if not 64 <= value <= 128:
            raise ValueError(
                f"got {value}, but Firehose needs 64-128 MiB when it converts records to Parquet"
            )
        return value


class EtlConfig(_Model):
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

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        return _require(SCHEDULE_PATTERN, value, "an EventBridge schedule such as rate(1 day) or cron(0 3 * * ? *)")


class QuickSightConfig(_Model):
    """Optional QuickSight data source on the silo's Athena workgroup."""

    enabled: bool = Field(False, examples=[False])
    """Create the data source (default false: QuickSight needs an account subscription)."""
    owner_arn: Optional[str] = Field(None, examples=["arn:aws:quicksight:eu-west-1:123456789012:group/default/analysts"])
    """QuickSight user or group that owns the data source (default none)."""


class WarehouseConfig(_Model):
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

    @field_validator("base_capacity", "max_capacity")
    @classmethod
    def _check_rpu(cls, value: int) -> int:
        if value < 8 or value > 512 or value % 8:
            raise ValueError(f"got {value}, which is not a Redshift Serverless capacity (8 to 512 RPUs in steps of 8)")
        return value

    @field_validator("vpc_cidr")
    @classmethod
    def _check_cidr(cls, value: str) -> str:
        return _require(CIDR16_PATTERN, value, "a private /16 such as 10.20.0.0/16")

    @model_validator(mode="after")
    def _max_above_base(self) -> "WarehouseConfig":
        if self.max_capacity < self.base_capacity:
            raise ValueError(
                f"got maxCapacity {self.max_capacity} below baseCapacity {self.base_capacity}; raise maxCapacity"
            )
        return self


class ArtifactsConfig(_Model):
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


class _InstallsPulumiCli(_Model):
    """Checks of the `pulumiVersion` / `pulumiCliSha256` pair a build that installs the CLI declares."""

    @field_validator("pulumi_version", check_fields=False)
    @classmethod
    def _check_version(cls, value: str) -> str:
        return _require(VERSION_PATTERN, value, "a Pulumi CLI version such as 3.272.0")

    @field_validator("pulumi_cli_sha256", check_fields=False)
    @classmethod
    def _check_sha256(cls, value: Optional[str]) -> Optional[str]:
        return value if value is None else _require(SHA256_PATTERN, value, "a SHA-256 (64 lowercase hex digits)")


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

    @field_validator("repository")
    @classmethod
    def _check_repository(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _require(REPOSITORY_PATTERN, value, "a repository id such as owner/name")

    @field_validator("connection_arn")
    @classmethod
    def _check_connection(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _require(CONNECTION_ARN_PATTERN, value, "a CodeConnections connection ARN")

    @field_validator("source_object_key")
    @classmethod
    def _check_key(cls, value: str) -> str:
        return _require(S3_KEY_PATTERN, value, "an S3 object key such as source/datalake.zip")

    @field_validator("secrets_key_arn")
    @classmethod
    def _check_secrets_key(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _require(KMS_KEY_ARN_PATTERN, value, "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")

    @field_validator("master_deploy_role_name")
    @classmethod
    def _check_role(cls, value: str) -> str:
        return _check_role_name(value)

    @field_validator("log_retention_days")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        return _check_retention(value)

    @model_validator(mode="after")
    def _codestar_needs_repository(self) -> "DeliveryConfig":
        if self.source == "codestar" and self.repository is None:
            raise ValueError(
                f"{NAMESPACE}:delivery.repository is required when delivery.source is 'codestar'; "
                "for example: acme/datalake (or set delivery.source to 's3')"
            )
        return self


class AnalyticsConfig(_Model):
    """The master's org-wide analytics: an Athena workgroup and one data catalog per ACTIVE silo account."""

    catalog_prefix: str = Field("silo_", examples=["silo_"])
    """Prefix of each silo's Athena catalog name (default `silo_`): queries read `silo_<name>.<db>.<table>`."""
    bytes_scanned_cutoff_per_query: int = Field(10 * 1024**3, ge=10 * 1024**2, examples=[10737418240])
    """Queries scanning more bytes are cancelled (default 10 GiB, minimum 10 MiB): a cost guard."""
    results_expiration_days: int = Field(30, ge=1, le=3650, examples=[30])
    """Days query results are kept in the master's results bucket (default 30)."""

    @field_validator("catalog_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return _require(
            ATHENA_PREFIX_PATTERN, value, "1-20 lowercase letters, digits or underscores starting with a letter"
        )
SCHEDULE_PATTERN = re.compile(r"^(rate\(1 (minute|hour|day)\)|rate\([1-9]\d* (minutes|hours|days)\)|cron\([^()]+\))$")
BUCKET_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


ADOPT_KEY_PATTERN = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9/._-]*:[A-Za-z0-9]+::\S+$")
EXAMPLE_ADOPT_KEY = "aws:s3/bucket:Bucket::silo-sales-storage-raw-bucket"


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

    @field_validator("schedule", "drift_schedule")
    @classmethod
    def _check_schedule(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        return _require(SCHEDULE_PATTERN, value, "an EventBridge schedule such as rate(1 hour) or cron(0 * * * ? *)")

    @field_validator("state_bucket")
    @classmethod
    def _check_bucket(cls, value: Optional[str]) -> Optional[str]:
        return value if value is None else _require(BUCKET_NAME_PATTERN, value, "an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)")

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
            _require(ACCOUNT_ID_PATTERN, str(account), "a 12-digit AWS account id")
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


class CommonConfig(_Model):
    """Keys both stack kinds share."""

    region: str = Field(examples=["eu-west-1"])
    """AWS region every resource of the stack is created in (`aws:region`)."""
    environment: Optional[str] = Field(None, examples=["staging"])
    """The data lake this stack belongs to (default none: the default environment, named as ever).
    Environment `<env>` has the stacks `master-<env>` and `silo-<env>-<account-id>`, its own files,
    and physical names that start with `<namePrefix>-<env>` (components/shared/environments.py)."""
    name_prefix: str = Field("datalake", examples=["acme-dl"])
    """Prefix of every physical name (default `datalake`): lowercase, 2-12 characters. In environment
    `<env>` the names start with `<namePrefix>-<env>` (at most 16 characters), which `name_prefix` then
    holds; the delivery's deployer role then defaults to `<namePrefix>-<env>-master-deployer`."""
    organization_id: str = Field(examples=[EXAMPLE_ORG_ID])
    """The AWS Organizations id, `o-` and 10-32 lowercase letters or digits."""
    silo_ou_path: str = Field(examples=[EXAMPLE_SILO_OU_PATH])
    """Entity path of the OU whose accounts are silos, `o-…/r-…/ou-…/`."""
    analytics_ou_path: str = Field(examples=[EXAMPLE_ANALYTICS_OU_PATH])
    """Entity path of the OU whose principals may read every silo's processed data."""
    deploy_role_name: str = Field(DEFAULT_DEPLOY_ROLE, examples=[DEFAULT_DEPLOY_ROLE])
    """Role the master assumes in each silo account to deploy (default `OrganizationAccountAccessRole`)."""
    tags: dict[str, str] = Field(default_factory=dict, examples=[{"cost-center": "data"}])
    """Tags added to every resource that takes tags (default none)."""

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        _require(re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$"), value, "an AWS region name")
        if "-iso" in value:
            raise ValueError(
                f"got {value!r}, a region of an isolated partition; the program supports the "
                f"{', '.join(SUPPORTED_PARTITIONS)} partitions only, for example eu-west-1, cn-north-1 or us-gov-west-1"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _prefix_of_the_environment(cls, data: Any) -> Any:
        """In environment `<env>` every physical name starts with `<namePrefix>-<env>`, so that two
        environments in one account never share a name while their files keep the same namePrefix."""
        if not isinstance(data, Mapping):
            return data
        environment = data.get("environment")
        raw = data.get("namePrefix", data.get("name_prefix", "datalake"))
        if not isinstance(environment, str) or environment_problem(environment) or not isinstance(raw, str):
            return data  # the field validators report a bad environment or prefix as they are
        if not NAME_PREFIX_PATTERN.match(raw):
            return data
        prefix = resource_prefix(raw, environment)
        if len(prefix) > MAX_ENVIRONMENT_PREFIX:
            raise ValueError(
                f"{NAMESPACE}:namePrefix {raw!r} and {NAMESPACE}:environment {environment!r} make every physical name start "
                f"with {prefix!r} ({len(prefix)} characters), more than the {MAX_ENVIRONMENT_PREFIX} that keep bucket names "
                f"within S3's 63; shorten one of them: an environment of at most "
                f"{max(MAX_ENVIRONMENT_PREFIX - len(raw) - 1, 0)} characters with this namePrefix, or a namePrefix of at most "
                f"{MAX_ENVIRONMENT_PREFIX - len(environment) - 1} with this environment"
            )
        data = {key: value for key, value in data.items() if key not in ("namePrefix", "name_prefix")}
        data["namePrefix"] = prefix
        delivery = decode_structured(data.get("delivery"))
        named = {"masterDeployRoleName", "master_deploy_role_name"}
        if "delivery" in cls.model_fields and isinstance(delivery, Mapping) and not named & set(delivery):
            # `datalake-master-deployer` is the default environment's role; both masters may share an account.
            data["delivery"] = {**delivery, "masterDeployRoleName": f"{prefix}-master-deployer"}
        analytics = decode_structured(data.get("analytics", {}))
        if "analytics" in cls.model_fields and isinstance(analytics, Mapping):
            # Athena catalog names are unique per account and region: `silo_<env>_<account name>`.
            catalog_prefix = analytics.get("catalogPrefix", analytics.get("catalog_prefix", "silo_"))
            if isinstance(catalog_prefix, str):
                rest = {k: v for k, v in analytics.items() if k not in ("catalogPrefix", "catalog_prefix")}
                data["analytics"] = {**rest, "catalogPrefix": f"{catalog_prefix}{environment}_"}
        return data

    @field_validator("environment")
    @classmethod
    def _check_environment(cls, value: Optional[str]) -> Optional[str]:
        problem = None if value is None else environment_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("name_prefix")
    @classmethod
    def _check_prefix(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("environment"):
            return _require(ENVIRONMENT_PREFIX_PATTERN, value, f"a prefix of at most {MAX_ENVIRONMENT_PREFIX} characters")
        return _require(NAME_PREFIX_PATTERN, value, "2-12 lowercase letters, digits or hyphens starting with a letter")

    @property
    def namespace(self) -> str:
        """First part of the log-group names and IAM paths that carry no prefix: `datalake` or `datalake-<env>`."""
        return name_namespace(self.environment)

    @field_validator("organization_id")
    @classmethod
    def _check_org(cls, value: str) -> str:
        return _require(ORG_ID_PATTERN, value, "an organization id ('o-' then 10-32 lowercase letters or digits)")

    @field_validator("silo_ou_path", "analytics_ou_path")
    @classmethod
    def _check_ou_path(cls, value: str) -> str:
        return _require(OU_PATH_PATTERN, value, "an OU entity path of the form o-…/r-…/ou-…/ ending with '/'")

    @field_validator("deploy_role_name")
    @classmethod
    def _check_role(cls, value: str) -> str:
        return _check_role_name(value)

    @model_validator(mode="after")
    def _paths_belong_to_org(self) -> "CommonConfig":
        for field_name in ("silo_ou_path", "analytics_ou_path"):
            path = getattr(self, field_name)
            if not path.startswith(f"{self.organization_id}/"):
                raise ValueError(
                    f"{NAMESPACE}:{to_camel(field_name)} {path!r} is not inside organization "
                    f"{self.organization_id!r}; the path must start with '{self.organization_id}/'"
                )
        if self.silo_ou_path == self.analytics_ou_path:
            raise ValueError(
                f"{NAMESPACE}:siloOuPath and {NAMESPACE}:analyticsOuPath are the same OU; "
                "analytics principals must live in their own OU so silos stay segregated"
            )
        return self


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

    @field_validator("management_account_id", mode="before")
    @classmethod
    def _check_management_account(cls, value: Any) -> str:
        return _check_account_id(value)

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

    def runner_secrets_provider(self) -> str:
        """Secrets provider of silo stacks: `runner.secretsProvider`, else the master key's alias."""
        return self.runner.secrets_provider or f"awskms://alias/{self.name_prefix}-master?region={self.region}"


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
    """The SFTP endpoint (default: on, public endpoint)."""
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

    @field_validator("account_id", mode="before")
    @classmethod
    def _check_account(cls, value: Any) -> str:
        return _check_account_id(value)

    @field_validator("silo_name")
    @classmethod
    def _check_silo_name(cls, value: str) -> str:
        return _require(
            SILO_NAME_PATTERN,
            value,
            "2-20 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen "
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


StackConfig = Union[MasterConfig, SiloConfig]
_MODELS: dict[str, type[CommonConfig]] = {"master": MasterConfig, "silo": SiloConfig}


def decode_structured(value: Any) -> Any:
    """Pulumi hands structured config values (to programs and providers) as JSON text."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _key_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return f"{NAMESPACE}:<stack>"
    head, *rest = loc
    key = "aws:region" if head == "region" else f"{NAMESPACE}:{head}"
    for part in rest:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key


def _example_for(model: type[BaseModel], loc: tuple[Any, ...]) -> Optional[Any]:
    current: Any = model
    field = None
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return None
        current = field.annotation
        # Optional[SubModel]: look inside for the sub-model's own fields.
        models = [a for a in get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            current = models[0]
    if field is not None and field.examples:
        return field.examples[0]
    return None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The (sub-)model that holds the key at `loc`, so an unknown nested key lists its siblings."""
    current = model
    for part in loc:
        field = next((f for name, f in current.model_fields.items() if part in (name, f.alias)), None)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        current = annotation
    return current


def _describe(model: type[BaseModel], error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = _key_name(loc)
    example = _example_for(model, loc)
    kind = error["type"]
    if kind == "missing":
        problem = "is required but not set"
    elif kind == "extra_forbidden":
        known = sorted(f.alias or name for name, f in _model_at(model, loc[:-1]).model_fields.items())
        return f"{key}: is not a known key; check its spelling. Known keys: {', '.join(known)}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc or message.startswith(f"{NAMESPACE}:"):
            # Cross-field checks already name their keys and the fix.
            return message
        problem = message if message.startswith("got ") else f"got {error.get('input')!r}: {message}"
    hint = f"; for example: {json.dumps(example) if not isinstance(example, str) else example}" if example is not None else ""
    if "for example" in problem:  # the validator already showed a right value
        hint = ""
    return f"{key}: {problem}{hint}"


def parse_stack_config(
    stack: str,
    raw: Mapping[str, Any],
    *,
    organization: Optional[str] = None,
    runner_backend: BackendKind = DIY,
) -> StackConfig:
    """Validates a stack's raw config (`{"datalake:kind": "silo", "aws:region": ..., ...}`).

    Keys of other namespaces except `aws:region` are ignored (providers read their own).
    `organization` is the running stack's (`pulumi.get_organization()`: `organization` on DIY
    backends, the owner on Pulumi Cloud; None is read as DIY): `masterStack` must be a name its
    backend accepts. `runner_backend` is the kind of backend the runner's stacks live in, which
    `runner.pulumiOrg` must suit (default DIY: the runner's build uses the S3 state backend).
    Raises `ConfigError` listing every problem at once.
    """
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE:
            values[key] = decode_structured(value)
        elif full_key == "aws:region":
            values["region"] = value

    kind = values.pop("kind", None)
    if kind not in _MODELS:
        got = "is not set" if kind is None else f"got {kind!r}"
        raise ConfigError(
            stack,
            [f"{NAMESPACE}:kind: {got}; it must be 'master' or 'silo', for example: pulumi config set {NAMESPACE}:kind silo"],
        )
    model = _MODELS[kind]
    try:
        return model.model_validate(values, context={"organization": organization, "runner_backend": runner_backend})
    except ValidationError as exc:
        raise ConfigError(stack, [_describe(model, error) for error in exc.errors()]) from None


def load_stack_config() -> StackConfig:
    """Reads and validates the running Pulumi stack's configuration (call once, from the program)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return parse_stack_config(pulumi.get_stack(), raw, organization=pulumi.get_organization())
