"""The silo ETL transform: raw rows of one dataset in, typed, checked, deduplicated rows out.

Pure PySpark, no Glue import: the Glue entry point (`job.py`) reads the raw table with job bookmarks
and hands the DataFrame to `run_dataset`; tests and `bench/etl.py` call the same functions in local
Spark. The dataset's schema arrives as JSON (the `--datasets` job argument), built by the Pulumi
program from the stack config.

What the transform does, per row:
- casts every declared column to its declared type with `try_cast` (a failed cast is null, never an
  exception, whatever `spark.sql.ansi.enabled` says). Integer columns also take integral values
  written as decimals or floats (`517.0`, `5.17e2`) and refuse fractional ones (`517.5`), whatever
  type the raw column has;
- a row that misses a required column, holds a value that does not cast or breaks one of the
  dataset's quality rules goes to quarantine, with every reason in `_reason` (a rule's reason starts
  with `rule <name>:`) and its original values as text;
- good rows get `event_date` (the UTC date of the event time column: the Glue job pins the session
  time zone to UTC), are merged with the rows already stored in the partitions they touch, and keep
  one row per dedupe key: the latest event time wins, on a tie the newly ingested row, then the
  later one in the batch.
`run_dataset` then overwrites only the partitions whose content changed (dynamic partition
overwrite), and replaces the quarantine of the raw partitions it read, so a re-run of the same input
writes the same files.

The plan's shape matters for wide datasets. Spark's constraint propagation rewrites each constraint
a plan node inherits once per alias matching part of it, so a projection that renames N columns
above a filter whose condition mentions all N derives 2^N constraints (a 19-column dataset ran out
of memory while planning). Here every typed value and the validity flag are computed once, in one
projection that also draws the batch order (non-deterministic, so no filter is pushed below it);
filters test that flag, and the projections above them select attributes without renaming what a
constraint mentions. The Glue job and the local helper also switch constraint propagation off.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

PARTITION_COLUMN = "event_date"
RAW_PARTITION_COLUMN = "ingest_date"
"""Firehose's partition of the raw table (`<dataset>/ingest_date=YYYY-MM-DD/`, UTC arrival date)."""
REASON_COLUMN = "_reason"
QUARANTINE_PARTITION = RAW_PARTITION_COLUMN
"""Quarantined rows are kept under the raw partition they were read from: a re-run replaces them."""

# Internal columns hold a colon, which no declared column name may contain.
_VALID = "valid:"
_ORDER = "order:"  # position in the batch: later rows win ties
_SOURCE = "source:"  # 1 for newly ingested rows, 0 for rows already stored
_RANK = "rank:"
_TWIN = "twin:"  # a new row identical to the stored row of its key
_DUPLICATES = "duplicates:"
INTEGER_TYPES = ("int", "bigint")
_INTEGRAL_SOURCE_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)


def _typed_name(name: str) -> str:
    return f"typed:{name}"


