"""Names and choices of one bootstrap (`BootstrapSettings`), derived from the master config; overrides
that contradict it are refused."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from components.master.config import MasterConfig
from components.shared.errors import UsageError
from components.shared.iam import AccountContext, partition_of
from components.shared.naming import plain_bucket_name

DEFAULT_DEPLOYER_ROLE = "datalake-master-deployer"


def default_deployer_role(config: MasterConfig) -> str:
    """`datalake-master-deployer`; in environment `<env>` `<namePrefix>-<env>-master-deployer` (one master account may hold both)."""
    return f"{config.name_prefix}-master-deployer" if config.environment else DEFAULT_DEPLOYER_ROLE
DEPLOYER_POLICY_NAME = "pulumi-master-deploy"
# The delivery pipeline's deploy project role: Pulumi auto-names `master-delivery-deploy-role` (program.py
# names the top component `master`), so only the random suffix is unknown.
DELIVERY_DEPLOY_ROLE_PATTERN = "master-delivery-deploy-role-*"
OPERATOR_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):(role|user)/[\w+=,.@/*-]+$")


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
    if alias == config.key_alias:
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
