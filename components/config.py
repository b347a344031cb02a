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

import json
import re
from collections.abc import Mapping
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .errors import ConfigError

NAMESPACE = "datalake"
DEFAULT_DEPLOY_ROLE = "OrganizationAccountAccessRole"

ORG_ID_PATTERN = re.compile(r"^o-[a-z0-9]{10,32}$")
# Organizations entity path: o-<org>/r-<root>/ou-<root>-<ou>/.../ (always ends with a slash).
OU_PATH_PATTERN = re.compile(r"^o-[a-z0-9]{10,32}/r-[a-z0-9]{4,32}/(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}/)+$")
ACCOUNT_ID_PATTERN = re.compile(r"^\d{12}$")
# Silo names end up inside bucket names (63 chars max) and DNS labels: keep them short and plain.
SILO_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]$")
NAME_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,10}[a-z0-9]$")
ROLE_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{1,64}$")
STACK_REF_PATTERN = re.compile(r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")

EXAMPLE_ORG_ID = "o-a1b2c3d4e5"
EXAMPLE_SILO_OU_PATH = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/"
EXAMPLE_ANALYTICS_OU_PATH = "o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/"


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


# Column types a dataset may declare: the Hive/Glue names, which Spark, Athena and Parquet share.
SIMPLE_COLUMN_TYPES = ("string", "int", "bigint", "double", "boolean", "timestamp", "date")
DECIMAL_TYPE_PATTERN = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
# Lowercase because Glue, Athena and Redshift fold identifiers to lowercase anyway.
DATASET_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,29}$")
COLUMN_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Partition columns the data flow adds itself: raw `year/month/day` (Firehose), processed `event_date`.
RESERVED_COLUMNS = ("year", "month", "day", "event_date")
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
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
SCHEDULE_PATTERN = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$")
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
    """A timestamp or date column: processed data is partitioned by its date and the latest duplicate wins."""

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
                problems.append(f"{at}: the name is reserved for partitions ({', '.join(RESERVED_COLUMNS)}); rename it")
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
    def _check_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"got {value}, which CloudWatch Logs does not offer; pick one of {list(LOG_RETENTION_DAYS)}")
        return value

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


class CommonConfig(_Model):
    """Keys both stack kinds share."""

    region: str = Field(examples=["eu-west-1"])
    """AWS region every resource of the stack is created in (`aws:region`)."""
    name_prefix: str = Field("datalake", examples=["acme-dl"])
    """Prefix of every physical name (default `datalake`): lowercase, 2-12 characters."""
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
        return _require(re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$"), value, "an AWS region name")

    @field_validator("name_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return _require(NAME_PREFIX_PATTERN, value, "2-12 lowercase letters, digits or hyphens starting with a letter")

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
        return _require(ROLE_NAME_PATTERN, value, "an IAM role name (1-64 of letters, digits and +=,.@_-)")

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
    artifacts: ArtifactsConfig = Field(default_factory=ArtifactsConfig)


class SiloConfig(CommonConfig):
    """Configuration of one `silo-<account-id>` stack."""

    kind: Literal["silo"] = "silo"
    account_id: str = Field(examples=["123456789012"])
    """The silo's AWS account id: exactly 12 digits."""
    silo_name: str = Field(examples=["sales"])
    """Short silo name used in resource names: 2-20 lowercase letters, digits or inner hyphens."""
    master_stack: str = Field(examples=["acme/datalake/master"])
    """Fully qualified name of the master stack whose outputs this silo reads."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    datasets: list[DatasetConfig] = Field(default_factory=list, examples=[[EXAMPLE_DATASET]])
    """Datasets the silo ingests (default none: then no ingestion API, ETL job or pipeline is built)."""
    ingestion: IngestionConfig = Field(default_factory=IngestionConfig)
    etl: EtlConfig = Field(default_factory=EtlConfig)
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)

    @field_validator("account_id", mode="before")
    @classmethod
    def _check_account(cls, value: Any) -> str:
        text = str(value)
        if not ACCOUNT_ID_PATTERN.match(text):
            raise ValueError(f"got {text!r} ({len(text)} characters), which is not a 12-digit AWS account id")
        return text

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

    @field_validator("master_stack")
    @classmethod
    def _check_master_stack(cls, value: str) -> str:
        return _require(STACK_REF_PATTERN, value, "a stack name such as <org>/<project>/<stack>")


StackConfig = Union[MasterConfig, SiloConfig]
_MODELS: dict[str, type[CommonConfig]] = {"master": MasterConfig, "silo": SiloConfig}


def _decode(value: Any) -> Any:
    """Pulumi hands structured config values to programs as JSON text."""
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
    if field is not None and field.examples:
        return field.examples[0]
    return None


def _describe(model: type[BaseModel], error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = _key_name(loc)
    example = _example_for(model, loc)
    kind = error["type"]
    if kind == "missing":
        problem = "is required but not set"
    elif kind == "extra_forbidden":
        known = sorted(f.alias or name for name, f in model.model_fields.items())
        return f"{key}: is not a known key; check its spelling. Known keys: {', '.join(known)}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc:
            return message
        problem = message if message.startswith("got ") else f"got {error.get('input')!r}: {message}"
    hint = f"; for example: {json.dumps(example) if not isinstance(example, str) else example}" if example is not None else ""
    if "for example" in problem:  # the validator already showed a right value
        hint = ""
    return f"{key}: {problem}{hint}"


def parse_stack_config(stack: str, raw: Mapping[str, Any]) -> StackConfig:
    """Validates a stack's raw config (`{"datalake:kind": "silo", "aws:region": ..., ...}`).

    Keys of other namespaces except `aws:region` are ignored (providers read their own).
    Raises `ConfigError` listing every problem at once.
    """
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE:
            values[key] = _decode(value)
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
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(stack, [_describe(model, error) for error in exc.errors()]) from None


def load_stack_config() -> StackConfig:
    """Reads and validates the running Pulumi stack's configuration (call once, from the program)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return parse_stack_config(pulumi.get_stack(), raw)
