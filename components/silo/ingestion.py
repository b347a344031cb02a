"""`Ingestion`: REST API → Kinesis Data Firehose → Parquet in the raw bucket, one stream per dataset.

Per dataset: a Glue table in the raw database (the schema Firehose converts JSON to Parquet with),
a Firehose stream writing `<dataset>/ingest_date=YYYY-MM-DD/` under the silo key, and on the API
`POST /<dataset>` (Firehose `PutRecord`) and `POST /<dataset>/batch` (`PutRecordBatch`), both AWS
service integrations with no Lambda in between. API Gateway validates each body against a model
generated from the dataset's schema before anything reaches Firehose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .catalog import catalog_arns
from .config import IngestionConfig
from .dataset_config import DatasetConfig
from ..shared.iam import AccountContext, Statement, assume_role_policy, kms_via_service, service_trust_policy, statement
from .api_logging import logged_stage
from ..shared.logs import encrypted_log_group, log_group_arn
from ..shared.naming import bounded_name
from ..shared.roles import role_with_policy
from ..shared.context import SiloContext
from .schema import (
    FIREHOSE_DATE,
    RAW_PARTITION_KEY,
    RAW_PARTITION_KEYS,
    DeployedSchema,
    deployed_schema_from_table,
    glue_columns,
    json_array_schema,
    json_schema,
    raw_table_parameters,
)

# API Gateway's Velocity has no newline escape; urlDecode("%0A") yields one. Firehose then stores
# newline-delimited JSON when no format conversion applies, and the record stays one line.
NEWLINE = '#set($newline = $util.urlDecode("%0A"))'

def put_record_template(stream_name: str) -> str:
    """Request mapping of `POST /<dataset>`: the JSON body, one newline appended, base64, as a Firehose record."""
    return (
        f"{NEWLINE}\n"
        "{\n"
        f'  "DeliveryStreamName": "{stream_name}",\n'
        '  "Record": {"Data": "$util.base64Encode("$input.json(\'$\')$newline")"}\n'
        "}\n"
    )


def put_record_batch_template(stream_name: str) -> str:
    """Request mapping of `POST /<dataset>/batch`: each element of the JSON array as one record."""
    return (
        f"{NEWLINE}\n"
        "{\n"
        f'  "DeliveryStreamName": "{stream_name}",\n'
        '  "Records": [\n'
        "#foreach($record in $input.path('$'))\n"
        '#set($json = $input.json("$[$foreach.index]"))\n'
        '    {"Data": "$util.base64Encode("$json$newline")"}#if($foreach.hasNext),#end\n'
        "#end\n"
        "  ]\n"
        "}\n"
    )


# What a producer gets back: Firehose's ids, and for batches how many records failed (partial
# failures come with HTTP 200, so a producer must check `failed` and resend those records).
PUT_RECORD_RESPONSE = '{"recordId": "$input.path(\'$.RecordId\')"}'
PUT_RECORD_BATCH_RESPONSE = '{"failed": $input.path(\'$.FailedPutCount\'), "records": $input.json(\'$.RequestResponses\')}'


def firehose_delivery_statements(
    account: AccountContext,
    bucket_arn: pulumi.Input[str],
    kms_key_arn: pulumi.Input[str],
    dataset: str,
    database: str,
    log_stream_arn: pulumi.Input[str],
) -> list[Statement]:
    """What one delivery stream's role may do: its prefixes of the raw bucket, the key for that
    bucket, its Glue table's schema, its log stream. Nothing else."""
    catalog = catalog_arns(account, database)
    return [
        statement("ListRawBucket", ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"], bucket_arn),
        statement(
            "WriteDatasetPrefixes",
            ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
            [
                pulumi.Output.concat(bucket_arn, f"/{dataset}/*"),
                pulumi.Output.concat(bucket_arn, f"/errors/{dataset}/*"),
            ],
        ),
        statement(
            "EncryptWithSiloKeyThroughS3",
            ["kms:Decrypt", "kms:GenerateDataKey"],
            kms_key_arn,
            conditions={
                "StringEquals": {"kms:ViaService": kms_via_service("s3", account.region)},
                # The buckets use S3 bucket keys, so the encryption context is the bucket ARN.
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")]},
            },
        ),
        statement(
            "ReadDatasetSchema",
            ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
            [catalog["catalog"], catalog["database"], account.arn("glue", f"table/{database}/{dataset}")],
        ),
        statement("WriteDeliveryErrors", "logs:PutLogEvents", log_stream_arn),
    ]


@dataclass(frozen=True)
class IngestionArgs:
    """Arguments of `Ingestion`."""

    context: SiloContext
    """The silo: account, names, key and tags (`SiloAccount` passes its own)."""
    datasets: Sequence[DatasetConfig]
    """Datasets to ingest (at least one)."""
    raw_bucket_name: pulumi.Input[str]
    """Bucket Firehose writes to."""
    raw_bucket_arn: pulumi.Input[str]
    """Its ARN."""
    raw_database_name: str
    """Glue database that receives one table per dataset."""
    config: IngestionConfig = field(default_factory=IngestionConfig)
    """The `datalake:ingestion` section: Firehose buffering, authorization, throttling, quota and log
    retention (default: its defaults)."""
    stage_name: str = "v1"
    """API stage name (default `v1`)."""
    stage_depends_on: Sequence[pulumi.Resource] = ()
    """Resources the stage waits for: the account's API Gateway CloudWatch setting (default none)."""


class Ingestion(pulumi.ComponentResource):
    """The silo's ingestion API and its Firehose streams."""

    streams: dict[str, aws.kinesis.FirehoseDeliveryStream]
    tables: dict[str, aws.glue.CatalogTable]
    api: aws.apigateway.RestApi
    stage: aws.apigateway.Stage
    endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: IngestionArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:ingestion:Ingestion", name, None, opts)
        if not args.datasets:
            raise ValueError("Ingestion needs at least one dataset")
        delivery_logs = self._delivery_logs(name, args)
        self.streams, self.tables = {}, {}
        for dataset in args.datasets:
            self._dataset(name, args, dataset, delivery_logs)
        self.api = self._rest_api(name, args)
        integration_role = self._integration_role(name, args)
        self.stage = self._stage(name, args, routes=self._routes(name, args, integration_role))
        use_keys = args.config.authorization == "apiKey"
        outputs: dict[str, pulumi.Input[str]] = {}
        if use_keys:
            outputs["apiKeyId"] = self._api_key(name, args).id
        account = args.context.account
        self.endpoint = pulumi.Output.concat(
            "https://", self.api.id, ".execute-api.", account.region, ".", account.dns_suffix, "/", self.stage.stage_name
        )
        outputs.update(
            {
                "endpoint": self.endpoint,
                "apiId": self.api.id,
                **{f"stream:{n}": s.name for n, s in self.streams.items()},
            }
        )
        self.register_outputs(outputs)

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _delivery_logs(self, name: str, args: IngestionArgs) -> aws.cloudwatch.LogGroup:
        """The group every stream logs its delivery errors into (one stream per dataset)."""
        return encrypted_log_group(
            f"{name}-delivery-logs",
            f"/aws/kinesisfirehose/{args.context.base_name}",
            args.context.key,
            args.config.log_retention_days,
            args.context.tags,
            self._child,
        )

    def _rest_api(self, name: str, args: IngestionArgs) -> aws.apigateway.RestApi:
        return aws.apigateway.RestApi(
            f"{name}-api",
            name=f"{args.context.base_name}-ingestion",
            description=f"Silo {args.context.silo_name}: POST /<dataset> and /<dataset>/batch into Firehose",
            endpoint_configuration=aws.apigateway.RestApiEndpointConfigurationArgs(types="REGIONAL"),
            api_key_source="HEADER",
            tags=args.context.tags,
            opts=self._child,
        )

    def _integration_role(self, name: str, args: IngestionArgs) -> aws.iam.Role:
        """The role API Gateway puts records with, into this silo's streams only."""
        stream_arns = [self.streams[dataset.name].arn for dataset in args.datasets]
        role, _ = role_with_policy(
            f"{name}-integration",
            physical_name=bounded_name(args.context.base_name, "ingestion-api"),
            # No aws:SourceAccount: API Gateway does not send it when it assumes an integration's
            # credentials role, and the condition would fail every request (found on a live API:
            # aws-solutions-library-samples/accelerated-intelligent-document-processing-on-aws#479).
            trust_policy=assume_role_policy("apigateway.amazonaws.com"),
            statements=[
                statement("PutRecordsIntoThisSilosStreams", ["firehose:PutRecord", "firehose:PutRecordBatch"], stream_arns)
            ],
            tags=args.context.tags,
            opts=self._child,
        )
        return role

    def _routes(self, name: str, args: IngestionArgs, integration_role: aws.iam.Role) -> list[pulumi.Resource]:
        """`POST /<dataset>` and `POST /<dataset>/batch` of every dataset, their bodies validated:
        what a deployment of the API must wait for."""
        account = args.context.account
        validator = aws.apigateway.RequestValidator(
            f"{name}-validator",
            rest_api=self.api.id,
            name="body",
            validate_request_body=True,
            validate_request_parameters=False,
            opts=self._child,
        )
        use_keys = args.config.authorization == "apiKey"
        routes: list[pulumi.Resource] = []
        for dataset in args.datasets:
            stream = self.streams[dataset.name]
            resource = aws.apigateway.Resource(
                f"{name}-{dataset.name}-resource",
                rest_api=self.api.id,
                parent_id=self.api.root_resource_id,
                path_part=dataset.name,
                opts=self._child,
            )
            batch_resource = aws.apigateway.Resource(
                f"{name}-{dataset.name}-batch-resource",
                rest_api=self.api.id,
                parent_id=resource.id,
                path_part="batch",
                opts=self._child,
            )
            for suffix, target, schema, action, template, response in (
                ("record", resource, json_schema(dataset), "PutRecord", put_record_template, PUT_RECORD_RESPONSE),
                ("batch", batch_resource, json_array_schema(dataset), "PutRecordBatch", put_record_batch_template, PUT_RECORD_BATCH_RESPONSE),
            ):
                routes += self._post_method(
                    f"{name}-{dataset.name}-{suffix}",
                    model_name=_model_name(dataset.name, suffix),
                    schema=schema,
                    target=target,
                    validator=validator,
                    use_keys=use_keys,
                    uri=pulumi.Output.concat("arn:", account.partition, ":apigateway:", account.region, f":firehose:action/{action}"),
                    credentials=integration_role.arn,
                    template=stream.name.apply(template),
                    response_template=response,
                    opts=self._child,
                )
        return routes

    def _stage(self, name: str, args: IngestionArgs, routes: Sequence[pulumi.Resource]) -> aws.apigateway.Stage:
        """A deployment of `routes` and its throttled, logged stage."""
        # Redeploy whenever the API's shape changes: a deployment is a snapshot (quality rules are not part of it).
        fingerprint = hashlib.sha256(
            json.dumps(
                [[d.model_dump(by_alias=True, exclude={"quality"}) for d in args.datasets], args.config.authorization],
                sort_keys=True,
            ).encode()
        ).hexdigest()
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment",
            rest_api=self.api.id,
            triggers={"configuration": fingerprint},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(routes)),
        )
        access_logs = encrypted_log_group(
            f"{name}-access-logs",
            f"/aws/apigateway/{args.context.base_name}-ingestion",
            args.context.key,
            args.config.log_retention_days,
            args.context.tags,
            self._child,
        )
        return logged_stage(
            name,
            rest_api=self.api.id,
            deployment=deployment.id,
            stage_name=args.stage_name,
            access_log_arn=access_logs.arn,
            throttle_rate_limit=args.config.throttle_rate_limit,
            throttle_burst_limit=args.config.throttle_burst_limit,
            execution_logging_level="ERROR",
            execution_log_retention_days=args.config.log_retention_days,
            kms_key_arn=args.context.key,
            depends_on=args.stage_depends_on,
            tags=args.context.tags,
            parent=self,
        )

    def _api_key(self, name: str, args: IngestionArgs) -> aws.apigateway.ApiKey:
        """With `authorization: apiKey`: the key callers send and its usage plan (throttle, daily quota)."""
        base, tags = args.context.base_name, args.context.tags
        plan = aws.apigateway.UsagePlan(
            f"{name}-usage-plan",
            name=f"{base}-ingestion",
            api_stages=[aws.apigateway.UsagePlanApiStageArgs(api_id=self.api.id, stage=self.stage.stage_name)],
            throttle_settings=aws.apigateway.UsagePlanThrottleSettingsArgs(
                rate_limit=args.config.throttle_rate_limit, burst_limit=args.config.throttle_burst_limit
            ),
            quota_settings=(
                aws.apigateway.UsagePlanQuotaSettingsArgs(limit=args.config.daily_quota, period="DAY")
                if args.config.daily_quota
                else None
            ),
            tags=tags,
            opts=self._child,
        )
        key = aws.apigateway.ApiKey(f"{name}-api-key", name=f"{base}-ingestion", enabled=True, tags=tags, opts=self._child)
        aws.apigateway.UsagePlanKey(
            f"{name}-usage-plan-key", key_id=key.id, key_type="API_KEY", usage_plan_id=plan.id, opts=self._child
        )
        return key

    def _dataset(
        self, name: str, args: IngestionArgs, dataset: DatasetConfig, delivery_logs: aws.cloudwatch.LogGroup
    ) -> None:
        """The dataset's raw table and the Firehose stream that writes it as Parquet."""
        account = args.context.account
        base = args.context.base_name
        table = aws.glue.CatalogTable(
            f"{name}-{dataset.name}-table",
            name=dataset.name,
            database_name=args.raw_database_name,
            table_type="EXTERNAL_TABLE",
            parameters={
                "classification": "parquet",
                "EXTERNAL": "TRUE",
                "parquet.compression": "SNAPPY",
                **raw_table_parameters(dataset),
            },
            partition_keys=[aws.glue.CatalogTablePartitionKeyArgs(name=key, type="string") for key in RAW_PARTITION_KEYS],
            storage_descriptor=aws.glue.CatalogTableStorageDescriptorArgs(
                location=pulumi.Output.concat("s3://", args.raw_bucket_name, f"/{dataset.name}/"),
                input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                ser_de_info=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(
                    serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                    parameters={"serialization.format": "1"},
                ),
                columns=[aws.glue.CatalogTableStorageDescriptorColumnArgs(**c) for c in glue_columns(dataset)],
            ),
            opts=self._child,
        )
        stream_name = bounded_name(base, dataset.name)
        log_stream = aws.cloudwatch.LogStream(
            f"{name}-{dataset.name}-log-stream", name=dataset.name, log_group_name=delivery_logs.name, opts=self._child
        )
        log_stream_arn = pulumi.Output.concat(
            log_group_arn(account, delivery_logs.name), ":log-stream:", log_stream.name
        )
        role, policy = role_with_policy(
            f"{name}-{dataset.name}-firehose",
            physical_name=bounded_name(base, "firehose", dataset.name),
            # Firehose passes the stream's account id as external id: no other account's stream can use the role.
            trust_policy=service_trust_policy(
                "firehose.amazonaws.com", {"StringEquals": {"sts:ExternalId": account.account_id}}
            ),
            statements=firehose_delivery_statements(
                account, args.raw_bucket_arn, args.context.key, dataset.name, args.raw_database_name, log_stream_arn
            ),
            tags=args.context.tags,
            opts=self._child,
        )
        ext = aws.kinesis
        self.tables[dataset.name] = table
        self.streams[dataset.name] = aws.kinesis.FirehoseDeliveryStream(
            f"{name}-{dataset.name}-stream",
            name=stream_name,
            destination="extended_s3",
            server_side_encryption=ext.FirehoseDeliveryStreamServerSideEncryptionArgs(
                enabled=True, key_type="CUSTOMER_MANAGED_CMK", key_arn=args.context.key
            ),
            extended_s3_configuration=ext.FirehoseDeliveryStreamExtendedS3ConfigurationArgs(
                role_arn=role.arn,
                bucket_arn=args.raw_bucket_arn,
                prefix=f"{dataset.name}/{RAW_PARTITION_KEY}={FIREHOSE_DATE}/",
                error_output_prefix=f"errors/{dataset.name}/!{{firehose:error-output-type}}/{RAW_PARTITION_KEY}={FIREHOSE_DATE}/",
                buffering_size=args.config.buffering_size_mib,
                buffering_interval=args.config.buffering_interval_seconds,
                # Parquet compresses its pages itself (Snappy); Firehose requires UNCOMPRESSED here.
                compression_format="UNCOMPRESSED",
                kms_key_arn=args.context.key,
                cloudwatch_logging_options=ext.FirehoseDeliveryStreamExtendedS3ConfigurationCloudwatchLoggingOptionsArgs(
                    enabled=True, log_group_name=delivery_logs.name, log_stream_name=log_stream.name
                ),
                data_format_conversion_configuration=ext.FirehoseDeliveryStreamExtendedS3ConfigurationDataFormatConversionConfigurationArgs(
                    enabled=True,
                    input_format_configuration=ext.FirehoseDeliveryStreamExtendedS3ConfigurationDataFormatConversionConfigurationInputFormatConfigurationArgs(
                        deserializer=ext.FirehoseDeliveryStreamExtendedS3ConfigurationDataFormatConversionConfigurationInputFormatConfigurationDeserializerArgs(
                            open_x_json_ser_de=ext.FirehoseDeliveryStreamExtendedS3ConfigurationDataFormatConversionConfigurationInputFormatConfigurationDeserializerOpenXJsonSerDeArgs(
                                case_insensitive=True
                            )
                        )
                    ),
                    output_format_configuration=ext.FirehoseDeliveryStreamExtendedS3ConfigurationDataFormatConversionConfigurationOutputFormatConfigurationArgs(
                        serializer=ext.FirehoseDeliveryStreamExtendedS3ConfigurationDataFormatConversionConfigurationOutputFormatConfigurationSerializerArgs(
                            parquet_ser_de=ext.FirehoseDeliveryStreamExtendedS3ConfigurationDataFormatConversionConfigurationOutputFormatConfigurationSerializerParquetSerDeArgs(
                                compression="SNAPPY"
                            )
                        )
                    ),
                    schema_configuration=ext.FirehoseDeliveryStreamExtendedS3ConfigurationDataFormatConversionConfigurationSchemaConfigurationArgs(
                        catalog_id=account.account_id,
                        database_name=args.raw_database_name,
                        table_name=table.name,
                        role_arn=role.arn,
                        region=account.region,
                        version_id="LATEST",
                    ),
                ),
            ),
            tags=args.context.tags,
            # The role must be able to deliver before the stream exists, or creation fails its checks.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    def _post_method(
        self,
        name: str,
        *,
        model_name: str,
        schema: dict,
        target: aws.apigateway.Resource,
        validator: aws.apigateway.RequestValidator,
        use_keys: bool,
        uri: pulumi.Input[str],
        credentials: pulumi.Input[str],
        template: pulumi.Input[str],
        response_template: str,
        opts: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """`POST` on `target`: validated against `schema`, mapped by `template`, sent to Firehose."""
        model = aws.apigateway.Model(
            f"{name}-model",
            rest_api=self.api.id,
            name=model_name,
            content_type="application/json",
            schema=json.dumps(schema),
            opts=opts,
        )
        method = aws.apigateway.Method(
            f"{name}-method",
            rest_api=self.api.id,
            resource_id=target.id,
            http_method="POST",
            authorization="NONE" if use_keys else "AWS_IAM",
            api_key_required=use_keys,
            request_validator_id=validator.id,
            request_models={"application/json": model.name},
            opts=opts,
        )
        # The integration and the responses address the method (and depend on it) by these three.
        on_method = dict(rest_api=self.api.id, resource_id=target.id, http_method=method.http_method)
        integration = aws.apigateway.Integration(
            f"{name}-integration",
            **on_method,
            type="AWS",
            integration_http_method="POST",
            uri=uri,
            credentials=credentials,
            # Bodies of any other content type are refused (415), never passed through unmapped.
            passthrough_behavior="NEVER",
            request_parameters={"integration.request.header.Content-Type": "'application/x-amz-json-1.1'"},
            request_templates={"application/json": template},
            opts=opts,
        )
        parts: list[pulumi.Resource] = [model, method, integration]
        for status, pattern, body in (
            ("200", None, response_template),
            ("400", "4\\d{2}", '{"message": "rejected by Firehose"}'),
            ("500", "5\\d{2}", '{"message": "Firehose is unavailable, retry later"}'),
        ):
            method_response = aws.apigateway.MethodResponse(
                f"{name}-response-{status}",
                **on_method,
                status_code=status,
                opts=opts,
            )
            parts.append(method_response)
            parts.append(
                aws.apigateway.IntegrationResponse(
                    f"{name}-integration-response-{status}",
                    **on_method,
                    status_code=status,
                    selection_pattern=pattern,
                    response_templates={"application/json": body},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[integration, method_response]),
                )
            )
        return parts


_NOT_FOUND = ("EntityNotFoundException", "couldn't find", "not found")


def deployed_raw_schema(database_name: str, dataset: str, catalog_id: str) -> Optional[DeployedSchema]:
    """The dataset's schema as its deployed raw table holds it, or None before the first deploy.

    The program cannot see the stack's previous configuration; the raw Glue table is what the last
    successful deploy left (Firehose converts with it, and the crawlers never rewrite it). Read with
    a data source at deploy and preview time, so an unsafe change is refused before anything moves.
    """
    try:
        table = aws.glue.get_catalog_table(name=dataset, database_name=database_name, catalog_id=catalog_id)
    except Exception as exc:  # the provider reports a missing table as an invoke error
        if any(marker.lower() in str(exc).lower() for marker in _NOT_FOUND):
            return None
        raise
    descriptors = table.storage_descriptors or []
    columns = [{"name": c.name, "type": c.type} for d in descriptors[:1] for c in (d.columns or [])]
    return deployed_schema_from_table(columns, table.parameters)


def _model_name(dataset: str, suffix: str) -> str:
    """API Gateway model names are alphanumeric."""
    return "".join(part.capitalize() for part in f"{dataset}_{suffix}".split("_"))

