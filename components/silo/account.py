"""`SiloAccount`: everything one project's data silo holds, deployed into its own account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from ..shared.adoption import Adoption
from .api_logging import ApiGatewayLogging, ApiGatewayLoggingArgs
from .catalog import SiloCatalog, SiloCatalogArgs
from .config import SiloConfig
from .console import Console, ConsoleArgs, console_decrypt_statement
from .dropzone import Dropzone, DropzoneArgs
from .dropzone_site import DropzoneSite, audit_log_key_statement, dropzone_bucket_statements
from .etl import Etl, EtlArgs
from ..shared.context import SiloContext
from ..shared.iam import AccountContext
from ..shared.errors import ConfigError
from .ingestion import Ingestion, IngestionArgs, deployed_raw_schema
from ..shared.logs import logs_key_statement
from ..shared.naming import bucket_name, bucket_output_key
from ..shared.notifications import AlertTopic, AlertTopicArgs, service_publish_key_statement
from .orchestration import Pipeline, PipelineArgs
from .schema import redshift_load_statements, schema_change_problems
from ..shared.secure_bucket import bucket_arn
from .sftp import SftpServer, SftpServerArgs
from .sharing import Reader, analytics_reader, master_reader, processed_bucket_statements, processed_key_statement
from ..shared.storage import SiloStorage, SiloStorageArgs
from .warehouse import Warehouse, WarehouseArgs

# Master outputs a silo reads; the master stack must keep exporting them.
MASTER_OUTPUTS = ("accountId", "artifactBucketName", "artifactKeyArn", "organizationId", "siloOuPath", "analyticsOuPath")
# Services that publish to the silo's ETL alert topic: EventBridge (pipeline status) and CloudWatch (quality alarms).
ALERT_PUBLISHERS = ("events.amazonaws.com", "cloudwatch.amazonaws.com")


@dataclass(frozen=True)
class SiloAccountArgs:
    """Arguments of `SiloAccount`."""

    config: SiloConfig
    """The validated silo stack configuration."""


class SiloAccount(pulumi.ComponentResource):
    """A silo stack's root component.

    Must be created with `providers={"aws": <assume-role provider into the silo account>}`: every
    child inherits it, so nothing of the silo lands in the master account by accident.
    """

    def __init__(self, name: str, args: SiloAccountArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:silo:SiloAccount", name, None, opts)
        cfg = args.config
        self.context = self._silo_context(cfg)
        self._read_master(name, cfg)
        self.readers = self._readers(cfg)
        # A returning account's retained resources (the runner's `datalake:adopt`) are imported, not created.
        self.adoption = Adoption(dict(cfg.adopt))
        self.storage = self._storage(name, cfg)
        # Every component after the storage encrypts with the silo key.
        self.context = self.context.with_key(self.storage.key.arn)
        self.api_logging = self._api_logging(name, cfg)
        self._data_flow(name, cfg)
        self._dropzone(name, cfg)
        self.outputs = self._outputs(cfg)
        for key in self.adoption.unclaimed():
            pulumi.log.warn(f"datalake:adopt names {key}, which this program does not declare; it is left as it is", self)
        self.register_outputs(self.outputs)

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _read_master(self, name: str, cfg: SiloConfig) -> None:
        """The master stack's outputs this silo reads (`MASTER_OUTPUTS`)."""
        self.master = pulumi.StackReference(f"{name}-master", stack_name=cfg.master_stack, opts=self._child)
        self.master_outputs = {key: self.master.require_output(key) for key in MASTER_OUTPUTS}

    def _silo_context(self, cfg: SiloConfig) -> SiloContext:
        """The account, names and tags every component of the silo shares (the key follows the storage)."""
        account = AccountContext(
            account_id=cfg.account_id,
            partition=aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition,
            region=cfg.region,
        )
        return SiloContext(
            account=account,
            name_prefix=cfg.name_prefix,
            silo_name=cfg.silo_name,
            namespace=cfg.namespace,
            tags={**cfg.tags, "datalake:silo": cfg.silo_name, "datalake:account": cfg.account_id},
        )

    def _readers(self, cfg: SiloConfig) -> tuple[Reader, ...]:
        """Who reads the processed data: the analytics OU always; the master account (its org-wide
        Athena catalogs, components/master/analytics.py) unless `sharing.masterQueries` is off."""
        readers: tuple[Reader, ...] = (analytics_reader(cfg.analytics_ou_path),)
        if cfg.sharing.master_queries:
            readers += (master_reader(self.master_outputs["accountId"], self.context.account.partition, cfg.organization_id),)
        return readers

    def _storage(self, name: str, cfg: SiloConfig) -> SiloStorage:
        """The silo key and buckets, with every grant other components and readers need in their policies."""
        account = self.context.account
        # The processed bucket's ARN follows from its name, so the key policy can name it before
        # the bucket exists (the key is created first).
        processed_arn = bucket_arn(
            account.partition, bucket_name(cfg.name_prefix, cfg.silo_name, "processed", cfg.account_id)
        )
        return SiloStorage(
            f"{name}-storage",
            SiloStorageArgs(
                context=self.context,
                config=cfg.storage,
                key_policy_statements=[
                    audit_log_key_statement(account, cfg.silo_name, cfg.namespace),
                    logs_key_statement(account),
                    # EventBridge (the pipeline's timeout/abort events) and CloudWatch (the quality
                    # alarms) publish to the encrypted alert topic.
                    service_publish_key_statement(account, list(ALERT_PUBLISHERS)),
                    *(processed_key_statement(account, processed_arn, reader) for reader in self.readers),
                    *([console_decrypt_statement(account, cfg.name_prefix, cfg.silo_name)] if cfg.console.enabled else []),
                ],
                bucket_policy_statements={
                    "processed": lambda arn: [s for reader in self.readers for s in processed_bucket_statements(arn, reader)],
                    "dropzone": dropzone_bucket_statements,
                },
                adoption=self.adoption,
            ),
            opts=self._child,
        )

    def _api_logging(self, name: str, cfg: SiloConfig) -> ApiGatewayLogging:
        """One API Gateway CloudWatch role per account: the dropzone's and the ingestion's stages log through it."""
        return ApiGatewayLogging(
            f"{name}-api-logging",
            ApiGatewayLoggingArgs(
                context=self.context,
                log_group_names=(f"/aws/apigateway/{cfg.name_prefix}-{cfg.silo_name}-*", f"{cfg.namespace}/{cfg.silo_name}/*"),
            ),
            opts=self._child,
        )

    def _dropzone(self, name: str, cfg: SiloConfig) -> None:
        """The dropzone, its SFTP endpoint when enabled and its console when enabled."""
        dropzone_bucket = self.storage.buckets["dropzone"]
        site = DropzoneSite(context=self.context, bucket_name=dropzone_bucket.name, bucket_arn=dropzone_bucket.arn)
        self.dropzone = Dropzone(
            f"{name}-dropzone",
            DropzoneArgs(site=site, config=cfg.dropzone, stage_depends_on=(self.api_logging.settings,), adoption=self.adoption),
            opts=self._child,
        )
        self.sftp: Optional[SftpServer] = None
        if cfg.sftp.enabled:
            self.sftp = SftpServer(
                f"{name}-sftp",
                SftpServerArgs(site=site, config=cfg.sftp, function_log_retention_days=cfg.dropzone.function_log_retention_days),
                opts=self._child,
            )
        # After the dropzone (its API and user pool) and SFTP: the console only reads them.
        self.console: Optional[Console] = None
        if cfg.console.enabled:
            self.console = Console(
                f"{name}-console",
                ConsoleArgs(
                    context=self.context,
                    config=cfg.console,
                    api_url=self.dropzone.api_url,
                    user_pool_id=self.dropzone.user_pool_id,
                    dropzone_bucket_name=dropzone_bucket.name,
                    sftp_host=self.sftp.endpoint if self.sftp is not None else None,
                    access_log_bucket=self.storage.buckets["access-logs"].name,
                    noncurrent_version_expiration_days=cfg.storage.noncurrent_version_expiration_days,
                    adoption=self.adoption,
                ),
                opts=self._child,
            )

    def _outputs(self, cfg: SiloConfig) -> dict[str, pulumi.Input[str]]:
        """The stack's outputs: names of what the silo holds, for operators and the runner."""
        outputs: dict[str, pulumi.Input[str]] = {
            "accountId": cfg.account_id,
            "siloName": cfg.silo_name,
            "keyArn": self.storage.key.arn,
            "masterArtifactBucket": self.master_outputs["artifactBucketName"],
            **{bucket_output_key(purpose): bucket.name for purpose, bucket in self.storage.buckets.items()},
            "dropzoneApiUrl": self.dropzone.api_url,
            "dropzoneUserPoolId": self.dropzone.user_pool_id,
            "dropzoneUserPoolClientId": self.dropzone.user_pool_client_id,
        }
        if self.sftp is not None:
            outputs["sftpEndpoint"] = self.sftp.endpoint
        if self.console is not None:
            outputs["consoleUrl"] = self.console.url
        outputs.update(self.data_flow_outputs)
        return outputs

    def _refuse_unsafe_schema_changes(self, cfg: SiloConfig) -> None:
        """Compares each dataset with its deployed raw table; an unsafe change stops the deploy (and
        the preview) with one line per problem, before any resource changes."""
        problems = []
        for index, dataset in enumerate(cfg.datasets):
            deployed = deployed_raw_schema(self.catalog.raw_database_name, dataset.name, cfg.account_id)
            if deployed is not None:
                problems += [f"datalake:datasets[{index}]: {p}" for p in schema_change_problems(dataset, deployed)]
        if problems:
            raise ConfigError(pulumi.get_stack(), problems)

    def _data_flow(self, name: str, cfg: SiloConfig) -> None:
        """Catalog, warehouse and Athena always; ingestion, ETL and pipeline when datasets are declared."""
        self.catalog = SiloCatalog(f"{name}-catalog", SiloCatalogArgs(context=self.context, readers=self.readers), opts=self._child)
        self.warehouse = self._warehouse(name, cfg)
        self.data_flow_outputs: dict[str, pulumi.Input[str]] = {
            "rawDatabase": self.catalog.raw_database_name,
            "processedDatabase": self.catalog.processed_database_name,
            "redshiftWorkgroup": self.warehouse.workgroup.workgroup_name,
            "athenaWorkgroup": self.warehouse.athena_workgroup.name,
        }
        self.ingestion = self.etl = self.pipeline = self.alerts = None
        if not cfg.datasets:
            return
        self._refuse_unsafe_schema_changes(cfg)
        self.ingestion = self._ingestion(name, cfg)
        self.alerts = AlertTopic(
            f"{name}-etl-alerts",
            AlertTopicArgs(
                account=self.context.account,
                topic_name=f"{cfg.name_prefix}-{cfg.silo_name}-etl-alerts",
                kms_key_arn=self.context.key,
                publisher_services=ALERT_PUBLISHERS,
                tags=self.context.tags,
            ),
            opts=self._child,
        )
        self.etl = self._etl(name, cfg)
        self.pipeline = self._pipeline(name, cfg)
        self.data_flow_outputs.update(
            {
                "ingestionEndpoint": self.ingestion.endpoint,
                "etlStateMachineArn": self.pipeline.state_machine.arn,
                "etlAlertTopicArn": self.alerts.arn,
            }
        )

    def _warehouse(self, name: str, cfg: SiloConfig) -> Warehouse:
        buckets = self.storage.buckets
        return Warehouse(
            f"{name}-warehouse",
            WarehouseArgs(
                context=self.context,
                config=cfg.warehouse,
                processed_bucket_arn=buckets["processed"].arn,
                silo_ou_path=cfg.silo_ou_path,
                athena_results_bucket_name=buckets["athena-results"].name,
            ),
            opts=self._child,
        )

    def _ingestion(self, name: str, cfg: SiloConfig) -> Ingestion:
        raw = self.storage.buckets["raw"]
        return Ingestion(
            f"{name}-ingestion",
            IngestionArgs(
                context=self.context,
                config=cfg.ingestion,
                datasets=cfg.datasets,
                raw_bucket_name=raw.name,
                raw_bucket_arn=raw.arn,
                raw_database_name=self.catalog.raw_database_name,
                stage_depends_on=(self.api_logging.settings,),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.catalog]),
        )

    def _etl(self, name: str, cfg: SiloConfig) -> Etl:
        raw, processed = self.storage.buckets["raw"], self.storage.buckets["processed"]
        return Etl(
            f"{name}-etl",
            EtlArgs(
                context=self.context,
                config=cfg.etl,
                datasets=cfg.datasets,
                raw_bucket_name=raw.name,
                raw_bucket_arn=raw.arn,
                processed_bucket_name=processed.name,
                processed_bucket_arn=processed.arn,
                raw_database_name=self.catalog.raw_database_name,
                processed_database_name=self.catalog.processed_database_name,
                raw_tables=[table.name for table in self.ingestion.tables.values()],
                alert_topic_arn=self.alerts.arn,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.catalog]),
        )

    def _pipeline(self, name: str, cfg: SiloConfig) -> Pipeline:
        raw, processed = self.storage.buckets["raw"], self.storage.buckets["processed"]
        copy_role_arn = self.warehouse.copy_role.arn
        return Pipeline(
            f"{name}-pipeline",
            PipelineArgs(
                context=self.context,
                config=cfg.etl,
                raw_crawler_name=self.etl.raw_crawler_name,
                processed_crawler_name=self.etl.processed_crawler_name,
                job_name=self.etl.job_name,
                workgroup_name=self.warehouse.workgroup.workgroup_name,
                workgroup_arn=self.warehouse.workgroup.arn,
                database=self.warehouse.database_name,
                loads=[
                    (
                        dataset.name,
                        pulumi.Output.all(processed.name, copy_role_arn).apply(
                            lambda values, d=dataset: redshift_load_statements(d, values[0], values[1])
                        ),
                    )
                    for dataset in cfg.datasets
                ],
                alert_topic_arn=self.alerts.arn,
                raw_bucket_name=raw.name,
                raw_bucket_arn=raw.arn,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.etl]),
        )
