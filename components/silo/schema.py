"""A dataset's declared schema translated for each system that needs it.

One declaration in the stack config (`DatasetConfig`) becomes: Glue table columns (Firehose's
Parquet conversion and Athena), a JSON Schema model (API Gateway request validation), Redshift DDL
and `COPY` (the warehouse load) and the ETL job's `--datasets` argument. Pure functions, no Pulumi.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from .dataset_config import DECIMAL_TYPE_PATTERN, DatasetConfig

# The raw partition Firehose writes (`<dataset>/ingest_date=YYYY-MM-DD/`, the UTC arrival date),
# declared on the raw table; the ETL job reads it to key the quarantine. A name no dataset column
# may take (`dataset_config.RESERVED_COLUMNS`), so ordinary names such as year, month and day stay free.
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


# How Redshift's format_type() spells each column type: what `datalake_sync_columns` compares.
_REDSHIFT_FORMAT_TYPES = {
    "string": "character varying(65535)",
    "int": "integer",
    "bigint": "bigint",
    "double": "double precision",
    "boolean": "boolean",
    "timestamp": "timestamp without time zone",
    "date": "date",
}
SYNC_PROCEDURE = "public.datalake_sync_columns"
# Brings an existing table to the declared columns. Only columns appended (the one kind of addition
# config validation allows): ALTER TABLE ... ADD COLUMN each, in order. Anything else (a widened
# type: Redshift alters only VARCHAR lengths): the table is recreated, which loses nothing because
# the load that calls it deletes and reloads every row in the same transaction.
SYNC_PROCEDURE_SQL = f"""CREATE OR REPLACE PROCEDURE {SYNC_PROCEDURE}(schema_name VARCHAR(127), table_name VARCHAR(127), expected VARCHAR(65535), additions VARCHAR(65535), create_table VARCHAR(65535))
AS $$
DECLARE
  actual VARCHAR(65535) := '';
  columns_now INTEGER := 0;
  rec RECORD;
BEGIN
  FOR rec IN SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_class c ON a.attrelid = c.oid
             JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid
             WHERE n.nspname = schema_name AND c.relname = table_name AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum LOOP
    actual := actual || CASE WHEN columns_now > 0 THEN ',' ELSE '' END || rec.name || ' ' || rec.type;
    columns_now := columns_now + 1;
  END LOOP;
  IF actual = expected THEN
    RETURN;
  END IF;
  IF columns_now > 0 AND left(expected, length(actual) + 1) = actual || ',' THEN
    FOR i IN columns_now + 1 .. regexp_count(additions, '[|]') + 1 LOOP
      EXECUTE 'ALTER TABLE ' || quote_ident(schema_name) || '.' || quote_ident(table_name) || ' ADD COLUMN ' || split_part(additions, '|', i);
    END LOOP;
  ELSE
    EXECUTE 'DROP TABLE IF EXISTS ' || quote_ident(schema_name) || '.' || quote_ident(table_name);
    EXECUTE create_table;
  END IF;
END;
$$ LANGUAGE plpgsql"""


def redshift_format_type(type_name: str) -> str:
    match = DECIMAL_TYPE_PATTERN.match(type_name)
    if match:
        return f"numeric({match.group(1)},{match.group(2)})"
    return _REDSHIFT_FORMAT_TYPES[type_name]


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def redshift_sync_call(dataset: DatasetConfig, schema: str = "public") -> str:
    """The CALL that brings the dataset's warehouse table to the declared columns (`SYNC_PROCEDURE_SQL`)."""
    expected = ",".join(f"{c.name} {redshift_format_type(c.type)}" for c in dataset.columns)
    additions = "|".join(f'"{c.name}" {redshift_type(c.type)}' for c in dataset.columns)
    arguments = [schema, dataset.name, expected, additions, redshift_create_table(dataset)]
    return f"CALL {SYNC_PROCEDURE}({', '.join(_sql_text(a) for a in arguments)})"


def redshift_load_statements(dataset: DatasetConfig, processed_bucket: str, copy_role_arn: str) -> list[str]:
    """One transaction (Data API `BatchExecuteStatement`) that replaces the table with the processed dataset.

    A full reload keeps the load idempotent: a re-run after a failure loads the same rows once, and
    the rows the ETL job replaced in touched partitions are replaced here too. Before the reload the
    table is brought to the declared columns (schema evolution: `ALTER TABLE ... ADD COLUMN` for
    columns added at the end); the ETL job has rewritten older files with them.
    """
    table = redshift_table(dataset)
    return [
        redshift_create_table(dataset),
        SYNC_PROCEDURE_SQL,
        redshift_sync_call(dataset),
        f"DELETE FROM {table}",
        f"COPY {table} FROM 's3://{processed_bucket}/{dataset.name}/' IAM_ROLE '{copy_role_arn}' FORMAT AS PARQUET",
    ]


def job_datasets_argument(datasets: list[DatasetConfig]) -> str:
    """The ETL job's `--datasets` argument: what `functions/glue/dataset_transform.parse_specs` reads."""
    fields = {"name", "columns", "required", "dedupe_key", "event_time_column", "quality"}
    return json.dumps([d.model_dump(by_alias=True, include=fields, exclude_none=True) for d in datasets])


