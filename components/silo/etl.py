"""`Etl`: the crawlers on raw and processed and the Glue job that turns raw into processed.

- Raw crawler: targets the raw Glue tables the ingestion declared (catalog targets), so it only adds
  the partitions Firehose wrote and never rewrites the declared schema.
- Glue job: `functions/glue/job.py` with `dataset_transform.py`, uploaded to the raw bucket under
  `glue/scripts/`. Job bookmarks on; rejected rows go to `quarantine/<dataset>/` of the raw bucket
  (unvalidated data never reaches the bucket analytics can read).
  The job also publishes per-dataset metrics (namespace `<prefix>/etl`), writes run summaries
  under `glue/runs/`, records each dataset's schema under `glue/schemas/` and keeps the processed
  tables' columns at the declared ones (schema evolution).
- Processed crawler: one S3 target per dataset prefix of the processed bucket.
- Quality alarms: per dataset with `quality.maxQuarantineShare`, on the job's `QuarantineShare`
  metric, to the silo's alert topic.
Every role reaches only these buckets' prefixes, this catalog's databases and the silo key; a Glue
security configuration encrypts job output, bookmarks and logs with the silo key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from .. import FUNCTIONS_DIR

from .catalog import catalog_arns
from .config import EtlConfig
from .dataset_config import DatasetConfig
from ..shared.iam import AccountContext, Statement, assume_role_policy, statement
from ..shared.logs import encrypted_log_group
from ..shared.naming import bounded_name
from ..shared.roles import role_with_policy
from ..shared.context import SiloContext
from .schema import job_datasets_argument

GLUE_DIR = FUNCTIONS_DIR / "glue"
GLUE_SCRIPTS = ("job.py", "dataset_transform.py")
SCRIPT_PREFIX = "glue/scripts"
TEMP_PREFIX = "glue/temp"
RUNS_PREFIX = "glue/runs"
SCHEMAS_PREFIX = "glue/schemas"
QUARANTINE_PREFIX = "quarantine"


def metrics_namespace(name_prefix: str) -> str:
    """CloudWatch namespace of the job's per-dataset metrics (dimensions `Silo`, `Dataset`, `Rule`)."""
    return f"{name_prefix}/etl"

CATALOG_READ = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition"]
CATALOG_PARTITION_WRITE = [
    "glue:CreatePartition",
    "glue:BatchCreatePartition",
    "glue:UpdatePartition",
    "glue:BatchUpdatePartition",
]


def objects(bucket_arn: pulumi.Input[str], prefix: str) -> pulumi.Output[str]:
    return pulumi.Output.concat(bucket_arn, f"/{prefix}/*")


def key_statement(sid: str, kms_key_arn: pulumi.Input[str]) -> Statement:
    return statement(sid, ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], kms_key_arn)


