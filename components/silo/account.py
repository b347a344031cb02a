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
from .dropzone import Dropzone, DropzoneArgs, DropzoneSite, audit_log_key_statement, dropzone_bucket_statements
from .etl import Etl, EtlArgs
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
        child = pulumi.ResourceOptions(parent=self)
        account = AccountContext(
            account_id=cfg.account_id,
            partition=aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition,
            region=cfg.region,
        )
        tags = {**cfg.tags, "datalake:silo": cfg.silo_name, "datalake:account": cfg.account_id}

        self.master = pulumi.StackReference(f"{name}-master", stack_name=cfg.master_stack, opts=child)
        self.master_outputs = {key: self.master.require_output(key) for key in MASTER_OUTPUTS}

        # Who reads the processed data: the analytics OU always; the master account (its org-wide
        # Athena catalogs, components/master/analytics.py) unless `sharing.masterQueries` is off.
        self.readers: tuple[Reader, ...] = (analytics_reader(cfg.analytics_ou_path),)
        if cfg.sharing.master_queries:
            self.readers += (master_reader(self.master_outputs["accountId"], account.partition, cfg.organization_id),)

        storage = cfg.storage
        # A returning account's retained resources (the runner's `datalake:adopt`) are imported, not created.
        adoption = Adoption(dict(cfg.adopt))
        # The processed bucket's ARN follows from its name, so the key policy can name it before
        # the bucket exists (the key is created first).
        processed_arn = bucket_arn(
            account.partition, bucket_name(cfg.name_prefix, cfg.silo_name, "processed", cfg.account_id)
        )
        self.storage = SiloStorage(
            f"{name}-storage",
            SiloStorageArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                silo_name=cfg.silo_name,
                dropzone_expiration_days=storage.dropzone_expiration_days,
                raw_infrequent_access_days=storage.raw_infrequent_access_days,
                noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
                abort_incomplete_multipart_days=storage.abort_incomplete_multipart_days,
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
                tags=tags,
                adoption=adoption,
            ),
            opts=child,
        )
        # One API Gateway CloudWatch role per account: the dropzone's and the ingestion's stages log through it.
        self.api_logging = ApiGatewayLogging(
            f"{name}-api-logging",
            ApiGatewayLoggingArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                silo_name=cfg.silo_name,
                log_group_names=(f"/aws/apigateway/{cfg.name_prefix}-{cfg.silo_name}-*", f"{cfg.namespace}/{cfg.silo_name}/*"),
                tags=tags,
            ),
            opts=child,
        )
        self._data_flow(name, cfg, account, tags, child)

        dropzone_bucket = self.storage.buckets["dropzone"]
        site = DropzoneSite(
            account=account,
            name_prefix=cfg.name_prefix,
            silo_name=cfg.silo_name,
            bucket_name=dropzone_bucket.name,
            bucket_arn=dropzone_bucket.arn,
            key_arn=self.storage.key.arn,
            namespace=cfg.namespace,
        )
        dz = cfg.dropzone
        self.dropzone = Dropzone(
            f"{name}-dropzone",
            DropzoneArgs(
                site=site,
                allowed_origin=dz.allowed_origin,
                audit_log_retention_days=dz.audit_log_retention_days,
                function_log_retention_days=dz.function_log_retention_days,
                upload_max_bytes=dz.upload_max_mb * 1024 * 1024,
                upload_url_seconds=dz.upload_url_seconds,
                janitor_schedule=dz.janitor_schedule,
                mfa=dz.mfa,
                throttle_rate_limit=dz.throttle_rate_limit,
                throttle_burst_limit=dz.throttle_burst_limit,
                stage_depends_on=(self.api_logging.settings,),
                tags=tags,
                adoption=adoption,
            ),
            opts=child,
        )
        self.sftp: Optional[SftpServer] = None
        if cfg.sftp.enabled:
            self.sftp = SftpServer(
                f"{name}-sftp",
                SftpServerArgs(
                    site=site,
                    security_policy=cfg.sftp.security_policy,
                    endpoint_type=cfg.sftp.endpoint_type,
                    vpc_id=cfg.sftp.vpc_id,
                    subnet_ids=cfg.sftp.subnet_ids,
                    allowed_cidrs=cfg.sftp.allowed_cidrs,
                    function_log_retention_days=dz.function_log_retention_days,
                    tags=tags,
                ),
                opts=child,
            )

        # After the dropzone (its API and user pool) and SFTP: the console only reads them.
        self.console: Optional[Console] = None
        if cfg.console.enabled:
            self.console = Console(
                f"{name}-console",
                ConsoleArgs(
                    account=account,
                    name_prefix=cfg.name_prefix,
                    silo_name=cfg.silo_name,
                    api_url=self.dropzone.api_url,
                    user_pool_id=self.dropzone.user_pool_id,
                    dropzone_bucket_name=dropzone_bucket.name,
                    kms_key_arn=self.storage.key.arn,
                    sftp_host=self.sftp.endpoint if self.sftp is not None else None,
                    access_log_bucket=self.storage.buckets["access-logs"].name,
                    noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
                    price_class=cfg.console.price_class,
                    session_minutes=cfg.console.session_minutes,
                    tags=tags,
                    adoption=adoption,
                ),
                opts=child,
            )

        self.outputs: dict[str, pulumi.Input[str]] = {
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
            self.outputs["sftpEndpoint"] = self.sftp.endpoint
        if self.console is not None:
            self.outputs["consoleUrl"] = self.console.url
        self.outputs.update(self.data_flow_outputs)
        for key in adoption.unclaimed():
            pulumi.log.warn(f"datalake:adopt names {key}, which this program does not declare; it is left as it is", self)
        self.register_outputs(self.outputs)

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

    def _data_flow(self, name: str, cfg: SiloConfig, account: AccountContext, tags: dict[str, str], child) -> None:
        """Catalog, warehouse and Athena always; ingestion, ETL and pipeline when datasets are declared."""
        buckets, key_arn = self.storage.buckets, self.storage.key.arn
        raw, processed = buckets["raw"], buckets["processed"]
        self.catalog = SiloCatalog(
            f"{name}-catalog",
            SiloCatalogArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                silo_name=cfg.silo_name,
                readers=self.readers,
                tags=tags,
            ),
            opts=child,
        )
        warehouse = cfg.warehouse
        self.warehouse = Warehouse(
            f"{name}-warehouse",
            WarehouseArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                silo_name=cfg.silo_name,
                processed_bucket_arn=processed.arn,
                silo_ou_path=cfg.silo_ou_path,
                athena_results_bucket_name=buckets["athena-results"].name,
                kms_key_arn=key_arn,
                base_capacity=warehouse.base_capacity,
                max_capacity=warehouse.max_capacity,
                vpc_cidr=warehouse.vpc_cidr,
                interface_endpoints=tuple(warehouse.interface_endpoints),
                athena_bytes_scanned_cutoff_gib=warehouse.athena_bytes_scanned_cutoff_gib,
                quicksight=warehouse.quicksight.enabled,
                quicksight_owner_arn=warehouse.quicksight.owner_arn,
                tags=tags,
            ),
            opts=child,
        )
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
        ingestion = cfg.ingestion
        self.ingestion = Ingestion(
            f"{name}-ingestion",
            IngestionArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                silo_name=cfg.silo_name,
                datasets=cfg.datasets,
                raw_bucket_name=raw.name,
                raw_bucket_arn=raw.arn,
                raw_database_name=self.catalog.raw_database_name,
                kms_key_arn=key_arn,
                buffering_size_mib=ingestion.buffering_size_mib,
                buffering_interval_seconds=ingestion.buffering_interval_seconds,
                authorization=ingestion.authorization,
                throttle_rate_limit=ingestion.throttle_rate_limit,
                throttle_burst_limit=ingestion.throttle_burst_limit,
                daily_quota=ingestion.daily_quota,
                log_retention_days=ingestion.log_retention_days,
                stage_depends_on=(self.api_logging.settings,),
                tags=tags,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.catalog]),
        )
        self.alerts = AlertTopic(
            f"{name}-etl-alerts",
            AlertTopicArgs(
                account=account,
                topic_name=f"{cfg.name_prefix}-{cfg.silo_name}-etl-alerts",
                kms_key_arn=key_arn,
                publisher_services=ALERT_PUBLISHERS,
                tags=tags,
            ),
            opts=child,
        )
        etl = cfg.etl
        self.etl = Etl(
            f"{name}-etl",
            EtlArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                silo_name=cfg.silo_name,
                datasets=cfg.datasets,
                raw_bucket_name=raw.name,
                raw_bucket_arn=raw.arn,
                processed_bucket_name=processed.name,
                processed_bucket_arn=processed.arn,
                raw_database_name=self.catalog.raw_database_name,
                processed_database_name=self.catalog.processed_database_name,
                raw_tables=[table.name for table in self.ingestion.tables.values()],
                kms_key_arn=key_arn,
                glue_version=etl.glue_version,
                worker_type=etl.worker_type,
                number_of_workers=etl.number_of_workers,
                timeout_minutes=etl.job_timeout_minutes,
                alert_topic_arn=self.alerts.arn,
                tags=tags,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.catalog]),
        )
        copy_role_arn = self.warehouse.copy_role.arn
        self.pipeline = Pipeline(
            f"{name}-pipeline",
            PipelineArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                silo_name=cfg.silo_name,
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
                kms_key_arn=key_arn,
                schedule=etl.schedule,
                raw_bucket_name=raw.name,
                raw_bucket_arn=raw.arn,
                skip_when_no_new_data=etl.skip_when_no_new_data,
                poll_seconds=etl.crawler_poll_seconds,
                max_polls=etl.crawler_max_polls,
                tags=tags,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.etl]),
        )
        self.data_flow_outputs.update(
            {
                "ingestionEndpoint": self.ingestion.endpoint,
                "etlStateMachineArn": self.pipeline.state_machine.arn,
                "etlAlertTopicArn": self.alerts.arn,
            }
        )