@dataclass(frozen=True)
class QualityRule:
    """One declarative check of the dataset config (`quality.rules`)."""

    name: str
    kind: str
    """`notNull`, `range`, `allowedValues`, `pattern` or `unique`."""
    columns: tuple[str, ...]
    """The checked column (one), or for `unique` the columns that must be unique within a batch."""
    minimum: Optional[str] = None
    maximum: Optional[str] = None
    allowed: tuple[Any, ...] = ()
    pattern: Optional[str] = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QualityRule":
        if "unique" in data:
            return cls(name=data["name"], kind="unique", columns=tuple(data["unique"]))
        column = (data["column"],)
        if data.get("notNull"):
            return cls(name=data["name"], kind="notNull", columns=column)
        if "allowedValues" in data:
            return cls(name=data["name"], kind="allowedValues", columns=column, allowed=tuple(data["allowedValues"]))
        if "pattern" in data:
            return cls(name=data["name"], kind="pattern", columns=column, pattern=data["pattern"])
        minimum, maximum = data.get("min"), data.get("max")
        return cls(
            name=data["name"],
            kind="range",
            columns=column,
            minimum=None if minimum is None else str(minimum),
            maximum=None if maximum is None else str(maximum),
        )


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's schema and quality rules as the stack config declares them."""

    name: str
    columns: tuple[tuple[str, str], ...]
    """(column name, Spark/Hive type name) in declared order."""
    required: tuple[str, ...]
    """Columns a row must carry; the event time column is always one."""
    dedupe_key: tuple[str, ...]
    """Columns identifying a record; empty means no deduplication."""
    event_time_column: str
    """Timestamp or date column whose (UTC) date partitions the processed data."""
    rules: tuple[QualityRule, ...] = ()
    """Quality rules; a row breaking one is quarantined with the rule's name in its reason."""
    max_quarantine_share: Optional[float] = None
    """Share of a run's rows above which the run is reported as failing its quality threshold."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetSpec":
        quality = data.get("quality") or {}
        return cls(
            name=data["name"],
            columns=tuple((c["name"], c["type"]) for c in data["columns"]),
            required=tuple(dict.fromkeys([*data.get("required", []), data["eventTimeColumn"]])),
            dedupe_key=tuple(data.get("dedupeKey", [])),
            event_time_column=data["eventTimeColumn"],
            rules=tuple(QualityRule.from_dict(rule) for rule in quality.get("rules", [])),
            max_quarantine_share=quality.get("maxQuarantineShare"),
        )

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def types(self) -> dict[str, str]:
        return dict(self.columns)


def parse_specs(text: str) -> list[DatasetSpec]:
    """The `--datasets` job argument (a JSON list of dataset objects) as specs."""
    return [DatasetSpec.from_dict(item) for item in json.loads(text)]


@dataclass(frozen=True)
class TransformResult:
    clean: DataFrame
    """Declared columns, typed, plus `event_date`: the full new content of every touched partition."""
    quarantine: DataFrame
    """Rejected rows: declared columns as text, `_reason`, `ingest_date`."""


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _col(name: str) -> Column:
    return F.col(_quoted(name))


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _typed(name: str, source_type: T.DataType, type_name: str) -> str:
    """SQL of the raw column `name` as `type_name`, null when it does not convert.

    try_cast exists as a SQL function since Spark 3.2 (Glue 4.0 runs 3.3), Column.try_cast only in 4.0.
    An integer column goes through decimal(38,9) unless its raw type is integral already: Spark casts
    the text `517.0` to null and the double 517.5 to 517, and neither is right. Never a direct
    try_cast of text to an integer first: each value it refuses (every `517.0`) costs an exception
    inside Spark, which made such columns 6x slower than the decimal parse.
    """
    column = _quoted(name)
    if type_name not in INTEGER_TYPES or isinstance(source_type, _INTEGRAL_SOURCE_TYPES):
        return f"try_cast({column} AS {type_name})"
    number = f"try_cast({column} AS decimal(38,9))"
    return f"CASE WHEN {number} = floor({number}) THEN try_cast({number} AS {type_name}) END"


@dataclass(frozen=True)
class _Check:
    """A row-level check in SQL: `passed` is never null; `reason` is what the quarantine says when it fails."""

    passed: str
    reason: str


def _text(sql: str) -> str:
    return f"CAST({sql} AS STRING)"


class _Sql(str):
    """A SQL expression among the parts of a `_message` (other parts are literal text)."""


def _message(*parts: str) -> str:
    return "concat(" + ", ".join(p if isinstance(p, _Sql) else _sql_literal(p) for p in parts) + ")"


def _checks(spec: DatasetSpec, typed: dict[str, str]) -> list[_Check]:
    checks: list[_Check] = []
    for name, type_name in spec.columns:
        original = _quoted(name)
        if name in spec.required:
            checks.append(_Check(f"{original} IS NOT NULL", _sql_literal(f"missing required column {name}")))
        checks.append(
            _Check(
                f"({original} IS NULL OR {typed[name]} IS NOT NULL)",
                _message(f"column {name}: cannot cast '", _Sql(_text(original)), f"' to {type_name}"),
            )
        )
    for rule in spec.rules:
        if rule.kind == "unique":
            continue  # needs the whole batch: see `checked`
        (name,) = rule.columns
        original, value, type_name = _quoted(name), typed[name], spec.types[name]
        label = f"rule {rule.name}: column {name}"
        shown = _Sql(_text(original))
        if rule.kind == "notNull":
            checks.append(_Check(f"{original} IS NOT NULL", _sql_literal(f"{label} is null")))
        elif rule.kind == "range":
            for bound, operator_, what in ((rule.minimum, ">=", "below"), (rule.maximum, "<=", "above")):
                if bound is not None:
                    inside = f"{value} {operator_} CAST({_sql_literal(bound)} AS {type_name})"
                    checks.append(
                        _Check(f"({value} IS NULL OR {inside})", _message(f"{label} value '", shown, f"' is {what} {bound}"))
                    )
        elif rule.kind == "allowedValues":
            allowed = ", ".join(f"CAST({_sql_literal(v)} AS {type_name})" for v in rule.allowed)
            listed = ", ".join(str(v) for v in rule.allowed)
            checks.append(
                _Check(f"({value} IS NULL OR {value} IN ({allowed}))", _message(f"{label} value '", shown, f"' is not one of {listed}"))
            )
        elif rule.kind == "pattern":
            checks.append(
                _Check(
                    f"({original} IS NULL OR {_text(original)} RLIKE {_sql_literal(rule.pattern)})",
                    _message(f"{label} value '", shown, f"' does not match {rule.pattern}"),
                )
            )
    return checks


def checked(raw: DataFrame, spec: DatasetSpec) -> DataFrame:
    """One projection of the batch: originals, typed values, the validity flag, reasons, batch order.

    Columns: each declared column as it came (absent ones null), `typed:<column>`, `valid:`,
    `_reason` (empty on valid rows), `order:`, `event_date` and `ingest_date` (the raw partition;
    today's UTC date when the input has no such column, as in local runs).

    Built as SQL text in one `selectExpr`: a hundred columns make thousands of expression nodes,
    and building them one py4j call at a time took longer than Spark's planning.
    """
    present = {f.name: f.dataType for f in raw.schema.fields}
    originals = [
        _quoted(name) if name in present else f"CAST(NULL AS STRING) AS {_quoted(name)}" for name in spec.column_names
    ]
    ingest = (
        f"CAST({_quoted(RAW_PARTITION_COLUMN)} AS STRING) AS {RAW_PARTITION_COLUMN}"
        if RAW_PARTITION_COLUMN in present
        else f"date_format(current_timestamp(), 'yyyy-MM-dd') AS {RAW_PARTITION_COLUMN}"
    )
    typed = {name: _typed(name, present.get(name, T.StringType()), type_name) for name, type_name in spec.columns}
    checks = _checks(spec, typed)
    windows = []
    for index, rule in enumerate(rule for rule in spec.rules if rule.kind == "unique"):
        # How many rows of the batch share this row's values; rows with a null among them are not compared.
        keys = [typed[name] for name in rule.columns]
        count_name = _quoted(f"{_DUPLICATES}{index}")
        windows.append(f"count(1) OVER (PARTITION BY {', '.join(keys)}) AS {count_name}")
        shared = [part for n in rule.columns for part in (f"{n}=", _Sql(_text(_quoted(n))), ", ")][:-1]
        checks.append(
            _Check(
                "(" + " OR ".join([*(f"{k} IS NULL" for k in keys), f"{count_name} = 1"]) + ")",
                _message(f"rule {rule.name}: ", *shared, " is not unique within the batch"),
            )
        )
    source = raw.selectExpr(*originals, ingest)
    if windows:
        source = source.selectExpr("*", *windows)
    valid = " AND ".join(check.passed for check in checks) or "true"
    # concat_ws skips nulls: each failed check contributes its reason.
    reasons = ", ".join(f"CASE WHEN NOT {check.passed} THEN {check.reason} END" for check in checks)
    return source.selectExpr(
        *[_quoted(name) for name in spec.column_names],
        _quoted(RAW_PARTITION_COLUMN),
        *[f"{typed[name]} AS {_quoted(_typed_name(name))}" for name in spec.column_names],
        f"({valid}) AS {_quoted(_VALID)}",
        # Empty on valid rows; each check is computed once for both columns (subexpression elimination).
        f"concat_ws('; ', {reasons}) AS {REASON_COLUMN}",
        f"to_date({typed[spec.event_time_column]}) AS {PARTITION_COLUMN}",
        # Non-deterministic: besides ordering the batch it keeps filters on `valid:` above this
        # projection, so no filter condition is rewritten in terms of every typed expression.
        f"monotonically_increasing_id() AS {_quoted(_ORDER)}",
    )


def valid_rows(checked_rows: DataFrame, spec: DatasetSpec) -> DataFrame:
    """The rows that passed every check: typed declared columns, `event_date`, `order:`."""
    return checked_rows.where(_col(_VALID)).selectExpr(
        *[f"{_quoted(_typed_name(name))} AS {_quoted(name)}" for name in spec.column_names],
        PARTITION_COLUMN,
        _quoted(_ORDER),
    )


def quarantine_rows(checked_rows: DataFrame, spec: DatasetSpec) -> DataFrame:
    """The rows that failed a check: declared columns as text, `_reason`, `ingest_date`."""
    return checked_rows.where(~_col(_VALID)).selectExpr(
        *[f"{_text(_quoted(name))} AS {_quoted(name)}" for name in spec.column_names],
        REASON_COLUMN,
        RAW_PARTITION_COLUMN,
    )


def ranked(valid: DataFrame, spec: DatasetSpec, existing: Optional[DataFrame] = None) -> DataFrame:
    """New and stored rows of the touched partitions, each with `rank:` (1 = kept), `source:` and
    `twin:` (a kept new row identical to the stored row it replaces, i.e. no change)."""
    new = valid.withColumn(_SOURCE, F.lit(1))
    if existing is not None:
        touched = valid.select(PARTITION_COLUMN).distinct()
        kept = existing.join(F.broadcast(touched), PARTITION_COLUMN, "left_semi").selectExpr(
            *[f"CAST({_quoted(name)} AS {type_name}) AS {_quoted(name)}" for name, type_name in spec.columns],
            PARTITION_COLUMN,
            f"CAST(-1 AS BIGINT) AS {_quoted(_ORDER)}",
            f"0 AS {_quoted(_SOURCE)}",
        )
        merged = new.unionByName(kept)
    else:
        merged = new
    if not spec.dedupe_key:
        return merged.selectExpr("*", f"1 AS {_quoted(_RANK)}", f"false AS {_quoted(_TWIN)}")
    by_key = "PARTITION BY " + ", ".join(_quoted(k) for k in spec.dedupe_key)
    order = f"{_quoted(spec.event_time_column)} DESC, {_quoted(_SOURCE)} DESC, {_quoted(_ORDER)} DESC"
    twin = "false"
    if existing is not None:
        content = "struct(" + ", ".join(_quoted(n) for n in [*spec.column_names, PARTITION_COLUMN]) + ")"
        stored = f"max(CASE WHEN {_quoted(_SOURCE)} = 0 THEN {content} END) OVER ({by_key})"
        twin = f"{_quoted(_SOURCE)} = 1 AND {content} <=> {stored}"
    return merged.selectExpr(
        "*", f"row_number() OVER ({by_key} ORDER BY {order}) AS {_quoted(_RANK)}", f"{twin} AS {_quoted(_TWIN)}"
    )


def clean_rows(ranked_rows: DataFrame, spec: DatasetSpec) -> DataFrame:
    return ranked_rows.where(_col(_RANK) == 1).select(*spec.column_names, PARTITION_COLUMN)


def transform(raw: DataFrame, spec: DatasetSpec, existing: Optional[DataFrame] = None) -> TransformResult:
    """Casts, checks and deduplicates `raw` against the `existing` processed rows of the dataset.

    `raw` may hold the declared columns typed (Firehose Parquet) or as text; a declared column it
    lacks counts as null. `existing` is what is stored already (declared columns and `event_date`),
    or None when the dataset has no processed data yet.
    """
    rows = checked(raw, spec)
    return TransformResult(
        clean=clean_rows(ranked(valid_rows(rows, spec), spec, existing), spec),
        quarantine=quarantine_rows(rows, spec),
    )


def touched_dates(clean: DataFrame) -> list[str]:
    """The `event_date` partitions a result will overwrite, as ISO dates (sorted)."""
    return sorted(str(row[0]) for row in clean.select(PARTITION_COLUMN).distinct().collect())


def _missing(exc: Exception) -> bool:
    """Spark's AnalysisException for a path with no data yet (a new dataset or quarantine)."""
    text = str(exc)
    return "PATH_NOT_FOUND" in text or "Path does not exist" in text or "Unable to infer schema" in text


def _partition_paths(spark: SparkSession, path: str, column: str, values: Sequence[str]) -> list[str]:
    """The directories `<path>/<column>=<value>` that exist (Hadoop's file system: S3 in Glue)."""
    jvm = spark.sparkContext._jvm
    configuration = spark.sparkContext._jsc.hadoopConfiguration()
    found = []
    for value in sorted(set(values)):
        directory = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/{column}={value}")
        if directory.getFileSystem(configuration).exists(directory):
            found.append(str(directory))
    return found


def _read_partitions(
    spark: SparkSession, path: str, column: str, values: Sequence[str], schema: Optional[str] = None
) -> Optional[DataFrame]:
    """The stored rows of the given partitions, or None when none of them is stored yet.

    Reads exactly those directories: no listing of every partition of the dataset on each run, and
    directories of another layout next to them (an older `quarantine_date=`) do not matter.
    """
    directories = _partition_paths(spark, path, column, values)
    if not directories:
        return None
    reader = spark.read.option("basePath", path)
    if schema is not None:
        reader = reader.schema(schema)
    stored = reader.parquet(*directories)
    if column not in stored.columns:
        return None
    return stored


def declared_schema(spec: DatasetSpec) -> str:
    """The processed files' schema as DDL: the declared columns and `event_date`."""
    return ", ".join([*(f"{_quoted(name)} {type_name}" for name, type_name in spec.columns), f"{PARTITION_COLUMN} date"])


def read_existing(
    spark: SparkSession, path: str, dates: Sequence[str], spec: Optional[DatasetSpec] = None
) -> Optional[DataFrame]:
    """The stored rows of the given partitions, or None when the dataset has no processed data yet.

    With `spec`, read with the declared schema: files written before a column was added read it as
    null, files written before a type was widened are read as the wider type.
    """
    return _read_partitions(spark, path, PARTITION_COLUMN, dates, declared_schema(spec) if spec else None)


def stored_schema_matches(spark: SparkSession, spec: DatasetSpec, path: str) -> Optional[bool]:
    """Whether every stored file holds exactly the declared columns and types (None: nothing stored).

    Reads every file's footer (`mergeSchema`), so the job asks only when it has no record of the
    schema it last wrote with; files of an older type make the merge fail, which counts as no.
    """
    try:
        merged = spark.read.option("mergeSchema", "true").parquet(path)
    except Exception as exc:
        if _missing(exc):
            return None
        return False
    wanted = spark.createDataFrame([], declared_schema(spec)).schema
    stored = {f.name: f.dataType for f in merged.schema.fields}
    return all(stored.get(f.name) == f.dataType for f in wanted.fields) and set(stored) == {f.name for f in wanted.fields}


def rewrite_processed(spark: SparkSession, spec: DatasetSpec, path: str) -> tuple[str, ...]:
    """Rewrites every stored partition with the declared schema (after a column was added or widened).

    Once per schema change: Redshift's COPY maps Parquet columns by position and type, so every file
    must hold every declared column. Returns the partitions rewritten.
    """
    try:
        every = spark.read.schema(declared_schema(spec)).parquet(path).localCheckpoint(eager=True)
    except Exception as exc:
        if _missing(exc):
            return ()
        raise
    dates = tuple(sorted(str(r[0]) for r in every.select(PARTITION_COLUMN).distinct().collect()))
    _overwrite_partitions(every, path, PARTITION_COLUMN)
    return dates


def _overwrite_partitions(frame: DataFrame, path: str, column: str) -> None:
    (
        frame.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(column)
        .parquet(path)
    )


def write_processed(clean: DataFrame, path: str) -> None:
    """Overwrites the `event_date` partitions present in `clean`, leaves every other partition alone.

    The result is checkpointed first: it may have been computed from files of the very partitions
    this write replaces.
    """
    _overwrite_partitions(clean.localCheckpoint(eager=True), path, PARTITION_COLUMN)


def write_quarantine(spark: SparkSession, quarantine: DataFrame, path: str) -> None:
    """Replaces the quarantine of the raw partitions `quarantine` came from.

    Rows already quarantined in those partitions by an earlier run are kept once: a re-run of the
    same input (bookmarks replay a batch whose run failed before `job.commit()`), or a larger one,
    stores each rejected record once, with the latest reason.
    """
    dates = [str(r[0]) for r in quarantine.select(QUARANTINE_PARTITION).distinct().collect()]
    stored = _read_partitions(spark, path, QUARANTINE_PARTITION, dates)
    values = [c for c in quarantine.columns if c not in (REASON_COLUMN, QUARANTINE_PARTITION)]
    rows = quarantine.withColumn(_SOURCE, F.lit(1))
    if stored is not None:
        previous = stored.select(
            *[
                (_col(c) if c in stored.columns else F.lit(None)).cast("string").alias(c)
                for c in quarantine.columns
                if c != QUARANTINE_PARTITION
            ],
            _col(QUARANTINE_PARTITION).cast("string").alias(QUARANTINE_PARTITION),
            F.lit(0).alias(_SOURCE),
        )
        rows = rows.unionByName(previous, allowMissingColumns=True)
    once = Window.partitionBy(*[_col(c) for c in [*values, QUARANTINE_PARTITION]]).orderBy(_col(_SOURCE).desc())
    merged = rows.withColumn(_RANK, F.row_number().over(once)).where(_col(_RANK) == 1).drop(_RANK, _SOURCE)
    if stored is not None:
        merged = merged.localCheckpoint(eager=True)  # read from the partitions it replaces
    _overwrite_partitions(merged, path, QUARANTINE_PARTITION)


@dataclass(frozen=True)
class RunSummary:
    """What one dataset's run did: the job logs it, writes it to the run summary and publishes it as metrics."""

    dataset: str
    input_rows: int
    clean_rows: int
    """Rows of the dataset in the partitions this run touched, after the merge and dedupe."""
    quarantined_rows: int
    partitions: tuple[str, ...]
    """`event_date` partitions the batch touched."""
    partitions_written: tuple[str, ...] = ()
    """The touched partitions whose content changed, the only ones rewritten."""
    rows_written: int = 0
    new_rows: int = 0
    """Rows that are in the processed data because of this batch (not replays of stored rows)."""
    duplicates_dropped: int = 0
    """Valid rows of the batch that added nothing: older versions, and replays of stored rows."""
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    """Quarantined rows per cause: a rule's name, `schema` (missing or uncastable values)."""
    max_quarantine_share: Optional[float] = None
    partitions_migrated: tuple[str, ...] = ()
    """Stored partitions rewritten with a new declared schema before the batch (see `rewrite_processed`)."""

    @property
    def quarantine_share(self) -> float:
        return self.quarantined_rows / self.input_rows if self.input_rows else 0.0

    @property
    def write_amplification(self) -> Optional[float]:
        """Rows written per row the batch added (None when it added none)."""
        return self.rows_written / self.new_rows if self.new_rows else None

    @property
    def quality_failed(self) -> bool:
        return self.max_quarantine_share is not None and self.quarantine_share > self.max_quarantine_share

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "inputRows": self.input_rows,
            "cleanRows": self.clean_rows,
            "quarantinedRows": self.quarantined_rows,
            "quarantineShare": round(self.quarantine_share, 6),
            "maxQuarantineShare": self.max_quarantine_share,
            "qualityFailed": self.quality_failed,
            "quarantinedByRule": dict(self.quarantined_by_rule),
            "duplicatesDropped": self.duplicates_dropped,
            "newRows": self.new_rows,
            "rowsWritten": self.rows_written,
            "partitionsTouched": list(self.partitions),
            "partitionsWritten": list(self.partitions_written),
            "partitionsMigrated": list(self.partitions_migrated),
        }