def glue_logs_statement(account: AccountContext) -> Statement:
    """Glue writes to `/aws-glue/...` log groups and, under a security configuration, associates the key.

    No logs:CreateLogGroup: the stack creates every group Glue writes (`glue_log_group_names`), with
    a retention; a group Glue made itself would keep its logs forever.
    """
    return statement(
        "WriteGlueLogs",
        ["logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
        [account.arn("logs", "log-group:/aws-glue/*"), account.arn("logs", "log-group:/aws-glue/*:log-stream:*")],
    )


def glue_log_group_names(
    security_configuration: str, job_role: str, raw_crawler_role: str, processed_crawler_role: str
) -> dict[str, str]:
    """The log groups Glue writes to under a security configuration with CloudWatch encryption.

    Glue puts the security configuration's name into the group names (so each gets its key):
    - a Glue 2.0+ job: `/aws-glue/jobs/<configuration>-role/<role name>/output` and `.../error`;
      with continuous logging, `/aws-glue/jobs/logs-v2-<configuration>` (Glue developer guide,
      "Reduced start times": logging, and "Enabling continuous logging": "If a security
      configuration is enabled for CloudWatch logs, AWS Glue will create a log group named
      <Log-Group-Name>-<Security-Configuration-Name>");
    - a crawler: `/aws-glue/crawlers-role/<role path and name>-<configuration>` (roles here have
      the path `/`).
    """
    return {
        "job-output": f"/aws-glue/jobs/{security_configuration}-role/{job_role}/output",
        "job-error": f"/aws-glue/jobs/{security_configuration}-role/{job_role}/error",
        "job-continuous": f"/aws-glue/jobs/logs-v2-{security_configuration}",
        "raw-crawler": f"/aws-glue/crawlers-role/{raw_crawler_role}-{security_configuration}",
        "processed-crawler": f"/aws-glue/crawlers-role/{processed_crawler_role}-{security_configuration}",
    }


def job_statements(
    account: AccountContext,
    datasets: Sequence[DatasetConfig],
    raw_bucket_arn: pulumi.Input[str],
    processed_bucket_arn: pulumi.Input[str],
    kms_key_arn: pulumi.Input[str],
    raw_database: str,
    namespace: str,
    processed_database: str,
) -> list[Statement]:
    """The ETL job's role: read the datasets' raw prefixes and its scripts, write quarantine, temp,
    run summaries and the datasets' processed prefixes, read the raw catalog, put metrics in its own
    namespace. Nothing of dropzone or other buckets."""
    raw = catalog_arns(account, raw_database)
    processed = catalog_arns(account, processed_database)
    names = [d.name for d in datasets]
    return [
        statement("ListSiloDataBuckets", ["s3:ListBucket", "s3:GetBucketLocation"], [raw_bucket_arn, processed_bucket_arn]),
        statement(
            "ReadRawDatasetsAndScripts",
            "s3:GetObject",
            [*[objects(raw_bucket_arn, n) for n in names], objects(raw_bucket_arn, SCRIPT_PREFIX)],
        ),
        statement(
            "WriteQuarantineAndTemp",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            [objects(raw_bucket_arn, QUARANTINE_PREFIX), objects(raw_bucket_arn, TEMP_PREFIX)],
        ),
        statement("WriteRunSummaries", "s3:PutObject", objects(raw_bucket_arn, RUNS_PREFIX)),
        statement("RecordDatasetSchemas", ["s3:GetObject", "s3:PutObject"], objects(raw_bucket_arn, SCHEMAS_PREFIX)),
        # Schema evolution: the processed tables' columns follow the declared ones (the crawler's
        # incremental runs never change a table's schema).
        statement(
            "UpdateProcessedTableColumns",
            ["glue:GetTable", "glue:UpdateTable"],
            [processed["catalog"], processed["database"], *(account.arn("glue", f"table/{processed_database}/{n}") for n in names)],
        ),
        # PutMetricData has no resource type: the namespace condition is what confines it.
        statement(
            "PutMetricsInTheEtlNamespace",
            "cloudwatch:PutMetricData",
            "*",
            conditions={"StringEquals": {"cloudwatch:namespace": namespace}},
        ),
        statement(
            "ReplaceProcessedPartitions",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            [objects(processed_bucket_arn, n) for n in names],
        ),
        key_statement("UseSiloKey", kms_key_arn),
        statement("ReadRawCatalog", CATALOG_READ, [raw["catalog"], raw["database"], raw["tables"]]),
        glue_logs_statement(account),
    ]


def crawler_statements(
    account: AccountContext,
    sid: str,
    bucket_arn: pulumi.Input[str],
    prefixes: Sequence[str],
    kms_key_arn: pulumi.Input[str],
    database: str,
    creates_tables: bool,
) -> list[Statement]:
    """A crawler's role: read its prefixes, decrypt, maintain its database's tables and partitions."""
    catalog = catalog_arns(account, database)
    catalog_actions = [*CATALOG_READ, *CATALOG_PARTITION_WRITE, "glue:UpdateTable"]
    if creates_tables:
        catalog_actions.append("glue:CreateTable")
    return [
        statement(f"List{sid}Bucket", ["s3:ListBucket", "s3:GetBucketLocation"], bucket_arn),
        statement(f"Read{sid}Datasets", "s3:GetObject", [objects(bucket_arn, p) for p in prefixes]),
        statement("DecryptWithSiloKey", ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], kms_key_arn),
        statement(f"Maintain{sid}Catalog", catalog_actions, [catalog["catalog"], catalog["database"], catalog["tables"]]),
        glue_logs_statement(account),
    ]


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class EtlArgs:
    """Arguments of `Etl`."""

    context: SiloContext
    """The silo: account, names, key and tags (`SiloAccount` passes its own)."""
    datasets: Sequence[DatasetConfig]
    """Datasets the job processes (at least one)."""
    raw_bucket_name: pulumi.Input[str]
    """Raw bucket (input, scripts, temp, quarantine)."""
    raw_bucket_arn: pulumi.Input[str]
    """Its ARN."""
    processed_bucket_name: pulumi.Input[str]
    """Processed bucket (output)."""
    processed_bucket_arn: pulumi.Input[str]
    """Its ARN."""
    raw_database_name: str
    """Glue database of the raw tables."""
    processed_database_name: str
    """Glue database the processed crawler fills."""
    raw_tables: Sequence[pulumi.Input[str]]
    """Names of the raw tables (the ingestion's); the raw crawler targets exactly these."""
    config: EtlConfig = field(default_factory=EtlConfig)
    """The `datalake:etl` section; the job reads its Glue version, worker type and count, timeout and
    log retention (default: its defaults). The schedule and crawler polling are the `Pipeline`'s."""
    alert_topic_arn: Optional[pulumi.Input[str]] = None
    """Topic of the quality alarms (datasets with `quality.maxQuarantineShare`); none: no alarms."""


