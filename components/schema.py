"""A dataset's declared schema translated for each system that needs it.

One declaration in the stack config (`DatasetConfig`) becomes: Glue table columns (Firehose's
Parquet conversion and Athena), a JSON Schema model (API Gateway request validation), Redshift DDL
and `COPY` (the warehouse load) and the ETL job's `--datasets` argument. Pure functions, no Pulumi.
"""

from __future__ import annotations

import json
from typing import Any

from .config import DECIMAL_TYPE_PATTERN, DatasetConfig

# The raw partition Firehose writes (`<dataset>/ingest_date=YYYY-MM-DD/`, the UTC arrival date),
# declared on the raw table; the ETL job reads it to key the quarantine. A name no dataset column
# may take (`config.RESERVED_COLUMNS`), so ordinary names such as year, month and day stay free.
RAW_PARTITION_KEY = "ingest_date"
RAW_PARTITION_KEYS = (RAW_PARTITION_KEY,)
FIREHOSE_DATE = "!{timestamp:yyyy-MM-dd}"

_JSON_TYPES = {
    "string": {"type": "string"},
    "int": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "bigint": {"type": "integer"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
    # Firehose's OpenX SerDe parses these from text; the ETL job re-checks them.
    "timestamp": {"type": "string", "minLength": 10},
    "date": {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"},
}

_REDSHIFT_TYPES = {
    "string": "VARCHAR(65535)",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE PRECISION",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}


def glue_columns(dataset: DatasetConfig) -> list[dict[str, str]]:
    """Columns of the dataset's Glue table, in declared order (Hive type names are the config's)."""
    return [{"name": column.name, "type": column.type} for column in dataset.columns]


def json_schema(dataset: DatasetConfig) -> dict[str, Any]:
    """JSON Schema (draft 4, what API Gateway models use) of one record of the dataset."""
    properties: dict[str, Any] = {}
    for column in dataset.columns:
        if DECIMAL_TYPE_PATTERN.match(column.type):
            kind: dict[str, Any] = {"type": ["number", "string"]}
        else:
            kind = dict(_JSON_TYPES[column.type])
        if column.name not in dataset.required_columns:
            # An optional column may be sent as null; a required one may not.
            kind = {**kind, "type": [*([kind["type"]] if isinstance(kind["type"], str) else kind["type"]), "null"]}
        properties[column.name] = kind
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": dataset.name,
        "type": "object",
        "properties": properties,
        "required": dataset.required_columns,
        "additionalProperties": False,
    }


def json_array_schema(dataset: DatasetConfig, max_items: int = 500) -> dict[str, Any]:
    """JSON Schema of a batch: 1-500 records (PutRecordBatch's limit)."""
    item = json_schema(dataset)
    item.pop("$schema")
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": f"{dataset.name}_batch",
        "type": "array",
        "minItems": 1,
        "maxItems": max_items,
        "items": item,
    }


def redshift_type(type_name: str) -> str:
    if DECIMAL_TYPE_PATTERN.match(type_name):
        return type_name.upper()
    return _REDSHIFT_TYPES[type_name]


def redshift_table(dataset: DatasetConfig, schema: str = "public") -> str:
    return f"{schema}.{dataset.name}"


def redshift_create_table(dataset: DatasetConfig) -> str:
    """DDL of the dataset's warehouse table: the declared columns, in the order the Parquet files hold them.

    The processed files do not contain `event_date` (Spark writes it as the partition directory),
    and COPY from Parquet maps columns by position, so the table has exactly the declared columns.
    """
    columns = ", ".join(f'"{c.name}" {redshift_type(c.type)}' for c in dataset.columns)
    return f"CREATE TABLE IF NOT EXISTS {redshift_table(dataset)} ({columns})"


def redshift_load_statements(dataset: DatasetConfig, processed_bucket: str, copy_role_arn: str) -> list[str]:
    """One transaction (Data API `BatchExecuteStatement`) that replaces the table with the processed dataset.

    A full reload keeps the load idempotent: a re-run after a failure loads the same rows once, and
    the rows the ETL job replaced in touched partitions are replaced here too.
    """
    table = redshift_table(dataset)
    return [
        redshift_create_table(dataset),
        f"DELETE FROM {table}",
        f"COPY {table} FROM 's3://{processed_bucket}/{dataset.name}/' IAM_ROLE '{copy_role_arn}' FORMAT AS PARQUET",
    ]


def job_datasets_argument(datasets: list[DatasetConfig]) -> str:
    """The ETL job's `--datasets` argument: what `functions/glue/dataset_transform.parse_specs` reads."""
    fields = {"name", "columns", "required", "dedupe_key", "event_time_column", "quality"}
    return json.dumps([d.model_dump(by_alias=True, include=fields, exclude_none=True) for d in datasets])
