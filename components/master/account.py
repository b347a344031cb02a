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
from ..shared.naming import bucket_name
from .regional_analytics import RegionalAnalytics, RegionalAnalyticsArgs, master_access_logs_args
from ..shared.notifications import AlertTopic, AlertTopicArgs, service_publish_key_statement
from .runner_triggers import RunnerTriggers, RunnerTriggersArgs, runner_logs_key_statement
from ..shared.secure_bucket import SecureBucket
from ..shared.storage import access_log_encryption_statement

MASTER_OWNER = "master"
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
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = AccountContext(
            account_id=aws.get_caller_identity_output(opts=invoke).account_id.apply(
                lambda account_id: check_deploy_role_trust(cfg, account_id)
            ),
            partition=aws.get_partition_output(opts=invoke).partition,
            region=cfg.region,
        )
        tags = {**cfg.tags, "datalake:stack": "master"}
        child = pulumi.ResourceOptions(parent=self)
        artifact_bucket_name = bucket_name(cfg.name_prefix, MASTER_OWNER, "artifacts", account.account_id)

        self.key = EncryptionKey(
            f"{name}-key",
            EncryptionKeyArgs(
                account=account,
                alias=f"{cfg.name_prefix}-{MASTER_OWNER}",
                description="Data lake master: artifacts and access logs",
                policy_statements=[
                    access_log_encryption_statement(account),
                    artifact_decrypt_statement(account, artifact_bucket_name, cfg.deploy_role_name, cfg.silo_ou_path),
                    service_publish_key_statement(account, ALERT_PUBLISHERS),
                    runner_logs_key_statement(account, RunnerTriggers.log_group_name(cfg.name_prefix)),
                    *([build_logs_key_statement(account, cfg.name_prefix)] if cfg.delivery is not None else []),
                ],
                tags=tags,
            ),
            opts=child,
        )
        self.access_logs = SecureBucket(
            f"{name}-access-logs",
            master_access_logs_args(bucket_name(cfg.name_prefix, MASTER_OWNER, "access-logs", account.account_id), account, self.key.arn, tags),
            opts=child,
        )
        self.artifacts = ArtifactStore(
            f"{name}-artifact-store",
            ArtifactStoreArgs(
                account=account,
                bucket_name=artifact_bucket_name,
                kms_key_arn=self.key.arn,
                silo_ou_path=cfg.silo_ou_path,
                deploy_role_name=cfg.deploy_role_name,
                access_log_bucket=self.access_logs.name,
                noncurrent_version_expiration_days=cfg.artifacts.noncurrent_version_expiration_days,
                tags=tags,
            ),
            opts=child,
        )
        self.alerts = AlertTopic(
            f"{name}-alerts",
            AlertTopicArgs(
                account=account,
                topic_name=f"{cfg.name_prefix}-master-alerts",
                kms_key_arn=self.key.arn,
                publisher_services=ALERT_PUBLISHERS,
                tags=tags,
            ),
            opts=child,
        )

        silo_accounts, home_accounts, away = self._silo_regions(cfg, args)
        self.analytics = OrgAnalytics(
            f"{name}-analytics",
            OrgAnalyticsArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                results_bucket_name=bucket_name(cfg.name_prefix, MASTER_OWNER, "athena-results", account.account_id),
                kms_key_arn=self.key.arn,
                access_log_bucket=self.access_logs.name,
                silo_ou_path=cfg.silo_ou_path,
                accounts=silo_accounts,
                catalog_accounts=home_accounts,
                catalog_prefix=cfg.analytics.catalog_prefix,
                bytes_scanned_cutoff_per_query=cfg.analytics.bytes_scanned_cutoff_per_query,
                results_expiration_days=cfg.analytics.results_expiration_days,
                tags=tags,
            ),
            opts=child,
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
                    catalog_prefix=cfg.analytics.catalog_prefix,
                    bytes_scanned_cutoff_per_query=cfg.analytics.bytes_scanned_cutoff_per_query,
                    results_expiration_days=cfg.analytics.results_expiration_days,
                    tags=tags,
                ),
                opts=pulumi.ResourceOptions(parent=self, providers={"aws": args.regional_providers[region]}),
            )
            for region, ids in sorted(away.items())
        }
        state_bucket = cfg.runner.state_bucket or bucket_name(cfg.name_prefix, MASTER_OWNER, "pulumi-state", account.account_id)
        self.runner = RunnerTriggers(
            f"{name}-runner",
            RunnerTriggersArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                organization_id=cfg.organization_id,
                environment=cfg.environment,
                management_account_id=cfg.management_account_id,
                deploy_role_name=cfg.deploy_role_name,
                pulumi_cli_sha256=cli_checksums["runner"],
                runner=cfg.runner,
                state_bucket=state_bucket,
                artifact_bucket=self.artifacts.name,
                key_arn=self.key.arn,
                alert_topic_arn=self.alerts.arn,
                secrets_provider=cfg.runner_secrets_provider(),
                org_events_provider=args.org_events_provider,
                catalog_prefix=cfg.analytics.catalog_prefix,
                tags=tags,
            ),
            opts=child,
        )
        self.delivery: Optional[DeliveryPipeline] = None
        if cfg.delivery is not None:
            delivery = cfg.delivery
            self.delivery = DeliveryPipeline(
                f"{name}-delivery",
                DeliveryPipelineArgs(
                    account=account,
                    name_prefix=cfg.name_prefix,
                    pipeline_bucket_name=bucket_name(cfg.name_prefix, MASTER_OWNER, "pipeline", account.account_id),
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
                    tags=tags,
                ),
                opts=child,
            )

        self.outputs = {
            # Silos grant this account read on their processed data, for the Athena catalogs below.
            "accountId": account.account_id,
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
            self.outputs["siloCatalogs"] = {
                **self.analytics.catalog_names,
                **{k: v for regional in self.regional_analytics.values() for k, v in regional.analytics.catalog_names.items()},
            }
            self.outputs["siloCatalogRegions"] = {
                **{account_id: cfg.region for account_id in self.analytics.catalog_names},
                **{k: region for region, regional in self.regional_analytics.items() for k in regional.analytics.catalog_names},
            }
            self.outputs["analyticsWorkgroups"] = {
                cfg.region: self.analytics.workgroup.name,
                **{region: regional.analytics.workgroup.name for region, regional in self.regional_analytics.items()},
            }
        if self.delivery is not None:
            self.outputs["deliveryPipelineName"] = self.delivery.pipeline.name
        if self.runner.state_machine is not None:
            self.outputs["runnerStateMachineArn"] = self.runner.state_machine.arn
        self.register_outputs(self.outputs)

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
