"""`MasterAccount`: the shared services of the organization's data lake master account."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .analytics import ACTIVE, OrgAccount, OrgAnalytics, OrgAnalyticsArgs, discover_accounts
from .artifact_store import ArtifactStore, ArtifactStoreArgs, artifact_decrypt_statement
from ..shared.config import DEFAULT_DEPLOY_ROLE
from .config import MasterConfig
from ..shared.errors import ConfigError
from .delivery import DeliveryPipeline, DeliveryPipelineArgs, build_logs_key_statement
from ..shared.encryption import EncryptionKey, EncryptionKeyArgs
from ..shared.iam import AccountContext
from .regional_analytics import RegionalAnalytics, RegionalAnalyticsArgs, master_access_logs_args, master_bucket_name
from ..shared.notifications import AlertTopic, AlertTopicArgs, service_publish_key_statement
from .runner_triggers import RunnerTriggers, RunnerTriggersArgs, runner_logs_key_statement
from ..shared.secure_bucket import SecureBucket
from ..shared.storage import access_log_encryption_statement

# Services that report master failures (schedules, pipelines, builds) to the alerts topic.
ALERT_PUBLISHERS = ("events.amazonaws.com", "codestar-notifications.amazonaws.com")


@dataclass(frozen=True)
class MasterAccountArgs:
    """Arguments of `MasterAccount`."""

    config: MasterConfig
    """The validated master stack configuration."""
    org_events_provider: Optional[pulumi.ProviderResource] = None
    """A us-east-1 provider, where Organizations events arrive, when the master region is another one
    (default None: the master is in us-east-1)."""
    regional_providers: Mapping[str, pulumi.ProviderResource] = field(default_factory=dict)
    """Region → provider, for each region other than the master's that silo settings may deploy a
    silo in (default none: every silo is in the master's region)."""
    silo_region_of: Optional[Callable[[str], str]] = None
    """Account id → the region of its silo (from the silo settings files); used with `regional_providers`."""


def check_deploy_role_trust(cfg: MasterConfig, master_account_id: str) -> str:
    """The master's account id, once it is clear the runner can assume the deploy role.

    `OrganizationAccountAccessRole`, as Organizations creates it, trusts only the management
    account; a master that is a delegated administrator needs a deploy role of its own in each silo.
    """
    if master_account_id != cfg.management_account_id and cfg.deploy_role_name == DEFAULT_DEPLOY_ROLE:
        raise ConfigError(
            "master",
            [
                f"datalake:deployRoleName: {DEFAULT_DEPLOY_ROLE} trusts only the management account "
                f"{cfg.management_account_id} (datalake:managementAccountId), but this master runs in "
                f"{master_account_id}, a delegated administrator, so the runner could not assume it; create a "
                f"role in every silo account that trusts {master_account_id} (for example a service-managed "
                "StackSet on the silo OU, see docs/runner.md) and name it here, for example: datalake-deployer"
            ],
        )
    return master_account_id


class MasterAccount(pulumi.ComponentResource):
    """The master stack: one KMS key, an access-log bucket, the artifact store shared with silos,
    the alerts topic, org-wide analytics and (when configured) the delivery pipeline.

    Outputs are the contract silo stacks read through their `StackReference`.
    """

    def __init__(self, name: str, args: MasterAccountArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:master:MasterAccount", name, None, opts)
        cfg = args.config
        cli_checksums = cfg.pulumi_cli_checksums()  # before any resource: an unpinned CLI is a config error
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._tags = {**cfg.tags, "datalake:stack": "master"}
        account = self._account = self._account_context(cfg)
        artifact_bucket_name = master_bucket_name(cfg.name_prefix, "artifacts", account.account_id)

        self.key = self._key(cfg, artifact_bucket_name)
        self.access_logs = SecureBucket(
            f"{name}-access-logs",
            master_access_logs_args(master_bucket_name(cfg.name_prefix, "access-logs", account.account_id), account, self.key.arn, self._tags),
            opts=self._child,
        )
        self.artifacts = self._artifact_store(cfg, artifact_bucket_name)
        self.alerts = self._alert_topic(cfg)
        self._analytics(cfg, args)
        state_bucket = cfg.runner.state_bucket or master_bucket_name(cfg.name_prefix, "pulumi-state", account.account_id)
        self.runner = self._runner(cfg, args, state_bucket, cli_checksums["runner"])
        self.delivery = self._delivery(cfg, state_bucket, cli_checksums)
        self.outputs = self._stack_outputs(cfg, state_bucket)
        self.register_outputs(self.outputs)

    def _account_context(self, cfg: MasterConfig) -> AccountContext:
        """The master account as the provider sees it; its id is checked against the deploy role's trust."""
        invoke = pulumi.InvokeOutputOptions(parent=self)
        return AccountContext(
            account_id=aws.get_caller_identity_output(opts=invoke).account_id.apply(
                lambda account_id: check_deploy_role_trust(cfg, account_id)
            ),
            partition=aws.get_partition_output(opts=invoke).partition,
            region=cfg.region,
        )

    def _key(self, cfg: MasterConfig, artifact_bucket_name: pulumi.Input[str]) -> EncryptionKey:
        """The master key, with a grant for each service and role that uses it."""
        account = self._account
        return EncryptionKey(
            f"{self._name}-key",
            EncryptionKeyArgs(
                account=account,
                alias=cfg.key_alias,
                description="Data lake master: artifacts and access logs",
                policy_statements=[
                    access_log_encryption_statement(account),
                    artifact_decrypt_statement(account, artifact_bucket_name, cfg.deploy_role_name, cfg.silo_ou_path),
                    service_publish_key_statement(account, ALERT_PUBLISHERS),
                    runner_logs_key_statement(account, RunnerTriggers.log_group_name(cfg.name_prefix)),
                    *([build_logs_key_statement(account, cfg.name_prefix)] if cfg.delivery is not None else []),
                ],
                tags=self._tags,
            ),
            opts=self._child,
        )

    def _artifact_store(self, cfg: MasterConfig, artifact_bucket_name: pulumi.Input[str]) -> ArtifactStore:
        """The bucket of project bundles, readable by the silo OU's deploy roles."""
        return ArtifactStore(
            f"{self._name}-artifact-store",
            ArtifactStoreArgs(
                account=self._account,
                bucket_name=artifact_bucket_name,
                kms_key_arn=self.key.arn,
                silo_ou_path=cfg.silo_ou_path,
                deploy_role_name=cfg.deploy_role_name,
                access_log_bucket=self.access_logs.name,
                noncurrent_version_expiration_days=cfg.artifacts.noncurrent_version_expiration_days,
                tags=self._tags,
            ),
            opts=self._child,
        )

    def _alert_topic(self, cfg: MasterConfig) -> AlertTopic:
        """The topic that schedules, pipelines and builds report failures to."""
        return AlertTopic(
            f"{self._name}-alerts",
            AlertTopicArgs(
                account=self._account,
                topic_name=f"{cfg.name_prefix}-master-alerts",
                kms_key_arn=self.key.arn,
                publisher_services=ALERT_PUBLISHERS,
                tags=self._tags,
            ),
            opts=self._child,
        )

    def _analytics(self, cfg: MasterConfig, args: MasterAccountArgs) -> None:
        """Org-wide analytics in the master region, and a `RegionalAnalytics` per region that holds silos."""
        name, account, tags = self._name, self._account, self._tags
        silo_accounts, home_accounts, away = self._silo_regions(cfg, args)
        self.analytics = OrgAnalytics(
            f"{name}-analytics",
            OrgAnalyticsArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                results_bucket_name=master_bucket_name(cfg.name_prefix, "athena-results", account.account_id),
                kms_key_arn=self.key.arn,
                access_log_bucket=self.access_logs.name,
                silo_ou_path=cfg.silo_ou_path,
                accounts=silo_accounts,
                catalog_accounts=home_accounts,
                config=cfg.analytics,
                tags=tags,
            ),
            opts=self._child,
        )
        # A silo in another region is queried there: its catalog can only be registered in its region.
        self.regional_analytics = {
            region: RegionalAnalytics(
                f"{name}-analytics-{region}",
                RegionalAnalyticsArgs(
                    account=AccountContext(account_id=account.account_id, partition=account.partition, region=region),
                    name_prefix=cfg.name_prefix,
                    silo_ou_path=cfg.silo_ou_path,
                    accounts=silo_accounts or (),
                    catalog_accounts=frozenset(ids),
                    config=cfg.analytics,
                    tags=tags,
                ),
                opts=pulumi.ResourceOptions(parent=self, providers={"aws": args.regional_providers[region]}),
            )
            for region, ids in sorted(away.items())
        }

    def _runner(self, cfg: MasterConfig, args: MasterAccountArgs, state_bucket: pulumi.Input[str], cli_sha256: str) -> RunnerTriggers:
        """The runner's builds and what starts them."""
        return RunnerTriggers(
            f"{self._name}-runner",
            RunnerTriggersArgs(
                account=self._account,
                name_prefix=cfg.name_prefix,
                organization_id=cfg.organization_id,
                environment=cfg.environment,
                management_account_id=cfg.management_account_id,
                deploy_role_name=cfg.deploy_role_name,
                pulumi_cli_sha256=cli_sha256,
                runner=cfg.runner,
                state_bucket=state_bucket,
                artifact_bucket=self.artifacts.name,
                key_arn=self.key.arn,
                alert_topic_arn=self.alerts.arn,
                secrets_provider=cfg.runner_secrets_provider(),
                org_events_provider=args.org_events_provider,
                catalog_prefix=cfg.analytics.catalog_prefix,
                tags=self._tags,
            ),
            opts=self._child,
        )

    def _delivery(self, cfg: MasterConfig, state_bucket: pulumi.Input[str], cli_checksums: Mapping[str, str]) -> Optional[DeliveryPipeline]:
        """The delivery pipeline, when `datalake:delivery` is configured."""
        delivery, account = cfg.delivery, self._account
        if delivery is None:
            return None
        return DeliveryPipeline(
            f"{self._name}-delivery",
            DeliveryPipelineArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                pipeline_bucket_name=master_bucket_name(cfg.name_prefix, "pipeline", account.account_id),
                kms_key_arn=self.key.arn,
                access_log_bucket=self.access_logs.name,
                artifact_bucket_name=self.artifacts.name,
                alert_topic_arn=self.alerts.arn,
                silo_ou_path=cfg.silo_ou_path,
                deploy_role_name=cfg.deploy_role_name,
                organization_id=cfg.organization_id,
                management_account_id=cfg.management_account_id,
                state_bucket=state_bucket,
                secrets_key_arn=delivery.secrets_key_arn or self.key.arn,
                master_deploy_role_name=delivery.master_deploy_role_name,
                source=delivery.source,
                repository=delivery.repository,
                branch=delivery.branch,
                connection_arn=delivery.connection_arn,
                connection_provider=delivery.connection_provider,
                source_object_key=delivery.source_object_key,
                pulumi_version=delivery.pulumi_version,
                pulumi_cli_sha256=cli_checksums["delivery"],
                log_retention_days=delivery.log_retention_days,
                tags=self._tags,
            ),
            opts=self._child,
        )

    def _stack_outputs(self, cfg: MasterConfig, state_bucket: pulumi.Input[str]) -> dict[str, object]:
        """The stack's outputs: the contract silo stacks read through their `StackReference`."""
        outputs: dict[str, object] = {
            # Silos grant this account read on their processed data, for the Athena catalogs below.
            "accountId": self._account.account_id,
            "artifactBucketName": self.artifacts.name,
            "artifactBucketArn": self.artifacts.arn,
            "artifactKeyArn": self.key.arn,
            "accessLogBucketName": self.access_logs.name,
            "alertTopicArn": self.alerts.arn,
            "runnerProjectName": self.runner.project_name,
            "pulumiStateBucket": state_bucket,
            "organizationId": cfg.organization_id,
            "siloOuPath": cfg.silo_ou_path,
            "analyticsOuPath": cfg.analytics_ou_path,
            "deployRoleName": cfg.deploy_role_name,
            "analyticsWorkgroup": self.analytics.workgroup.name,
            "siloCatalogs": self.analytics.catalog_names,
        }
        if self.regional_analytics:
            outputs["siloCatalogs"] = {
                **self.analytics.catalog_names,
                **{k: v for regional in self.regional_analytics.values() for k, v in regional.analytics.catalog_names.items()},
            }
            outputs["siloCatalogRegions"] = {
                **{account_id: cfg.region for account_id in self.analytics.catalog_names},
                **{k: region for region, regional in self.regional_analytics.items() for k in regional.analytics.catalog_names},
            }
            outputs["analyticsWorkgroups"] = {
                cfg.region: self.analytics.workgroup.name,
                **{region: regional.analytics.workgroup.name for region, regional in self.regional_analytics.items()},
            }
        if self.delivery is not None:
            outputs["deliveryPipelineName"] = self.delivery.pipeline.name
        if self.runner.state_machine is not None:
            outputs["runnerStateMachineArn"] = self.runner.state_machine.arn
        return outputs

    def _silo_regions(
        self, cfg: MasterConfig, args: MasterAccountArgs
    ) -> tuple[Optional[list[OrgAccount]], Optional[frozenset[str]], dict[str, list[str]]]:
        """(all silo accounts, those in the master region, region → those elsewhere); (None, None, {})
        when no silo can be elsewhere, so that `OrgAnalytics` discovers the accounts itself, as ever."""
        if not args.regional_providers or args.silo_region_of is None:
            return None, None, {}
        accounts = discover_accounts(cfg.silo_ou_path, pulumi.InvokeOptions(parent=self))
        home, away = [], {}
        for org_account in accounts:
            if org_account.state != ACTIVE:
                continue
            region = args.silo_region_of(org_account.id) or cfg.region
            if region == cfg.region or region not in args.regional_providers:
                home.append(org_account.id)
            else:
                away.setdefault(region, []).append(org_account.id)
        return accounts, frozenset(home), away
