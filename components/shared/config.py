"""The configuration models' common ground: the base model, shared checks, the keys every stack has.

Every key lives in the `datalake:` namespace (plus `aws:region`). A stack is either the `master`
stack or one `silo` stack per account (`datalake:kind`). Structured values are set with
`pulumi config set --path 'datalake:storage.dropzoneExpirationDays' 14` or written as YAML
objects in the stack file.

Bad configuration raises one `ConfigError` that lists every problem: the key, what was wrong and
an example of a right value (`describe_error`). Each area keeps the models of its capabilities next
to its components (`components/master/config.py`, `components/silo/config.py`); the stack-level
models and `parse_stack_config` are in `components/stack_config.py`. Capability sections are
sub-models with secure defaults, so a minimal stack file stays short.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .environments import environment_problem, name_namespace, resource_prefix
from .iam import SUPPORTED_PARTITIONS


NAMESPACE = "datalake"
DEFAULT_DEPLOY_ROLE = "OrganizationAccountAccessRole"

ORG_ID_PATTERN = re.compile(r"^o-[a-z0-9]{10,32}$")
# Organizations entity path: o-<org>/r-<root>/ou-<root>-<ou>/.../ (always ends with a slash).
OU_PATH_PATTERN = re.compile(r"^o-[a-z0-9]{10,32}/r-[a-z0-9]{4,32}/(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}/)+$")
ACCOUNT_ID_PATTERN = re.compile(r"^\d{12}$")
NAME_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,10}[a-z0-9]$")
# `<namePrefix>-<env>` may take up to 16 characters of a bucket name (silo/config.py, PREFIX_AND_SILO_BUDGET).
MAX_ENVIRONMENT_PREFIX = 16
ENVIRONMENT_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$")
ROLE_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{1,64}$")

EXAMPLE_ORG_ID = "o-a1b2c3d4e5"
EXAMPLE_SILO_OU_PATH = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/"
EXAMPLE_ANALYTICS_OU_PATH = "o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/"
# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


# An EventBridge schedule expression: rate(1 hour), rate(5 minutes), cron(0 3 * * ? *).
SCHEDULE_PATTERN = re.compile(r"^(rate\(1 (minute|hour|day)\)|rate\([1-9]\d* (minutes|hours|days)\)|cron\([^()]+\))$")


class ConfigModel(BaseModel):
    """Config models: camelCase keys as in the stack files, unknown keys rejected, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def require_match(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"got {value!r}, which is not {what}")
    return value


def matching(field: str, *fields: str, pattern: re.Pattern[str], what: str, check_fields: Optional[bool] = None) -> Any:
    """A field validator: `field` (and `fields`), when set, must match `pattern`; the error names `what`
    is expected. Assign it to a class attribute of its own, as a `@field_validator` method would be."""

    def check(cls: type, value: Optional[str]) -> Optional[str]:
        return value if value is None else require_match(pattern, value, what)

    return field_validator(field, *fields, check_fields=check_fields)(check)


def checked_by(check: Callable[[Any], Any], field: str, *fields: str, mode: Literal["before", "after"] = "after") -> Any:
    """A field validator that returns `check(value)` for `field` (and `fields`); assign it to a class
    attribute of its own, as a `@field_validator` method would be."""

    def validate(cls: type, value: Any) -> Any:
        return check(value)

    return field_validator(field, *fields, mode=mode)(validate)


def check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"got {value}, which CloudWatch Logs does not accept; use one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return value


def check_account_id(value: Any) -> str:
    text = str(value)
    if not ACCOUNT_ID_PATTERN.match(text):
        raise ValueError(f"got {text!r} ({len(text)} characters), which is not a 12-digit AWS account id")
    return text


def check_role_name(value: str) -> str:
    return require_match(ROLE_NAME_PATTERN, value, "an IAM role name (1-64 of letters, digits and +=,.@_-)")


class StorageConfig(ConfigModel):
    """Lifecycle settings of a silo's buckets (`SiloStorage`, components/shared/storage.py)."""

    dropzone_expiration_days: int = Field(30, ge=1, le=3650, examples=[30])
    """Days after which partner uploads in the dropzone bucket expire (default 30)."""
    raw_infrequent_access_days: int = Field(30, ge=30, le=3650, examples=[30])
    """Days after which raw objects move to STANDARD_IA (default 30; S3 requires at least 30)."""
    noncurrent_version_expiration_days: int = Field(90, ge=1, le=3650, examples=[90])
    """Days a superseded object version is kept before it expires (default 90)."""
    abort_incomplete_multipart_days: int = Field(7, ge=1, le=365, examples=[7])
    """Days after which unfinished multipart uploads are aborted (default 7)."""


class CommonConfig(ConfigModel):
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
        require_match(re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$"), value, "an AWS region name")
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
            return require_match(ENVIRONMENT_PREFIX_PATTERN, value, f"a prefix of at most {MAX_ENVIRONMENT_PREFIX} characters")
        return require_match(NAME_PREFIX_PATTERN, value, "2-12 lowercase letters, digits or hyphens starting with a letter")

    @property
    def namespace(self) -> str:
        """First part of the log-group names and IAM paths that carry no prefix: `datalake` or `datalake-<env>`."""
        return name_namespace(self.environment)

    _check_org = matching("organization_id", pattern=ORG_ID_PATTERN, what="an organization id ('o-' then 10-32 lowercase letters or digits)")

    _check_ou_path = matching("silo_ou_path", "analytics_ou_path", pattern=OU_PATH_PATTERN, what="an OU entity path of the form o-…/r-…/ou-…/ ending with '/'")

    _check_role = checked_by(check_role_name, "deploy_role_name")

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


def describe_error(model: type[BaseModel], error: Mapping[str, Any]) -> str:
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