class Etl(pulumi.ComponentResource):
    """Crawlers, security configuration, the Glue job of one silo and its data-quality alarms."""

    raw_crawler_name: str
    processed_crawler_name: str
    job_name: str
    raw_crawler: aws.glue.Crawler
    processed_crawler: aws.glue.Crawler
    job: aws.glue.Job

    def __init__(self, name: str, args: EtlArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:etl:Etl", name, None, opts)
        if not args.datasets:
            raise ValueError("Etl needs at least one dataset")
        base = args.context.base_name
        self.raw_crawler_name = f"{base}-raw"
        self.processed_crawler_name = f"{base}-processed"
        self.job_name = f"{base}-etl"
        security_name = f"{base}-etl"
        self.log_groups = self._log_groups(name, args, security_name)
        security = self._security_configuration(name, args, security_name)
        self.raw_crawler = self._raw_crawler(name, args, security)
        self.processed_crawler = self._processed_crawler(name, args, security)
        self.job = self._job(name, args, security, scripts=self._scripts(name, args))
        self.quality_alarms = self._quality_alarms(name, args)
        self.register_outputs(
            {
                "rawCrawler": self.raw_crawler.name,
                "processedCrawler": self.processed_crawler.name,
                "jobName": self.job.name,
            }
        )

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _log_groups(self, name: str, args: EtlArgs, security_name: str) -> dict[str, aws.cloudwatch.LogGroup]:
        """The groups Glue logs into, made first with a retention and the silo key."""
        context = args.context
        return {
            label: encrypted_log_group(f"{name}-{label}-logs", group, context.key, args.config.log_retention_days, context.tags, self._child)
            for label, group in glue_log_group_names(
                security_name,
                bounded_name(context.base_name, "etl-job"),
                bounded_name(context.base_name, "raw-crawler"),
                bounded_name(context.base_name, "processed-crawler"),
            ).items()
        }

    def _security_configuration(self, name: str, args: EtlArgs, security_name: str) -> aws.glue.SecurityConfiguration:
        """Logs, bookmarks and S3 writes of the crawlers and the job, encrypted with the silo key."""
        key = args.context.key
        return aws.glue.SecurityConfiguration(
            f"{name}-security",
            name=security_name,
            encryption_configuration=aws.glue.SecurityConfigurationEncryptionConfigurationArgs(
                cloudwatch_encryption=aws.glue.SecurityConfigurationEncryptionConfigurationCloudwatchEncryptionArgs(
                    cloudwatch_encryption_mode="SSE-KMS", kms_key_arn=key
                ),
                job_bookmarks_encryption=aws.glue.SecurityConfigurationEncryptionConfigurationJobBookmarksEncryptionArgs(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=key
                ),
                s3_encryption=aws.glue.SecurityConfigurationEncryptionConfigurationS3EncryptionArgs(
                    s3_encryption_mode="SSE-KMS", kms_key_arn=key
                ),
            ),
            opts=self._child,
        )

    def _glue_role(
        self, name: str, args: EtlArgs, role_name: str, statements: list[Statement], label: str
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        return role_with_policy(
            f"{name}-{label}",
            physical_name=bounded_name(args.context.base_name, role_name),
            # No aws:SourceAccount/aws:SourceArn: Glue documents neither for assuming its service
            # roles, and CreateCrawler/CreateJob check that Glue can assume the role, so an
            # unsent key would fail the deployment; iam:PassRole keeps other accounts out.
            trust_policy=assume_role_policy("glue.amazonaws.com"),
            statements=statements,
            tags=args.context.tags,
            opts=self._child,
        )

    def _raw_crawler(self, name: str, args: EtlArgs, security: aws.glue.SecurityConfiguration) -> aws.glue.Crawler:
        return self._crawler(
            name, args, security, "raw",
            physical_name=self.raw_crawler_name,
            description="Adds the partitions Firehose wrote to the declared raw tables",
            bucket_arn=args.raw_bucket_arn,
            database_name=args.raw_database_name,
            creates_tables=False,
            catalog_targets=[aws.glue.CrawlerCatalogTargetArgs(database_name=args.raw_database_name, tables=list(args.raw_tables))],
            configuration='{"Version":1.0,"CrawlerOutput":{"Partitions":{"AddOrUpdateBehavior":"InheritFromTable"}}}',
        )

    def _processed_crawler(self, name: str, args: EtlArgs, security: aws.glue.SecurityConfiguration) -> aws.glue.Crawler:
        return self._crawler(
            name, args, security, "processed",
            physical_name=self.processed_crawler_name,
            description="Catalogs the processed datasets (tables per dataset, partitions by event_date)",
            bucket_arn=args.processed_bucket_arn,
            database_name=args.processed_database_name,
            creates_tables=True,
            s3_targets=[
                aws.glue.CrawlerS3TargetArgs(path=pulumi.Output.concat("s3://", args.processed_bucket_name, f"/{n}/"))
                for n in _dataset_names(args)
            ],
            recrawl_policy=aws.glue.CrawlerRecrawlPolicyArgs(recrawl_behavior="CRAWL_NEW_FOLDERS_ONLY"),
            configuration='{"Version":1.0,"Grouping":{"TableLevelConfiguration":2}}',
        )

    def _crawler(
        self,
        name: str,
        args: EtlArgs,
        security: aws.glue.SecurityConfiguration,
        layer: str,
        *,
        physical_name: str,
        bucket_arn: pulumi.Input[str],
        database_name: str,
        creates_tables: bool,
        **crawler_inputs: Any,
    ) -> aws.glue.Crawler:
        """The crawler of `layer` (`raw`, `processed`) with its own role on that layer's bucket and
        database; `crawler_inputs` are its description, targets and configuration."""
        context = args.context
        label = f"{layer}-crawler"
        role, policy = self._glue_role(
            name,
            args,
            label,
            crawler_statements(
                context.account, layer.capitalize(), bucket_arn, _dataset_names(args), context.key, database_name, creates_tables
            ),
            label,
        )
        return aws.glue.Crawler(
            f"{name}-{label}",
            name=physical_name,
            role=role.arn,
            database_name=database_name,
            # Catalog targets (the raw crawler's) require LOG on delete; LOG on update keeps the
            # declared schema authoritative.
            schema_change_policy=aws.glue.CrawlerSchemaChangePolicyArgs(delete_behavior="LOG", update_behavior="LOG"),
            security_configuration=security.name,
            tags=context.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, self.log_groups[label]]),
            **crawler_inputs,
        )

    def _scripts(self, name: str, args: EtlArgs) -> dict[str, aws.s3.BucketObjectv2]:
        """The job's scripts (`GLUE_SCRIPTS`) in the raw bucket, by file name."""
        return {
            script: aws.s3.BucketObjectv2(
                f"{name}-script-{script.removesuffix('.py').replace('_', '-')}",
                bucket=args.raw_bucket_name,
                key=f"{SCRIPT_PREFIX}/{script}",
                source=pulumi.FileAsset(str(GLUE_DIR / script)),
                source_hash=file_hash(GLUE_DIR / script),
                content_type="text/x-python",
                server_side_encryption="aws:kms",
                kms_key_id=args.context.key,
                bucket_key_enabled=True,
                tags=args.context.tags,
                opts=self._child,
            )
            for script in GLUE_SCRIPTS
        }

    def _job(
        self,
        name: str,
        args: EtlArgs,
        security: aws.glue.SecurityConfiguration,
        scripts: dict[str, aws.s3.BucketObjectv2],
    ) -> aws.glue.Job:
        context = args.context
        namespace = metrics_namespace(context.name_prefix)
        role, policy = self._glue_role(
            name,
            args,
            "etl-job",
            job_statements(
                context.account,
                args.datasets,
                args.raw_bucket_arn,
                args.processed_bucket_arn,
                context.key,
                args.raw_database_name,
                namespace,
                args.processed_database_name,
            ),
            "job",
        )
        return aws.glue.Job(
            f"{name}-job",
            name=self.job_name,
            description="Casts, checks, dedupes raw datasets into processed Parquet (functions/glue/job.py)",
            role_arn=role.arn,
            glue_version=args.config.glue_version,
            worker_type=args.config.worker_type,
            number_of_workers=args.config.number_of_workers,
            timeout=args.config.job_timeout_minutes,
            max_retries=0,  # the pipeline retries; a retry here would run twice on a data error
            execution_property=aws.glue.JobExecutionPropertyArgs(max_concurrent_runs=1),
            command=aws.glue.JobCommandArgs(
                name="glueetl",
                python_version="3",
                script_location=_s3_uri(args.raw_bucket_name, scripts["job.py"].key),
            ),
            default_arguments={
                "--job-language": "python",
                "--job-bookmark-option": "job-bookmark-enable",
                "--extra-py-files": _s3_uri(args.raw_bucket_name, scripts["dataset_transform.py"].key),
                "--datasets": job_datasets_argument(list(args.datasets)),
                "--raw_database": args.raw_database_name,
                "--processed_database": args.processed_database_name,
                "--processed_bucket": args.processed_bucket_name,
                "--quarantine_bucket": args.raw_bucket_name,
                "--silo": context.silo_name,
                "--metrics_namespace": namespace,
                "--TempDir": pulumi.Output.concat("s3://", args.raw_bucket_name, f"/{TEMP_PREFIX}/"),
                "--enable-continuous-cloudwatch-log": "true",
            },
            security_configuration=security.name,
            tags=context.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[policy, *(self.log_groups[k] for k in ("job-output", "job-error", "job-continuous"))],
            ),
        )

    def _quality_alarms(self, name: str, args: EtlArgs) -> dict[str, aws.cloudwatch.MetricAlarm]:
        """One alarm per dataset with `quality.maxQuarantineShare`, when there is an alert topic."""
        context = args.context
        alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        for dataset in args.datasets:
            share = dataset.quality.max_quarantine_share
            if share is None or args.alert_topic_arn is None:
                continue
            alarms[dataset.name] = aws.cloudwatch.MetricAlarm(
                f"{name}-{dataset.name}-quarantine-share",
                name=f"{context.base_name}-{dataset.name}-quarantine-share",
                alarm_description=(
                    f"More than {share:.1%} of a run's {dataset.name} rows were quarantined "
                    f"(datasets[{dataset.name}].quality.maxQuarantineShare); reasons in the run summary "
                    f"and under quarantine/{dataset.name}/ of the raw bucket"
                ),
                namespace=metrics_namespace(context.name_prefix),
                metric_name="QuarantineShare",
                dimensions={"Silo": context.silo_name, "Dataset": dataset.name},
                statistic="Maximum",
                period=3600,
                evaluation_periods=1,
                comparison_operator="GreaterThanThreshold",
                threshold=share,
                # One data point per run: hours without a run are not a breach.
                treat_missing_data="notBreaching",
                alarm_actions=[args.alert_topic_arn],
                tags=context.tags,
                opts=self._child,
            )
        return alarms


def _dataset_names(args: EtlArgs) -> list[str]:
    return [d.name for d in args.datasets]


def _s3_uri(bucket: pulumi.Input[str], key: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.concat("s3://", bucket, "/", key)