def quarantined_by_cause(quarantine: DataFrame, spec: DatasetSpec) -> dict[str, int]:
    """Quarantined rows per cause: a rule's name, or `schema` (a missing or uncastable value).

    Counted in Spark from the reasons (one group per cause, whatever the number of distinct
    reasons); a row that breaks two rules counts once for each.
    """
    parts = f"split({REASON_COLUMN}, '; ')"
    cause = (
        f"array_distinct(transform({parts}, part -> CASE "
        "WHEN part LIKE 'rule %' THEN regexp_extract(part, '^rule ([a-z][a-z0-9_]*):', 1) "
        "WHEN part LIKE 'column %' OR part LIKE 'missing required column %' THEN 'schema' END))"
    )
    known = {"schema", *(rule.name for rule in spec.rules)}
    counts = quarantine.selectExpr(f"explode({cause}) AS cause").groupBy("cause").count().collect()
    # Text of a rejected value that happens to look like a reason is not a cause.
    return {row["cause"]: row["count"] for row in counts if row["cause"] in known}


def _stored_checks(checked_rows: DataFrame, spec: DatasetSpec) -> DataFrame:
    """`checked` as it is materialized: the original text only where the quarantine needs it."""
    valid = _quoted(_VALID)
    return checked_rows.selectExpr(
        *[f"CASE WHEN {valid} THEN NULL ELSE {_quoted(n)} END AS {_quoted(n)}" for n in spec.column_names],
        f"CASE WHEN {valid} THEN NULL ELSE {REASON_COLUMN} END AS {REASON_COLUMN}",
        *[c for c in (_quoted(c) for c in checked_rows.columns) if c.strip("`") not in {*spec.column_names, REASON_COLUMN}],
    )


