"""The silo ETL transform: raw rows of one dataset in, typed, checked, deduplicated rows out.

Pure PySpark, no Glue import: the Glue entry point (`job.py`) reads the raw table with job bookmarks
and hands the DataFrame to `transform`; tests and `bench/etl.py` call the same functions in local
Spark. The dataset's schema arrives as JSON (the `--datasets` job argument), built by the Pulumi
program from the stack config.

What `transform` does, per row:
- casts every declared column to its declared type with `try_cast` (a failed cast is null, never an
  exception, whatever `spark.sql.ansi.enabled` says);
- a row that misses a required column or holds a value that does not cast goes to quarantine, with
  every reason in `_reason` and its original values as text;
- good rows get `event_date` (the date of the event time column), are merged with the rows already
  stored in the partitions they touch, and keep one row per dedupe key: the latest event time wins,
  on a tie the newly ingested row, then the later one in the batch.
`write_processed` then overwrites only those partitions (dynamic partition overwrite).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

PARTITION_COLUMN = "event_date"
REASON_COLUMN = "_reason"
QUARANTINE_PARTITION = "quarantine_date"
_SOURCE = "_source_rank"  # 1 for newly ingested rows, 0 for rows already stored
_ORDER = "_batch_order"


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's schema as the stack config declares it."""

    name: str
    columns: tuple[tuple[str, str], ...]
    """(column name, Spark/Hive type name) in declared order."""
    required: tuple[str, ...]
    """Columns a row must carry; the event time column is always one."""
    dedupe_key: tuple[str, ...]
    """Columns identifying a record; empty means no deduplication."""
    event_time_column: str
    """Timestamp or date column whose date partitions the processed data."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetSpec":
        return cls(
            name=data["name"],
            columns=tuple((c["name"], c["type"]) for c in data["columns"]),
            required=tuple(dict.fromkeys([*data.get("required", []), data["eventTimeColumn"]])),
            dedupe_key=tuple(data.get("dedupeKey", [])),
            event_time_column=data["eventTimeColumn"],
        )

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


def parse_specs(text: str) -> list[DatasetSpec]:
    """The `--datasets` job argument (a JSON list of dataset objects) as specs."""
    return [DatasetSpec.from_dict(item) for item in json.loads(text)]


@dataclass(frozen=True)
class TransformResult:
    clean: DataFrame
    """Declared columns, typed, plus `event_date`: the full new content of every touched partition."""
    quarantine: DataFrame
    """Rejected rows: declared columns as text, `_reason`, `quarantine_date`."""


def _quoted(name: str) -> str:
    return f"`{name}`"


def _typed(name: str, type_name: str) -> Column:
    # try_cast exists as a SQL function since Spark 3.2 (Glue 4.0 runs 3.3), Column.try_cast only in 4.0.
    return F.expr(f"try_cast({_quoted(name)} AS {type_name})")


def transform(raw: DataFrame, spec: DatasetSpec, existing: Optional[DataFrame] = None) -> TransformResult:
    """Casts, checks and deduplicates `raw` against the `existing` processed rows of the dataset.

    `raw` may hold the declared columns typed (Firehose Parquet) or as text; a declared column it
    lacks counts as null. `existing` is what is stored already (declared columns and `event_date`),
    or None when the dataset has no processed data yet.
    """
    present = set(raw.columns)
    source = raw.select(
        *[
            (F.col(_quoted(name)) if name in present else F.lit(None).cast("string")).alias(name)
            for name in spec.column_names
        ]
    ).withColumn(_ORDER, F.monotonically_increasing_id())

    reasons: list[Column] = []
    for name, type_name in spec.columns:
        original = F.col(_quoted(name))
        if name in spec.required:
            reasons.append(F.when(original.isNull(), F.lit(f"missing required column {name}")))
        reasons.append(
            F.when(
                original.isNotNull() & _typed(name, type_name).isNull(),
                F.concat(F.lit(f"column {name}: cannot cast '"), original.cast("string"), F.lit(f"' to {type_name}")),
            )
        )
    # concat_ws skips nulls: the reason is empty exactly when every check passed.
    checked = source.withColumn(REASON_COLUMN, F.concat_ws("; ", *reasons))

    quarantine = checked.where(F.col(REASON_COLUMN) != "").select(
        *[F.col(_quoted(name)).cast("string").alias(name) for name in spec.column_names],
        F.col(REASON_COLUMN),
        F.current_date().alias(QUARANTINE_PARTITION),
    )

    valid = checked.where(F.col(REASON_COLUMN) == "").select(
        *[_typed(name, type_name).alias(name) for name, type_name in spec.columns],
        F.col(_ORDER),
    )
    valid = valid.withColumn(PARTITION_COLUMN, F.to_date(F.col(_quoted(spec.event_time_column))))
    valid = valid.withColumn(_SOURCE, F.lit(1))

    output_columns = [*spec.column_names, PARTITION_COLUMN]
    if existing is not None:
        touched = valid.select(PARTITION_COLUMN).distinct()
        kept = existing.join(F.broadcast(touched), PARTITION_COLUMN, "left_semi").select(
            *[F.col(_quoted(name)).cast(type_name).alias(name) for name, type_name in spec.columns],
            F.col(PARTITION_COLUMN),
        )
        kept = kept.withColumn(_ORDER, F.lit(-1).cast("long")).withColumn(_SOURCE, F.lit(0))
        merged = valid.unionByName(kept)
    else:
        merged = valid

    if spec.dedupe_key:
        latest_first = Window.partitionBy(*[F.col(_quoted(k)) for k in spec.dedupe_key]).orderBy(
            F.col(_quoted(spec.event_time_column)).desc(), F.col(_SOURCE).desc(), F.col(_ORDER).desc()
        )
        merged = merged.withColumn("_rank", F.row_number().over(latest_first)).where(F.col("_rank") == 1)

    return TransformResult(clean=merged.select(*output_columns), quarantine=quarantine)


def touched_dates(clean: DataFrame) -> list[str]:
    """The `event_date` partitions a result will overwrite, as ISO dates (sorted)."""
    return sorted(str(row[0]) for row in clean.select(PARTITION_COLUMN).distinct().collect())


def read_existing(spark: SparkSession, path: str, dates: Sequence[str]) -> Optional[DataFrame]:
    """The stored rows of the given partitions, or None when the dataset has no processed data yet."""
    try:
        stored = spark.read.parquet(path)
    except Exception as exc:  # Spark raises AnalysisException "Path does not exist" for a new dataset
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc) or "Unable to infer schema" in str(exc):
            return None
        raise
    if PARTITION_COLUMN not in stored.columns:
        return None
    return stored.where(F.col(PARTITION_COLUMN).cast("string").isin(list(dates)))


def write_processed(clean: DataFrame, path: str) -> None:
    """Overwrites the `event_date` partitions present in `clean`, leaves every other partition alone.

    The result is checkpointed first: it may have been computed from files of the very partitions
    this write replaces.
    """
    materialized = clean.localCheckpoint(eager=True)
    (
        materialized.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(PARTITION_COLUMN)
        .parquet(path)
    )


def write_quarantine(quarantine: DataFrame, path: str) -> None:
    """Appends rejected rows, partitioned by the day they were rejected."""
    quarantine.write.mode("append").partitionBy(QUARANTINE_PARTITION).parquet(path)


@dataclass(frozen=True)
class RunSummary:
    dataset: str
    input_rows: int
    clean_rows: int
    quarantined_rows: int
    partitions: tuple[str, ...]


def run_dataset(
    spark: SparkSession, raw: DataFrame, spec: DatasetSpec, processed_path: str, quarantine_path: str
) -> RunSummary:
    """One dataset's whole step: transform new raw rows, write touched partitions and quarantine."""
    raw = raw.localCheckpoint(eager=True)  # read the bookmarked input once
    input_rows = raw.count()
    if input_rows == 0:
        return RunSummary(spec.name, 0, 0, 0, ())
    first_pass = transform(raw, spec)
    dates = touched_dates(first_pass.clean)
    existing = read_existing(spark, processed_path, dates) if dates else None
    result = transform(raw, spec, existing) if existing is not None else first_pass
    quarantined = result.quarantine.count()
    if quarantined:
        write_quarantine(result.quarantine, quarantine_path)
    clean_rows = 0
    if dates:
        clean = result.clean.localCheckpoint(eager=True)
        clean_rows = clean.count()
        write_processed(clean, processed_path)
    return RunSummary(spec.name, input_rows, clean_rows, quarantined, tuple(dates))
