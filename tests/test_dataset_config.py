"""Dataset schemas and data-flow settings in the stack config: bad values get one clear line each."""

from __future__ import annotations

import pytest

from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError
from offline.stacks import silo_config

GOOD = {
    "name": "orders",
    "columns": [{"name": "order_id", "type": "string"}, {"name": "at", "type": "timestamp"}],
    "required": ["order_id"],
    "dedupeKey": ["order_id"],
    "eventTimeColumn": "at",
}


def problems(**overrides) -> list[str]:
    config = silo_config(**{f"datalake:{key}": value for key, value in overrides.items()})
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("silo-222222222222", config)
    return caught.value.problems


def dataset(**changes) -> dict:
    return {**GOOD, **changes}


def test_template_declares_a_dataset_that_exercises_every_part_of_the_flow():
    config = parse_stack_config("s", silo_config())
    (orders,) = config.datasets
    assert orders.name == "orders" and orders.dedupe_key == ["order_id"]
    assert {c.type for c in orders.columns} >= {"string", "decimal(12,2)", "int", "boolean", "timestamp"}
    assert orders.event_time_column in orders.required_columns


def test_unknown_type_names_dataset_column_and_the_allowed_types():
    (problem,) = problems(datasets=[dataset(columns=[*GOOD["columns"], {"name": "price", "type": "money"}])])
    assert problem.startswith("datalake:datasets[0]: got dataset 'orders', column 'price': type 'money' is not one of string, int")
    assert "decimal(p,s)" in problem and "for example: decimal(12,2)" in problem


def test_decimal_precision_out_of_range_is_rejected():
    (problem,) = problems(datasets=[dataset(columns=[*GOOD["columns"], {"name": "p", "type": "decimal(40,2)"}])])
    assert "column 'p': type decimal(40,2) needs 1 <= precision <= 38" in problem


def test_duplicate_column_is_named():
    (problem,) = problems(datasets=[dataset(columns=[*GOOD["columns"], {"name": "order_id", "type": "int"}])])
    assert "dataset 'orders', column 'order_id': declared twice" in problem


def test_empty_schema_is_rejected_naming_the_dataset():
    (problem,) = problems(datasets=[dataset(columns=[], required=[], dedupeKey=[])])
    assert "dataset 'orders': the schema is empty" in problem


def test_required_and_dedupe_columns_must_exist():
    (problem,) = problems(datasets=[dataset(required=["nope"], dedupeKey=["gone"])])
    assert "required names column 'nope', which is not in columns" in problem
    assert "dedupeKey names column 'gone', which is not in columns" in problem


def test_event_time_column_must_be_a_timestamp_or_date():
    (problem,) = problems(datasets=[dataset(eventTimeColumn="order_id")])
    assert "column 'order_id': eventTimeColumn must be of type timestamp or date, not string" in problem


def test_the_data_flows_own_column_names_are_reserved():
    for name in ("ingest_date", "event_date", "_reason"):
        (problem,) = problems(datasets=[dataset(columns=[*GOOD["columns"], {"name": name, "type": "string"}])])
        assert f"column '{name}': the name is reserved for the data flow's own columns" in problem


def test_year_month_and_day_are_ordinary_column_names():
    columns = [*GOOD["columns"], *({"name": n, "type": "int"} for n in ("year", "month", "day"))]
    config = parse_stack_config("s", silo_config(**{"datalake:datasets": [dataset(columns=columns)]}))
    assert [c.name for c in config.datasets[0].columns][-3:] == ["year", "month", "day"]


def test_dataset_names_must_be_unique_and_plain():
    assert problems(datasets=[GOOD, GOOD]) == [
        "datalake:datasets: got dataset name(s) orders more than once; each dataset needs its own name, for example orders and returns"
    ]
    (problem,) = problems(datasets=[dataset(name="Orders-2024")])
    assert "dataset 'Orders-2024': name must be 2-30 lowercase letters" in problem


def test_unknown_dataset_key_is_named_with_its_path():
    (problem,) = problems(datasets=[dataset(dedupe=["order_id"])])
    assert problem.startswith("datalake:datasets[0].dedupe: is not a known key")


def test_every_bad_dataset_is_reported_at_once():
    found = problems(datasets=[dataset(columns=[]), dataset(name="other", eventTimeColumn="missing")])
    assert [p.split(":")[1] for p in found] == ["datasets[0]", "datasets[1]"]


def test_firehose_buffer_below_64_mib_is_rejected_with_the_reason():
    assert problems(ingestion={"bufferingSizeMib": 32}) == [
        "datalake:ingestion.bufferingSizeMib: got 32, but Firehose needs 64-128 MiB when it converts records to Parquet; for example: 128"
    ]


def test_authorization_is_iam_or_api_key():
    (problem,) = problems(ingestion={"authorization": "open"})
    assert problem.startswith("datalake:ingestion.authorization: got 'open'")


def test_log_retention_must_be_a_cloudwatch_value():
    (problem,) = problems(ingestion={"logRetentionDays": 100})
    assert "got 100, which CloudWatch Logs does not accept" in problem


