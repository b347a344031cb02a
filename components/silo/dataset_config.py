"""Configuration of a silo's datasets: their schema and data-quality rules (`datalake:datasets`).

Used by the ingestion (Firehose streams, raw tables), the ETL job, the pipeline's Redshift loads
and the schema-evolution checks (components/silo/schema.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional, Union

from pydantic import Field, model_validator

from ..shared.config import ConfigModel


# Column types a dataset may declare: the Hive/Glue names, which Spark, Athena and Parquet share.
SIMPLE_COLUMN_TYPES = ("string", "int", "bigint", "double", "boolean", "timestamp", "date")
DECIMAL_TYPE_PATTERN = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
# Lowercase because Glue, Athena and Redshift fold identifiers to lowercase anyway.
DATASET_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,29}$")
COLUMN_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Columns the data flow adds itself: the raw partition `ingest_date` (Firehose), the processed
# partition `event_date` and the quarantine's `_reason`.
RESERVED_COLUMNS = ("ingest_date", "event_date", "_reason")
EXAMPLE_DATASET = {
    "name": "orders",
    "columns": [
        {"name": "order_id", "type": "string"},
        {"name": "amount", "type": "decimal(12,2)"},
        {"name": "ordered_at", "type": "timestamp"},
    ],
    "required": ["order_id", "ordered_at"],
    "dedupeKey": ["order_id"],
    "eventTimeColumn": "ordered_at",
}


def column_type_problem(type_name: str) -> Optional[str]:
    """None when `type_name` is a supported column type, else what is wrong with it."""
    if type_name in SIMPLE_COLUMN_TYPES:
        return None
    match = DECIMAL_TYPE_PATTERN.match(type_name)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if 1 <= precision <= 38 and scale <= precision:
            return None
        return f"decimal({precision},{scale}) needs 1 <= precision <= 38 and scale <= precision"
    return f"{type_name!r} is not one of {', '.join(SIMPLE_COLUMN_TYPES)}, decimal(p,s)"


RULE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
NUMERIC_TYPES = ("int", "bigint", "double")
RULE_KINDS = ("notNull", "min/max", "allowedValues", "pattern", "unique")
EXAMPLE_RULES = [
    {"name": "amount_positive", "column": "amount", "min": 0.01},
    {"name": "known_channel", "column": "channel", "allowedValues": ["web", "store"]},
    {"name": "order_id_format", "column": "order_id", "pattern": "^o-[0-9]+$"},
    {"name": "one_row_per_order", "unique": ["order_id"]},
]


class QualityRule(ConfigModel):
    """One data-quality check the ETL job applies to every row; failing rows are quarantined with
    `rule <name>:` in their reason. Exactly one of `notNull`, `min`/`max`, `allowedValues`,
    `pattern`, `unique`."""

    name: str = Field(examples=["amount_positive"])
    """Rule name (lowercase letters, digits, underscores): in quarantine reasons and metrics."""
    column: Optional[str] = Field(None, examples=["amount"])
    """The checked column (every kind but `unique`)."""
    not_null: bool = Field(False, examples=[True])
    """The column must hold a value (like `required`, but counted under the rule's name)."""
    min: Optional[Union[int, float, str]] = Field(None, examples=[0.01])
    """Smallest allowed value (numbers; ISO dates or timestamps for date and timestamp columns)."""
    max: Optional[Union[int, float, str]] = Field(None, examples=[10000])
    """Largest allowed value."""
    allowed_values: Optional[list[Union[bool, int, float, str]]] = Field(None, examples=[["web", "store"]])
    """The only values the column may hold (null aside)."""
    pattern: Optional[str] = Field(None, examples=["^o-[0-9]+$"])
    """Regular expression (Java syntax, as Spark's RLIKE) the column's text must match somewhere."""
    unique: Optional[list[str]] = Field(None, examples=[["order_id"]])
    """Columns whose values no two rows of one batch may share (rows with a null among them aside)."""

    def kinds(self) -> list[str]:
        present = {
            "notNull": self.not_null,
            "min/max": self.min is not None or self.max is not None,
            "allowedValues": self.allowed_values is not None,
            "pattern": self.pattern is not None,
            "unique": self.unique is not None,
        }
        return [kind for kind in RULE_KINDS if present[kind]]


class QualityConfig(ConfigModel):
    """A dataset's data-quality rules and the share of rejected rows that raises an alarm."""

    rules: list[QualityRule] = Field(default_factory=list, examples=[EXAMPLE_RULES])
    """Checks applied to every row after the type checks (default none)."""
    max_quarantine_share: Optional[float] = Field(None, gt=0, le=1, examples=[0.05])
    """Largest share of a run's rows that may be quarantined before the silo's alert topic hears of
    it (a CloudWatch alarm on the job's `QuarantineShare` metric; default none: no alarm)."""


def _bound_problem(value: Any, type_name: str) -> Optional[str]:
    """None when `value` is a valid bound or allowed value for a column of `type_name`."""
    if type_name in NUMERIC_TYPES or DECIMAL_TYPE_PATTERN.match(type_name):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if type_name in ("int", "bigint") and not float(value).is_integer():
            return f"{value!r} is not an integer"
        return None
    if type_name in ("date", "timestamp"):
        import datetime as dt

        try:
            (dt.date if type_name == "date" else dt.datetime).fromisoformat(str(value))
        except ValueError:
            return f"{value!r} is not an ISO {type_name} such as {'2024-05-01' if type_name == 'date' else '2024-05-01T00:00:00'}"
        return None
    if type_name == "boolean":
        return None if isinstance(value, bool) else f"{value!r} is not true or false"
    return None if isinstance(value, str) else f"{value!r} is not text"


def quality_problems(where: str, quality: QualityConfig, types: Mapping[str, str]) -> list[str]:
    """Every problem of a dataset's quality rules, each naming the rule and the fix."""
    problems, seen = [], set()
    for rule in quality.rules:
        at = f"{where}, rule {rule.name!r}"
        if not RULE_NAME_PATTERN.match(rule.name):
            problems.append(f"{at}: name must be lowercase letters, digits or underscores starting with a letter")
        if rule.name in seen:
            problems.append(f"{at}: declared twice; each rule needs its own name")
        seen.add(rule.name)
        kinds = rule.kinds()
        if len(kinds) != 1:
            problems.append(
                f"{at}: declares {' and '.join(kinds) if kinds else 'no check'}; give exactly one of "
                f"{', '.join(RULE_KINDS)} per rule"
            )
            continue
        if kinds == ["unique"]:
            unknown = [c for c in rule.unique or [] if c not in types]
            if not rule.unique or unknown:
                problems.append(f"{at}: unique names {unknown or 'no column'}; list columns of the dataset")
            if rule.column is not None:
                problems.append(f"{at}: a unique rule takes its columns in unique, not column")
            continue
        if rule.column not in types:
            problems.append(f"{at}: column {rule.column!r} is not in columns; name the checked column")
            continue
        type_name = types[rule.column]
        if kinds == ["min/max"]:
            if type_name in ("string", "boolean"):
                problems.append(f"{at}: min/max needs a number, date or timestamp column, not {type_name}")
                continue
            bound_problems = [
                f"{at}: {key} {problem} (column {rule.column!r} is {type_name})"
                for key, bound in (("min", rule.min), ("max", rule.max))
                if bound is not None and (problem := _bound_problem(bound, type_name))
            ]
            problems += bound_problems
            # ISO dates and timestamps of one form compare as text.
            if not bound_problems and rule.min is not None and rule.max is not None and rule.min > rule.max:  # type: ignore[operator]
                problems.append(f"{at}: min {rule.min!r} is above max {rule.max!r}; swap them")
        elif kinds == ["allowedValues"]:
            if not rule.allowed_values:
                problems.append(f"{at}: allowedValues is empty; list the values the column may hold")
            for value in rule.allowed_values or []:
                problem = _bound_problem(value, type_name)
                if problem:
                    problems.append(f"{at}: allowed value {problem} (column {rule.column!r} is {type_name})")
        elif kinds == ["pattern"]:
            try:
                re.compile(rule.pattern or "")
            except re.error as exc:
                problems.append(f"{at}: pattern {rule.pattern!r} is not a regular expression ({exc})")
    return problems


class DatasetColumn(ConfigModel):
    """One column of a dataset's schema."""

    name: str = Field(examples=["order_id"])
    """Column name: lowercase letters, digits and underscores, starting with a letter or underscore."""
    type: str = Field(examples=["string"])
    """One of string, int, bigint, double, boolean, timestamp, date, decimal(p,s)."""


class DatasetConfig(ConfigModel):
    """A dataset the silo ingests: its API path, Firehose stream, Glue tables and Redshift table."""

    name: str = Field(examples=["orders"])
    """Dataset name (2-30 lowercase letters, digits, underscores): the API path, S3 prefix and table name."""
    columns: list[DatasetColumn] = Field(examples=[EXAMPLE_DATASET["columns"]])
    """The schema, in order: at least one column, names unique."""
    required: list[str] = Field(default_factory=list, examples=[["order_id"]])
    """Columns every record must carry (default none besides the event time column)."""
    dedupe_key: list[str] = Field(default_factory=list, examples=[["order_id"]])
    """Columns that identify a record: the ETL job keeps only the latest row per key (default: no dedupe)."""
    event_time_column: str = Field(examples=["ordered_at"])
    """A timestamp or date column: processed data is partitioned by its (UTC) date and the latest duplicate wins."""
    quality: QualityConfig = Field(default_factory=QualityConfig, examples=[{"rules": EXAMPLE_RULES, "maxQuarantineShare": 0.05}])
    """Data-quality rules and the alarm threshold (default: no rules, no alarm)."""

    @model_validator(mode="after")
    def _check_schema(self) -> "DatasetConfig":
        where = f"dataset {self.name!r}"
        problems = []
        if not DATASET_NAME_PATTERN.match(self.name):
            problems.append(f"{where}: name must be 2-30 lowercase letters, digits or underscores starting with a letter")
        if not self.columns:
            problems.append(f"{where}: the schema is empty; declare at least one column, for example {{name: id, type: string}}")
        seen: set[str] = set()
        types = {}
        for column in self.columns:
            at = f"{where}, column {column.name!r}"
            if not COLUMN_NAME_PATTERN.match(column.name):
                problems.append(f"{at}: name must be lowercase letters, digits or underscores (at most 63)")
            if column.name in RESERVED_COLUMNS:
                problems.append(f"{at}: the name is reserved for the data flow's own columns ({', '.join(RESERVED_COLUMNS)}); rename it")
            if column.name in seen:
                problems.append(f"{at}: declared twice; each column name must appear once")
            seen.add(column.name)
            type_problem = column_type_problem(column.type)
            if type_problem:
                problems.append(f"{at}: type {type_problem}; for example: decimal(12,2)")
            types[column.name] = column.type
        for list_name, names in (("required", self.required), ("dedupeKey", self.dedupe_key)):
            for name in names:
                if name not in types:
                    problems.append(f"{where}: {list_name} names column {name!r}, which is not in columns")
        if self.event_time_column not in types:
            problems.append(f"{where}: eventTimeColumn names column {self.event_time_column!r}, which is not in columns")
        elif types[self.event_time_column] not in ("timestamp", "date"):
            problems.append(
                f"{where}, column {self.event_time_column!r}: eventTimeColumn must be of type timestamp or date, "
                f"not {types[self.event_time_column]}"
            )
        problems += quality_problems(where, self.quality, types)
        if problems:
            raise ValueError("got " + "; ".join(problems))
        return self

    @property
    def required_columns(self) -> list[str]:
        """Required columns, the event time column always among them (a row needs a partition)."""
        return list(dict.fromkeys([*self.required, self.event_time_column]))
