"""Schema evolution: safe changes roll through every system that holds the schema; unsafe ones are
refused against the deployed raw table, with the migration in the message.

The Spark side (stored partitions rewritten, old rows read with the new column null, the processed
table's columns updated) is in tests/test_glue_transform.py.
"""

from __future__ import annotations

import json

import pytest

from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError
from components.silo.schema import (
    DeployedSchema,
    is_safe_widening,
    redshift_load_statements,
    redshift_sync_call,
    schema_change_problems,
)
from offline.harness import GET_CATALOG_TABLE, deployed_raw_tables
from offline.stacks import run_silo, silo_config

TEMPLATE = silo_config()["datalake:datasets"][0]
V1_COLUMNS = [dict(c) for c in TEMPLATE["columns"]]
V1_TABLE = {
    "columns": V1_COLUMNS,
    "parameters": {"datalake.dedupeKey": "order_id", "datalake.eventTimeColumn": "ordered_at", "classification": "parquet"},
}


def with_columns(columns, **changes) -> dict:
    config = silo_config()
    config["datalake:datasets"] = [{**TEMPLATE, "columns": columns, **changes}]
    return config


def deployed_v1():
    return {GET_CATALOG_TABLE: deployed_raw_tables({"orders": V1_TABLE})}


def dataset(columns, **changes):
    return parse_stack_config("s", with_columns(columns, **changes)).datasets[0]


V1 = DeployedSchema(tuple((c["name"], c["type"]) for c in V1_COLUMNS), ("order_id",), "ordered_at")
WIDER = [{**c, "type": "bigint"} if c["name"] == "quantity" else c for c in V1_COLUMNS]
ADDED = [*V1_COLUMNS, {"name": "channel", "type": "string"}]


def test_safe_widenings():
    assert is_safe_widening("int", "bigint") and is_safe_widening("int", "double")
    assert is_safe_widening("decimal(12,2)", "decimal(14,2)") and is_safe_widening("decimal(12,2)", "decimal(13,3)")
    assert not is_safe_widening("bigint", "int")
    assert not is_safe_widening("decimal(12,2)", "decimal(12,3)"), "one integer digit fewer"
    assert not is_safe_widening("bigint", "double"), "doubles hold 53 bits"
    assert not is_safe_widening("string", "int")


def test_appending_a_column_and_widening_a_type_are_safe():
    assert schema_change_problems(dataset(ADDED), V1) == []
    assert schema_change_problems(dataset(WIDER), V1) == []
    assert schema_change_problems(dataset(V1_COLUMNS, required=["order_id"]), V1) == []


def test_unsafe_changes_are_named_with_the_migration():
    (dropped,) = schema_change_problems(dataset([c for c in V1_COLUMNS if c["name"] != "express"]), V1)
    assert dropped.startswith("dataset 'orders', column 'express' (boolean): dropped or renamed")
    assert "keep it declared (producers may stop sending it: it stays null)" in dropped
    assert "declare a new dataset (e.g. orders_v2)" in dropped

    inserted = [*V1_COLUMNS[:1], {"name": "channel", "type": "string"}, *V1_COLUMNS[1:]]
    (problem,) = schema_change_problems(dataset(inserted), V1)
    assert "column 'channel': declared at position 2, where the deployed schema has 'customer_id'" in problem
    assert "add new columns at the end" in problem

    narrowed = [{**c, "type": "decimal(10,2)"} if c["name"] == "amount" else c for c in V1_COLUMNS]
    (problem,) = schema_change_problems(dataset(narrowed), V1)
    assert "column 'amount': type decimal(12,2) -> decimal(10,2) is not a safe widening" in problem

    (problem,) = schema_change_problems(dataset(V1_COLUMNS, dedupeKey=["customer_id"]), V1)
    assert "dedupeKey ['order_id'] -> ['customer_id']; the stored partitions were deduplicated by the old key" in problem


def test_a_deploy_with_an_unsafe_change_is_refused_before_any_resource_changes():
    narrowed = [c for c in V1_COLUMNS if c["name"] != "express"]
    with pytest.raises(ConfigError) as caught:
        run_silo(with_columns(narrowed), invokes=deployed_v1())
    (problem,) = caught.value.problems
    assert problem.startswith("datalake:datasets[0]: dataset 'orders', column 'express' (boolean): dropped or renamed")
    assert "silo-222222222222" in str(caught.value)


def test_the_first_deploy_has_nothing_to_compare_with():
    run_silo(with_columns([c for c in V1_COLUMNS if c["name"] != "express"]))  # no table deployed: no error


def test_an_added_column_reaches_the_raw_table_firehose_the_api_the_job_and_the_warehouse():
    silo = run_silo(with_columns(ADDED), invokes=deployed_v1())
    table = silo.one("aws:glue/catalogTable:CatalogTable")
    assert table.inputs["storageDescriptor"]["columns"][-1] == {"name": "channel", "type": "string"}
    assert table.inputs["parameters"]["datalake.dedupeKey"] == "order_id"
    # Firehose converts with the table's latest version.
    conversion = silo.one("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream").inputs["extendedS3Configuration"][
        "dataFormatConversionConfiguration"
    ]
    assert conversion["schemaConfiguration"]["versionId"] == "LATEST"
    models = {m.inputs["name"]: json.loads(m.inputs["schema"]) for m in silo.of_type("aws:apigateway/model:Model")}
    assert models["OrdersRecord"]["properties"]["channel"] == {"type": ["string", "null"]}
    job_datasets = json.loads(silo.one("aws:glue/job:Job").inputs["defaultArguments"]["--datasets"])
    assert job_datasets[0]["columns"][-1] == {"name": "channel", "type": "string"}
    sqls = json.loads(silo.one("aws:sfn/stateMachine:StateMachine").inputs["definition"])["States"]["LoadOrders"]["Parameters"]["Sqls"]
    assert sqls[2].startswith("CALL public.datalake_sync_columns(")
    assert "channel character varying(65535)'" in sqls[2] and '|"channel" VARCHAR(65535)' in sqls[2]


def test_the_warehouse_sync_call_quotes_its_arguments_and_lists_columns_in_order():
    call = redshift_sync_call(dataset(WIDER))
    expected = (
        "'order_id character varying(65535),customer_id character varying(65535),amount numeric(12,2),"
        "quantity bigint,express boolean,ordered_at timestamp without time zone'"
    )
    assert expected in call
    assert call.count("'") % 2 == 0
    statements = redshift_load_statements(dataset(WIDER), "bucket", "arn:aws:iam::1:role/copy")
    assert [s.split(" ")[0] for s in statements] == ["CREATE", "CREATE", "CALL", "DELETE", "COPY"]
    assert "ALTER TABLE ' || quote_ident(schema_name)" in statements[1] and "DROP TABLE IF EXISTS" in statements[1]


def test_the_job_may_update_only_its_datasets_processed_tables_and_schema_records(silo):
    policy = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-etl-job-policy")
    update = policy.statement("UpdateProcessedTableColumns")
    assert update["Action"] == ["glue:GetTable", "glue:UpdateTable"]
    assert update["Resource"][-1].endswith(":table/acme_dl_sales_processed/orders")
    assert not any("acme_dl_sales_raw" in r for r in update["Resource"])
    assert policy.statement("RecordDatasetSchemas")["Resource"][0].endswith("/glue/schemas/*")
    assert silo.one("aws:glue/job:Job").inputs["defaultArguments"]["--processed_database"] == "acme_dl_sales_processed"