def run_dataset(
    spark: SparkSession, raw: DataFrame, spec: DatasetSpec, processed_path: str, quarantine_path: str
) -> RunSummary:
    """One dataset's whole step: check new raw rows, write changed partitions and the quarantine."""
    rows = _stored_checks(checked(raw, spec), spec).localCheckpoint(eager=True)  # the input is read once
    counts = rows.groupBy(_col(_VALID), _col(PARTITION_COLUMN)).count().collect()
    input_rows = sum(r["count"] for r in counts)
    if input_rows == 0:
        return RunSummary(spec.name, 0, 0, 0, (), max_quarantine_share=spec.max_quarantine_share)
    dates = sorted(str(r[PARTITION_COLUMN]) for r in counts if r[_VALID])
    valid_count = sum(r["count"] for r in counts if r[_VALID])
    quarantined = input_rows - valid_count
    by_rule: dict[str, int] = {}
    if quarantined:
        bad = quarantine_rows(rows, spec)
        by_rule = quarantined_by_cause(bad, spec)
        write_quarantine(spark, bad, quarantine_path)
    if not dates:
        return RunSummary(
            spec.name, input_rows, 0, quarantined, (), quarantined_by_rule=by_rule,
            max_quarantine_share=spec.max_quarantine_share,
        )
    existing = read_existing(spark, processed_path, dates, spec)
    # Checkpointed: computed from files of the partitions the write below replaces.
    merged = ranked(valid_rows(rows, spec), spec, existing).localCheckpoint(eager=True)
    per_partition = merged.groupBy(PARTITION_COLUMN).agg(
        F.sum(F.when(_col(_SOURCE) == 0, 1).otherwise(0)).alias("stored"),
        F.sum(F.when(_col(_RANK) == 1, 1).otherwise(0)).alias("kept"),
        F.sum(F.when((_col(_RANK) == 1) & (_col(_SOURCE) == 1) & ~_col(_TWIN), 1).otherwise(0)).alias("new"),
    ).collect()
    # Unchanged: every kept row is a stored one (or its identical twin) and none was dropped.
    changed = sorted(str(r[PARTITION_COLUMN]) for r in per_partition if r["new"] > 0 or r["kept"] != r["stored"])
    clean_total = sum(r["kept"] for r in per_partition)
    rows_written = sum(r["kept"] for r in per_partition if str(r[PARTITION_COLUMN]) in changed)
    if changed:
        to_write = clean_rows(merged, spec).where(_col(PARTITION_COLUMN).cast("string").isin(changed))
        _overwrite_partitions(to_write, processed_path, PARTITION_COLUMN)
    return RunSummary(
        spec.name,
        input_rows,
        clean_total,
        quarantined,
        tuple(dates),
        partitions_written=tuple(changed),
        rows_written=rows_written,
        new_rows=sum(r["new"] for r in per_partition),
        duplicates_dropped=valid_count - sum(r["new"] for r in per_partition),
        quarantined_by_rule=by_rule,
        max_quarantine_share=spec.max_quarantine_share,
    )