def test_schedule_must_be_an_eventbridge_expression():
    (problem,) = problems(etl={"schedule": "daily"})
    assert problem.startswith("datalake:etl.schedule: got 'daily', which is not an EventBridge schedule")


def test_redshift_capacity_is_checked_in_steps_of_eight_and_max_above_base():
    assert problems(warehouse={"baseCapacity": 12}) == [
        "datalake:warehouse.baseCapacity: got 12, which is not a Redshift Serverless capacity (8 to 512 RPUs in steps of 8)"
        "; for example: 8"
    ]
    (problem,) = problems(warehouse={"baseCapacity": 32, "maxCapacity": 16})
    assert "maxCapacity 16 below baseCapacity 32" in problem


def test_unknown_interface_endpoint_is_rejected():
    (problem,) = problems(warehouse={"interfaceEndpoints": ["ec2"]})
    assert problem.startswith("datalake:warehouse.interfaceEndpoints[0]:")


def test_defaults_are_the_cheap_secure_choices():
    config = silo_config()
    for key in ("datalake:ingestion", "datalake:etl", "datalake:warehouse"):
        config.pop(key)
    parsed = parse_stack_config("s", config)
    assert parsed.ingestion.authorization == "iam"
    assert parsed.warehouse.base_capacity == 8
    assert parsed.warehouse.interface_endpoints == []
    assert parsed.warehouse.quicksight.enabled is False
    assert parsed.etl.schedule == "cron(0 3 * * ? *)"


# --- data-quality rules (issue 13, item 8) ------------------------------------------------------

TYPED = {
    **GOOD,
    "columns": [*GOOD["columns"], {"name": "amount", "type": "decimal(12,2)"}, {"name": "channel", "type": "string"}, {"name": "express", "type": "boolean"}],
}


def quality(*rules, **settings) -> dict:
    return {**TYPED, "quality": {"rules": list(rules), **settings}}


def test_quality_rules_of_every_kind_are_accepted_and_reach_the_job_argument():
    from components.silo.schema import job_datasets_argument

    rules = [
        {"name": "amount_positive", "column": "amount", "min": 0.01, "max": 10000},
        {"name": "known_channel", "column": "channel", "allowedValues": ["web", "store"]},
        {"name": "order_format", "column": "order_id", "pattern": "^o-[0-9]+$"},
        {"name": "channel_present", "column": "channel", "notNull": True},
        {"name": "one_row_per_order", "unique": ["order_id"]},
        {"name": "recent", "column": "at", "min": "2020-01-01T00:00:00"},
    ]
    config = parse_stack_config("s", silo_config(**{"datalake:datasets": [quality(*rules, maxQuarantineShare=0.05)]}))
    (argument,) = __import__("json").loads(job_datasets_argument(config.datasets))
    assert [r["name"] for r in argument["quality"]["rules"]] == [r["name"] for r in rules]
    assert argument["quality"]["maxQuarantineShare"] == 0.05
    assert argument["quality"]["rules"][0] == {"name": "amount_positive", "column": "amount", "notNull": False, "min": 0.01, "max": 10000}


def test_a_rule_declares_exactly_one_check():
    (problem,) = problems(datasets=[quality({"name": "both", "column": "amount", "min": 0, "pattern": "x"})])
    assert "rule 'both': declares min/max and pattern; give exactly one of notNull, min/max, allowedValues, pattern, unique" in problem
    (problem,) = problems(datasets=[quality({"name": "none", "column": "amount"})])
    assert "rule 'none': declares no check" in problem


def test_rules_name_existing_columns_and_fitting_values():
    found = problems(
        datasets=[
            quality(
                {"name": "gone", "column": "price", "min": 1},
                {"name": "text_range", "column": "channel", "min": "a"},
                {"name": "bad_bound", "column": "amount", "min": "cheap"},
                {"name": "upside_down", "column": "amount", "min": 5, "max": 1},
                {"name": "bad_value", "column": "express", "allowedValues": ["yes"]},
                {"name": "bad_regex", "column": "channel", "pattern": "(unclosed"},
                {"name": "no_key", "unique": ["nope"]},
            )
        ]
    )
    (problem,) = found
    for expected in (
        "rule 'gone': column 'price' is not in columns",
        "rule 'text_range': min/max needs a number, date or timestamp column, not string",
        "rule 'bad_bound': min 'cheap' is not a number (column 'amount' is decimal(12,2))",
        "rule 'upside_down': min 5 is above max 1; swap them",
        "rule 'bad_value': allowed value 'yes' is not true or false",
        "rule 'bad_regex': pattern '(unclosed' is not a regular expression",
        "rule 'no_key': unique names ['nope']",
    ):
        assert expected in problem


def test_max_quarantine_share_is_a_share():
    (problem,) = problems(datasets=[quality(maxQuarantineShare=5)])
    assert problem.startswith("datalake:datasets[0].quality.maxQuarantineShare:")
