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


# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
SCHEDULE_PATTERN = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$")
ORIGIN_PATTERN = re.compile(r"^https://[a-z0-9.-]+(:\d{1,5})?$")
VPC_ID_PATTERN = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID_PATTERN = re.compile(r"^subnet-[0-9a-f]{8,17}$")
EXAMPLE_ORIGIN = "https://d111111abcdef8.cloudfront.net"


def _check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"got {value}, which CloudWatch Logs does not accept; use one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return value


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

    enabled: bool = Field(True, examples=[True])
    """Whether the silo gets an SFTP server (default true). Turning it off removes every Transfer resource."""
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
        return _require(re.compile(r"^TransferSecurityPolicy-[A-Za-z0-9-]+$"), value, "a Transfer security policy name")

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
    dropzone: DropzoneConfig = Field(default_factory=DropzoneConfig, examples=[{"allowedOrigin": EXAMPLE_ORIGIN}])
    """The credential-vending API and its audit log (defaults: no CORS origin, MFA on, audit kept 365 days)."""
    sftp: SftpConfig = Field(default_factory=SftpConfig, examples=[{"enabled": True, "endpointType": "PUBLIC"}])
    """The SFTP endpoint (default: on, public endpoint)."""
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, examples=[{"enabled": True, "priceClass": "PriceClass_100"}])
    """The dropzone's web console (default: on, `PriceClass_100`, 60-minute sessions)."""

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
        if not loc:
            return message
        problem = message if message.startswith("got ") else f"got {error.get('input')!r}: {message}"
    hint = f"; for example: {json.dumps(example) if not isinstance(example, str) else example}" if example is not None else ""
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