# --- schema evolution ---------------------------------------------------------------------------

# Raw table parameters recording what the columns alone do not say; read back on the next deploy.
DEDUPE_KEY_PARAMETER = "datalake.dedupeKey"
EVENT_TIME_PARAMETER = "datalake.eventTimeColumn"


@dataclass(frozen=True)
class DeployedSchema:
    """A dataset's schema as the deployed raw Glue table holds it (the last successful deploy)."""

    columns: tuple[tuple[str, str], ...]
    dedupe_key: Optional[tuple[str, ...]] = None
    """None when the table predates the parameter (nothing to compare)."""
    event_time_column: Optional[str] = None


def raw_table_parameters(dataset: DatasetConfig) -> dict[str, str]:
    """The schema facts the next deploy compares against (`DeployedSchema`)."""
    return {DEDUPE_KEY_PARAMETER: ",".join(dataset.dedupe_key), EVENT_TIME_PARAMETER: dataset.event_time_column}


def deployed_schema_from_table(columns: list[dict[str, Any]], parameters: Optional[dict[str, str]]) -> DeployedSchema:
    parameters = parameters or {}
    key = parameters.get(DEDUPE_KEY_PARAMETER)
    return DeployedSchema(
        columns=tuple((c["name"], c["type"]) for c in columns),
        dedupe_key=None if key is None else tuple(k for k in key.split(",") if k),
        event_time_column=parameters.get(EVENT_TIME_PARAMETER),
    )


def is_safe_widening(old: str, new: str) -> bool:
    """Every value of `old` is a value of `new`, and Spark, Athena and Redshift read old files as `new`."""
    if (old, new) in (("int", "bigint"), ("int", "double")):
        return True
    old_decimal, new_decimal = DECIMAL_TYPE_PATTERN.match(old), DECIMAL_TYPE_PATTERN.match(new)
    if old_decimal and new_decimal:
        (p, s), (q, t) = (int(x) for x in old_decimal.groups()), (int(x) for x in new_decimal.groups())
        return t >= s and q - t >= p - s
    return False


def _new_dataset_hint(dataset: DatasetConfig) -> str:
    return (
        f"to change it, declare a new dataset (e.g. {dataset.name}_v2) with the new schema, backfill it "
        f"from s3://<processed bucket>/{dataset.name}/, move producers to it, then remove {dataset.name} "
        "(see docs/dataflow.md, schema evolution)"
    )


def schema_change_problems(dataset: DatasetConfig, deployed: DeployedSchema) -> list[str]:
    """Every unsafe difference between the declared schema and the deployed one, each with its fix.

    Safe: new columns at the end, widening a type (`is_safe_widening`), changes of `required` and of
    quality rules. Unsafe: dropping, renaming, reordering or narrowing a column, any other type
    change, a new dedupe key or event time column. Stored data would not fit the new schema, and
    Redshift's COPY maps Parquet columns by position.
    """
    where = f"dataset {dataset.name!r}"
    declared = [(c.name, c.type) for c in dataset.columns]
    names = [name for name, _ in declared]
    problems = []
    kept = [name for name, _ in deployed.columns if name in names]
    for position, name in enumerate(kept):
        if names[position] != name:
            problems.append(
                f"{where}, column {names[position]!r}: declared at position {position + 1}, where the deployed "
                f"schema has {name!r}; keep the deployed columns first and in their order (Redshift COPY maps "
                "Parquet columns by position) and add new columns at the end"
            )
            break
    for name, old_type in deployed.columns:
        if name not in names:
            problems.append(
                f"{where}, column {name!r} ({old_type}): dropped or renamed, but the raw and processed data and "
                f"the warehouse table hold it; keep it declared (producers may stop sending it: it stays null), or {_new_dataset_hint(dataset)}"
            )
            continue
        new_type = declared[names.index(name)][1]
        if new_type != old_type and not is_safe_widening(old_type, new_type):
            problems.append(
                f"{where}, column {name!r}: type {old_type} -> {new_type} is not a safe widening (int -> bigint or "
                f"double, decimal with no fewer integer digits and no smaller scale); keep {old_type}, add a new "
                f"column with the new type at the end, or {_new_dataset_hint(dataset)}"
            )
    if deployed.dedupe_key is not None and tuple(dataset.dedupe_key) != deployed.dedupe_key:
        problems.append(
            f"{where}: dedupeKey {list(deployed.dedupe_key)} -> {dataset.dedupe_key}; the stored partitions were "
            f"deduplicated by the old key; {_new_dataset_hint(dataset)}"
        )
    if deployed.event_time_column is not None and dataset.event_time_column != deployed.event_time_column:
        problems.append(
            f"{where}: eventTimeColumn {deployed.event_time_column!r} -> {dataset.event_time_column!r}; the "
            f"processed data is partitioned by the old column's dates; {_new_dataset_hint(dataset)}"
        )
    return problems
