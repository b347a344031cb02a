"""Ingestion: API Gateway → Firehose (direct AWS integration) → Parquet in the raw bucket."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

import airspeed
import jsonschema
import pytest

from components.stack_config import parse_stack_config
from components.silo.ingestion import put_record_batch_template, put_record_template
from offline.harness import SILO_ACCOUNT_ID, Recording
from offline.stacks import run_silo, silo_config

RAW_BUCKET = f"acme-dl-sales-raw-{SILO_ACCOUNT_ID}"
RAW_ARN = f"arn:aws:s3:::{RAW_BUCKET}"
STREAM = "acme-dl-sales-orders"


@pytest.fixture(scope="module")
def silo(evaluations) -> Recording:
    return evaluations.silo()


def under_ingestion(silo: Recording, type_: str) -> list:
    """Resources of `type_` inside the Ingestion component (the silo has other APIs: the dropzone's)."""
    return [r for r in silo.of_type(type_) if any(a.type == "datalake:ingestion:Ingestion" for a in silo.ancestors(r))]


def only(silo: Recording, type_: str):
    (found,) = under_ingestion(silo, type_)
    return found


def stream(silo: Recording):
    return silo.one("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream")


def silo_key(silo: Recording) -> str:
    return silo.one("aws:kms/key:Key").outputs["arn"]


def named(silo: Recording, type_: str, suffix: str):
    found = [r for r in silo.of_type(type_) if r.name.endswith(suffix)]
    assert len(found) == 1, [r.name for r in silo.of_type(type_)]
    return found[0]


# --- Glue table and Firehose -----------------------------------------------------------------


def test_raw_glue_table_has_the_declared_columns_and_date_partitions(silo):
    table = silo.one("aws:glue/catalogTable:CatalogTable")
    assert table.inputs["databaseName"] == "acme_dl_sales_raw"
    columns = [(c["name"], c["type"]) for c in table.inputs["storageDescriptor"]["columns"]]
    declared = parse_stack_config("s", silo_config()).datasets[0].columns
    assert columns == [(c.name, c.type) for c in declared]
    # One ingestion-date partition: no ordinary column name (year, month, day) is taken.
    assert [(k["name"], k["type"]) for k in table.inputs["partitionKeys"]] == [("ingest_date", "string")]
    assert table.inputs["storageDescriptor"]["location"] == f"s3://{RAW_BUCKET}/orders/"
    assert table.inputs["storageDescriptor"]["serDeInfo"]["serializationLibrary"].endswith("ParquetHiveSerDe")


def test_stream_converts_json_to_parquet_with_the_datasets_glue_table(silo):
    s3 = stream(silo).inputs["extendedS3Configuration"]
    conversion = s3["dataFormatConversionConfiguration"]
    assert conversion["enabled"] is True
    assert "openXJsonSerDe" in conversion["inputFormatConfiguration"]["deserializer"]
    assert "parquetSerDe" in conversion["outputFormatConfiguration"]["serializer"]
    schema = conversion["schemaConfiguration"]
    assert (schema["databaseName"], schema["tableName"], schema["versionId"]) == ("acme_dl_sales_raw", "orders", "LATEST")
    assert schema["catalogId"] == SILO_ACCOUNT_ID


def test_stream_writes_date_partitions_and_errors_to_their_own_prefix(silo):
    s3 = stream(silo).inputs["extendedS3Configuration"]
    assert s3["bucketArn"] == RAW_ARN
    assert s3["prefix"] == "orders/ingest_date=!{timestamp:yyyy-MM-dd}/"
    assert s3["errorOutputPrefix"].startswith("errors/orders/!{firehose:error-output-type}/")


def test_buffering_comes_from_config():
    config = silo_config(**{"datalake:ingestion": {"bufferingSizeMib": 64, "bufferingIntervalSeconds": 60}})
    s3 = stream(run_silo(config)).inputs["extendedS3Configuration"]
    assert (s3["bufferingSize"], s3["bufferingInterval"]) == (64, 60)


def test_stream_and_objects_are_encrypted_with_the_silo_key_and_errors_logged(silo):
    firehose = stream(silo)
    key = silo_key(silo)
    assert firehose.inputs["serverSideEncryption"] == {"enabled": True, "keyType": "CUSTOMER_MANAGED_CMK", "keyArn": key}
    s3 = firehose.inputs["extendedS3Configuration"]
    assert s3["kmsKeyArn"] == key
    logging = s3["cloudwatchLoggingOptions"]
    group = named(silo, "aws:cloudwatch/logGroup:LogGroup", "delivery-logs")
    assert logging == {"enabled": True, "logGroupName": group.inputs["name"], "logStreamName": "orders"}
    assert group.inputs["kmsKeyId"] == key and group.inputs["retentionInDays"] == 90


def test_delivery_role_reaches_only_its_prefixes_its_table_and_its_log_stream(silo):
    role = named(silo, "aws:iam/role:Role", "orders-firehose-role")
    trust = role.policy("assumeRolePolicy")["Statement"][0]
    assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": SILO_ACCOUNT_ID}}
    policy = named(silo, "aws:iam/rolePolicy:RolePolicy", "orders-firehose-policy")
    assert policy.inputs["role"] == role.outputs["id"]
    resources = {r for s in policy.policy()["Statement"] for r in s["Resource"]}
    assert resources == {
        RAW_ARN,
        f"{RAW_ARN}/orders/*",
        f"{RAW_ARN}/errors/orders/*",
        silo_key(silo),
        f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}:catalog",
        f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}:database/acme_dl_sales_raw",
        f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}:table/acme_dl_sales_raw/orders",
        f"arn:aws:logs:eu-west-1:{SILO_ACCOUNT_ID}:log-group:/aws/kinesisfirehose/acme-dl-sales:log-stream:orders",
    }
    kms = policy.statement("EncryptWithSiloKeyThroughS3")
    assert kms["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert kms["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"] == [RAW_ARN, f"{RAW_ARN}/*"]
    write = policy.statement("WriteDatasetPrefixes")
    assert "s3:DeleteObject" not in write["Action"]


# --- API Gateway -----------------------------------------------------------------------------


def methods(silo: Recording) -> dict[str, object]:
    return {m.name.removeprefix("silo-sales-ingestion-orders-").removesuffix("-method"): m for m in under_ingestion(silo, "aws:apigateway/method:Method")}


def test_one_resource_per_dataset_with_a_batch_child(silo):
    api = only(silo, "aws:apigateway/restApi:RestApi")
    resources = {r.name: r for r in under_ingestion(silo, "aws:apigateway/resource:Resource")}
    record = resources["silo-sales-ingestion-orders-resource"]
    batch = resources["silo-sales-ingestion-orders-batch-resource"]
    assert record.inputs["parentId"] == api.outputs["rootResourceId"]
    assert record.inputs["pathPart"] == "orders"
    assert (batch.inputs["pathPart"], batch.inputs["parentId"]) == ("batch", record.outputs["id"])


def test_methods_require_sigv4_by_default_and_validate_the_body(silo):
    validator = only(silo, "aws:apigateway/requestValidator:RequestValidator")
    assert validator.inputs["validateRequestBody"] is True
    for method in methods(silo).values():
        assert method.inputs["httpMethod"] == "POST"
        assert method.inputs["authorization"] == "AWS_IAM"
        assert not method.inputs.get("apiKeyRequired")
        assert method.inputs["requestValidatorId"] == validator.outputs["id"]


def test_api_key_mode_adds_a_key_usage_plan_with_throttling_and_quota():
    config = silo_config(
        **{"datalake:ingestion": {"authorization": "apiKey", "throttleRateLimit": 5, "throttleBurstLimit": 10, "dailyQuota": 1000}}
    )
    silo = run_silo(config)
    for method in under_ingestion(silo, "aws:apigateway/method:Method"):
        assert (method.inputs["authorization"], method.inputs["apiKeyRequired"]) == ("NONE", True)
    plan = only(silo, "aws:apigateway/usagePlan:UsagePlan")
    assert plan.inputs["throttleSettings"] == {"rateLimit": 5, "burstLimit": 10}
    assert plan.inputs["quotaSettings"] == {"limit": 1000, "period": "DAY"}
    key = only(silo, "aws:apigateway/apiKey:ApiKey")
    link = only(silo, "aws:apigateway/usagePlanKey:UsagePlanKey")
    assert (link.inputs["keyId"], link.inputs["usagePlanId"]) == (key.outputs["id"], plan.outputs["id"])


def test_iam_mode_creates_no_api_key(silo):
    assert under_ingestion(silo, "aws:apigateway/apiKey:ApiKey") == []
    assert under_ingestion(silo, "aws:apigateway/usagePlan:UsagePlan") == []


def test_integrations_call_firehose_directly_with_the_integration_role(silo):
    role = named(silo, "aws:iam/role:Role", "integration-role")
    integrations = {i.name: i for i in under_ingestion(silo, "aws:apigateway/integration:Integration")}
    expected = {"record": "PutRecord", "batch": "PutRecordBatch"}
    assert set(integrations) == {f"silo-sales-ingestion-orders-{k}-integration" for k in expected}
    for kind, action in expected.items():
        integration = integrations[f"silo-sales-ingestion-orders-{kind}-integration"]
        assert integration.inputs["type"] == "AWS"
        assert integration.inputs["uri"] == f"arn:aws:apigateway:eu-west-1:firehose:action/{action}"
        assert integration.inputs["credentials"] == role.outputs["arn"]
        assert integration.inputs["passthroughBehavior"] == "NEVER"
        assert STREAM in integration.inputs["requestTemplates"]["application/json"]


def test_integration_role_may_only_put_records_into_this_silos_streams(silo):
    (statement,) = named(silo, "aws:iam/rolePolicy:RolePolicy", "integration-policy").policy()["Statement"]
    assert statement["Action"] == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert statement["Resource"] == [f"arn:aws:firehose:eu-west-1:{SILO_ACCOUNT_ID}:deliverystream/{STREAM}"]


def test_stage_logs_access_throttles_and_hides_bodies(silo):
    stage = only(silo, "aws:apigateway/stage:Stage")
    access = named(silo, "aws:cloudwatch/logGroup:LogGroup", "access-logs")
    assert stage.inputs["accessLogSettings"]["destinationArn"] == access.outputs["arn"]
    assert "$context.requestId" in stage.inputs["accessLogSettings"]["format"]
    settings = only(silo, "aws:apigateway/methodSettings:MethodSettings").inputs["settings"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (50, 100)
    assert settings["dataTraceEnabled"] is False
    account = silo.one("aws:apigateway/account:Account")
    role = silo.one("aws:iam/role:Role", "silo-sales-api-logging-role")
    assert account.inputs["cloudwatchRoleArn"] == role.outputs["arn"]
    assert account.urn in stage.dependencies, "the stage must wait for the account's CloudWatch role"
    (grant,) = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-api-logging-policy").policy()["Statement"]
    assert f"arn:aws:logs:eu-west-1:{SILO_ACCOUNT_ID}:log-group:/aws/apigateway/acme-dl-sales-*" in grant["Resource"]


def test_deployment_is_redeployed_when_the_schema_changes(silo):
    first = only(silo, "aws:apigateway/deployment:Deployment").inputs["triggers"]
    config = silo_config()
    config["datalake:datasets"][0]["columns"].append({"name": "note", "type": "string"})
    second = only(run_silo(config), "aws:apigateway/deployment:Deployment").inputs["triggers"]
    assert first != second


def test_request_models_follow_the_schema(silo):
    models = {m.inputs["name"]: json.loads(m.inputs["schema"]) for m in under_ingestion(silo, "aws:apigateway/model:Model")}
    record, batch = models["OrdersRecord"], models["OrdersBatch"]
    good = {"order_id": "o1", "customer_id": "c1", "amount": 12.5, "quantity": 2, "express": True, "ordered_at": "2024-05-01T10:00:00Z"}
    jsonschema.validate(good, record)
    for bad, why in (
        ({k: v for k, v in good.items() if k != "customer_id"}, "'customer_id' is a required property"),
        ({**good, "quantity": "two"}, "'two' is not of type 'integer', 'null'"),
        ({**good, "unexpected": 1}, "Additional properties are not allowed"),
    ):
        with pytest.raises(jsonschema.ValidationError, match=re.escape(why)):
            jsonschema.validate(bad, record)
    jsonschema.validate([good, good], batch)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([], batch)


# --- mapping templates, rendered with a Velocity engine ---------------------------------------


class _Util:
    def urlDecode(self, text):  # noqa: N802 - API Gateway's names
        return urllib.parse.unquote(text)

    def base64Encode(self, text):  # noqa: N802
        return base64.b64encode(text.encode()).decode()


class _Input:
    """`$input` as API Gateway offers it: `json(path)` re-serialises, `path(path)` gives objects."""

    def __init__(self, body: str):
        self.document = json.loads(body)

    def path(self, path):
        assert path == "$"
        return self.document

    def json(self, path):
        if path == "$":
            return json.dumps(self.document)
        index = re.fullmatch(r"\$\[(\d+)\]", path)
        assert index, path
        return json.dumps(self.document[int(index.group(1))])


def render(template: str, body: str) -> dict:
    return json.loads(airspeed.Template(template).merge({"util": _Util(), "input": _Input(body)}))


def test_record_template_base64_encodes_the_body_with_a_trailing_newline():
    request = render(put_record_template(STREAM), '{"order_id": "o\\"1", "amount": 1}')
    assert request["DeliveryStreamName"] == STREAM
    data = base64.b64decode(request["Record"]["Data"]).decode()
    assert data.endswith("\n") and data.count("\n") == 1
    assert json.loads(data) == {"order_id": 'o"1', "amount": 1}


def test_batch_template_makes_one_record_per_array_element():
    request = render(put_record_batch_template(STREAM), '[{"order_id": "a"}, {"order_id": "b"}, {"order_id": "c"}]')
    decoded = [base64.b64decode(r["Data"]).decode() for r in request["Records"]]
    assert [json.loads(d)["order_id"] for d in decoded] == ["a", "b", "c"]
    assert all(d.endswith("\n") for d in decoded)


def test_deployed_templates_render_valid_firehose_requests_for_the_dataset_s_stream(silo):
    """The recorded integrations, rendered as API Gateway would: the action in the URI, a request
    botocore's Firehose model accepts for it, addressed to the stream the program created."""
    import botocore.session
    from botocore.validate import ParamValidator

    firehose = botocore.session.get_session().get_service_model("firehose")
    (stream,) = [s.inputs["name"] for s in under_ingestion(silo, "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream")]
    integrations = {i.name: i for i in under_ingestion(silo, "aws:apigateway/integration:Integration")}
    for name, action, body in (
        ("silo-sales-ingestion-orders-record-integration", "PutRecord", '{"order_id": "a"}'),
        ("silo-sales-ingestion-orders-batch-integration", "PutRecordBatch", '[{"order_id": "a"}, {"order_id": "b"}]'),
    ):
        integration = integrations[name]
        assert integration.inputs["uri"].endswith(f":firehose:action/{action}")
        request = render(integration.inputs["requestTemplates"]["application/json"], body)
        report = ParamValidator().validate(request, firehose.operation_model(action).input_shape)
        assert not report.has_errors(), report.generate_report()
        assert request["DeliveryStreamName"] == stream == "acme-dl-sales-orders"
        records = [request["Record"]] if action == "PutRecord" else request["Records"]
        documents = [json.loads(body)] if action == "PutRecord" else json.loads(body)
        assert [base64.b64decode(r["Data"]).decode() for r in records] == [json.dumps(d) + "\n" for d in documents]


def test_batch_response_surfaces_partial_failures(silo):
    responses = [
        r for r in under_ingestion(silo, "aws:apigateway/integrationResponse:IntegrationResponse") if "batch" in r.name and r.inputs["statusCode"] == "200"
    ]
    (response,) = responses
    assert "FailedPutCount" in response.inputs["responseTemplates"]["application/json"]


def test_rendered_records_reach_s3_as_newline_delimited_json_through_firehose(monkeypatch):
    """The integration's request, as API Gateway would send it, replayed against moto's Firehose."""
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket=RAW_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        firehose = boto3.client("firehose", region_name="eu-west-1")
        firehose.create_delivery_stream(
            DeliveryStreamName=STREAM,
            ExtendedS3DestinationConfiguration={
                "RoleARN": f"arn:aws:iam::{SILO_ACCOUNT_ID}:role/firehose",
                "BucketARN": RAW_ARN,
                "Prefix": "orders/",
            },
        )
        single = render(put_record_template(STREAM), '{"order_id": "a"}')
        batch = render(put_record_batch_template(STREAM), '[{"order_id": "b"}, {"order_id": "c"}]')
        firehose.put_record(
            DeliveryStreamName=single["DeliveryStreamName"], Record={"Data": base64.b64decode(single["Record"]["Data"])}
        )
        answer = firehose.put_record_batch(
            DeliveryStreamName=batch["DeliveryStreamName"], Records=[{"Data": base64.b64decode(r["Data"])} for r in batch["Records"]]
        )
        assert answer["FailedPutCount"] == 0
        objects = s3.list_objects_v2(Bucket=RAW_BUCKET, Prefix="orders/")["Contents"]
        text = "".join(s3.get_object(Bucket=RAW_BUCKET, Key=o["Key"])["Body"].read().decode() for o in objects)
    assert sorted(json.loads(line)["order_id"] for line in text.splitlines()) == ["a", "b", "c"]
    assert text.endswith("\n") and text.count("\n") == 3


def test_silo_exports_the_stage_url(silo):
    api = only(silo, "aws:apigateway/restApi:RestApi")
    assert silo.outputs["ingestionEndpoint"] == f"https://{api.outputs['id']}.execute-api.eu-west-1.amazonaws.com/v1"
