"""Benchmark: the Glue job's transform in local Spark against the same rules in DuckDB.

Two datasets, each generated as Parquet with text columns, like an untyped raw feed:
  narrow  the example of `Pulumi.silo-template.yaml` (orders: 6 columns, dedupe on order_id);
  wide    20 columns (strings, ints, bigints, doubles, decimals, booleans, dates, a timestamp).
Both hold ~10% duplicate keys, nulls, integral floats in integer columns (`517.0`, accepted),
fractions there (`517.5`, refused) and values that do not cast (`n/a`, `maybe`, `2024-13-01`).
In one run, for `--repeat` rounds each:
  spark   `dataset_transform.run_dataset` (cast, check, quarantine, dedupe, write partitioned
          Parquet) in `local[2]`, the session started once beforehand (start-up reported separately);
  duckdb  the same rules as one SQL script (TRY_CAST, the integral rule, concat_ws reasons,
          row_number dedupe), written with COPY ... PARTITION_BY.
Both engines must produce identical rows (processed and quarantined, compared with EXCEPT ALL both
ways), or the script fails. It also reports:
  planning        seconds to build the optimized plans of the transform (processed and quarantine)
                  at 5, 20, 50 and 100 columns with Spark's default constraint propagation on;
  amplification   a second batch of the wide dataset that replays 10% of the stored rows across
                  every day and adds 5% new rows on three days: rows written / rows new, and what
                  rewriting every touched partition would have written.
Prints a table (medians of the rounds and their ratios, wall seconds and CPU seconds: the Spark
JVM's and this process's, which holds DuckDB; CPU is the steadier figure on a shared machine);
`--json` prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions" / "glue"))
sys.path.insert(0, str(ROOT))

from components.stack_config import parse_stack_config  # noqa: E402
from components.silo.schema import job_datasets_argument  # noqa: E402
from dataset_transform import INTEGER_TYPES, DatasetSpec, parse_specs, run_dataset, transform  # noqa: E402
from offline.spark import local_spark  # noqa: E402
from offline.stacks import silo_config  # noqa: E402

DAYS = 30
DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN",
                "timestamp": "TIMESTAMP", "date": "DATE"}
WIDE_TYPES = ("int", "double", "decimal(12,2)", "boolean", "bigint", "date", "string", "int")


def template_dataset() -> DatasetSpec:
    """The example dataset of `Pulumi.silo-template.yaml`, as the Glue job receives it."""
    config = parse_stack_config("bench", silo_config())
    (spec,) = parse_specs(job_datasets_argument(config.datasets[:1]))
    # The DuckDB script implements the type checks and the dedupe, not the quality rules.
    return dataclasses.replace(spec, rules=())


def wide_dataset(columns: int = 20) -> DatasetSpec:
    """`columns` columns: a key, an event time, a required customer and a mix of every type."""
    declared = [("id", "string"), ("at", "timestamp"), ("customer", "string")]
    declared += [(f"c{i:02d}", WIDE_TYPES[i % len(WIDE_TYPES)]) for i in range(columns - len(declared))]
    return DatasetSpec.from_dict(
        {
            "name": f"wide{columns}",
            "columns": [{"name": n, "type": t} for n, t in declared],
            "required": ["id", "customer"],
            "dedupeKey": ["id"],
            "eventTimeColumn": "at",
        }
    )


def q(name: str) -> str:
    """A DuckDB identifier (`at` and others are keywords there)."""
    return '"' + name.replace('"', '""') + '"'


def duckdb_type(type_name: str) -> str:
    return type_name.upper() if type_name.startswith("decimal") else DUCKDB_TYPES[type_name]


def _value_sql(spec: DatasetSpec, name: str, type_name: str, salt: int, rows: int) -> str:
    """Text of column `name` for row `i`: mostly good values, some nulls, some that do not cast."""
    i = f"(i + {salt * 7919})"
    if name in spec.dedupe_key:
        return f"'k' || (i % {int(rows * 0.9)})"
    if name == spec.event_time_column:
        return (
            f"CASE WHEN i % 1009 = 0 THEN NULL ELSE "
            f"strftime(TIMESTAMP '2024-05-01' + to_seconds((i * 7919) % ({DAYS} * 86400)), '%Y-%m-%d %H:%M:%S') END"
        )
    null = f"WHEN {i} % 61 = 0 THEN NULL"
    bad = f"WHEN {i} % 1999 = 0 THEN"
    if type_name in INTEGER_TYPES:
        scale = 1000 if type_name == "int" else 10_000_000_000
        number = f"(i % 1000) * {scale // 1000}"
        return (
            f"CASE {null} {bad} 'n/a' WHEN {i} % 2003 = 0 THEN CAST({number} AS VARCHAR) || '.5' "
            f"WHEN {i} % 3 = 0 THEN CAST({number} AS VARCHAR) || '.0' ELSE CAST({number} AS VARCHAR) END"
        )
    if type_name == "double":
        return f"CASE {null} {bad} 'x' ELSE printf('%.3f', (i % 100000) / 8.0) END"
    if type_name.startswith("decimal"):
        return f"CASE {null} {bad} 'n/a' ELSE printf('%.2f', (i % 100000) / 100.0) END"
    if type_name == "boolean":
        return f"CASE {null} {bad} 'maybe' WHEN i % 2 = 0 THEN 'true' ELSE 'false' END"
    if type_name == "date":
        return f"CASE {null} {bad} '2024-13-01' ELSE strftime(DATE '2024-01-01' + CAST(i % 365 AS INTEGER), '%Y-%m-%d') END"
    return f"CASE WHEN {i} % 101 = 0 THEN NULL ELSE 's' || (i % 5000) END"


def generate(spec: DatasetSpec, path: Path, rows: int, start: int = 0) -> None:
    import duckdb

    columns = ",\n".join(
        f"{_value_sql(spec, name, type_name, salt, rows)} AS {q(name)}" for salt, (name, type_name) in enumerate(spec.columns)
    )
    duckdb.sql(f"COPY (SELECT {columns} FROM range({start}, {start + rows}) t(i)) TO '{path}' (FORMAT parquet)")


def _duckdb_typed(column: str, type_name: str) -> str:
    name = q(column)
    if type_name in INTEGER_TYPES:
        # DuckDB rounds '517.5' to 518 when casting to an integer: the same integral rule as the job.
        number = f"TRY_CAST({name} AS DECIMAL(38,9))"
        return f"(CASE WHEN {number} = floor({number}) THEN TRY_CAST({number} AS {duckdb_type(type_name)}) END)"
    return f"TRY_CAST({name} AS {duckdb_type(type_name)})"


def duckdb_script(spec: DatasetSpec, raw: Path, processed: Path, quarantine: Path) -> list[str]:
    """The transform's rules in SQL: same reasons, same 'latest event, then last in batch' dedupe."""
    reasons = []
    for name, type_name in spec.columns:
        if name in spec.required:
            reasons.append(f"CASE WHEN {q(name)} IS NULL THEN 'missing required column {name}' END")
        reasons.append(
            f"CASE WHEN {q(name)} IS NOT NULL AND {_duckdb_typed(name, type_name)} IS NULL "
            f"THEN 'column {name}: cannot cast ''' || CAST({q(name)} AS VARCHAR) || ''' to {type_name}' END"
        )
    typed = ", ".join(f"{_duckdb_typed(n, t)} AS {q(n)}" for n, t in spec.columns)
    names = ", ".join(q(n) for n in spec.column_names)
    key = ", ".join(q(k) for k in spec.dedupe_key)
    event = q(spec.event_time_column)
    return [
        f"""CREATE OR REPLACE TEMP TABLE checked AS
            SELECT *, concat_ws('; ', {', '.join(reasons)}) AS _reason
            FROM (SELECT *, row_number() OVER () AS _batch_order FROM read_parquet('{raw}'))""",
        f"""COPY (
              SELECT {names}, CAST({event} AS DATE) AS event_date FROM (
                SELECT {typed}, _batch_order,
                       row_number() OVER (PARTITION BY {key} ORDER BY {_duckdb_typed(spec.event_time_column, 'timestamp')} DESC,
                                          _batch_order DESC) AS _rank
                FROM checked WHERE _reason = '')
              WHERE _rank = 1
            ) TO '{processed}' (FORMAT parquet, PARTITION_BY (event_date), OVERWRITE_OR_IGNORE)""",
        f"""COPY (SELECT {names}, _reason, strftime(current_date, '%Y-%m-%d') AS ingest_date FROM checked WHERE _reason <> '')
            TO '{quarantine}' (FORMAT parquet, PARTITION_BY (ingest_date), OVERWRITE_OR_IGNORE)""",
    ]


def _jvm_cpu_seconds(spark) -> float:
    """CPU seconds (user + system, every thread) of the local Spark JVM so far; 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{spark.sparkContext._gateway.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, AttributeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timed:
    """Wall seconds and CPU seconds of a block: the CPU figure (this process, and the Spark JVM when
    given) is the steadier one on a machine shared with other work."""

    def __init__(self, spark=None):
        self.spark = spark

    def __enter__(self) -> "Timed":
        self._wall, self._cpu = time.perf_counter(), time.process_time() + (_jvm_cpu_seconds(self.spark) if self.spark else 0.0)
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() + (_jvm_cpu_seconds(self.spark) if self.spark else 0.0) - self._cpu


def run_duckdb(spec: DatasetSpec, raw: Path, out: Path) -> Timed:
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect()
    with Timed() as timed:
        for sql in duckdb_script(spec, raw, out / "processed", out / "quarantine"):
            connection.execute(sql)
    return timed


def run_spark(spark, spec: DatasetSpec, raw: Path, out: Path):
    with Timed(spark) as timed:
        summary = run_dataset(spark, spark.read.parquet(str(raw)), spec, str(out / "processed"), str(out / "quarantine"))
    return timed, summary


def differences(spec: DatasetSpec, spark_out: Path, duckdb_out: Path) -> dict[str, int]:
    """Rows one engine wrote and the other did not (EXCEPT ALL both ways), per output."""
    import duckdb

    typed = ", ".join(f"CAST({q(n)} AS {duckdb_type(t)}) AS {q(n)}" for n, t in spec.columns)
    texts = ", ".join(f"CAST({q(n)} AS VARCHAR) AS {q(n)}" for n in spec.column_names)
    queries = {
        "processed": f"SELECT {typed}, CAST(event_date AS DATE) AS event_date FROM read_parquet('{{}}/processed/*/*.parquet', hive_partitioning = true)",
        "quarantine": f"SELECT {texts}, _reason FROM read_parquet('{{}}/quarantine/*/*.parquet', hive_partitioning = true)",
    }
    result = {}
    connection = duckdb.connect()
    for output, query in queries.items():
        left, right = query.format(spark_out), query.format(duckdb_out)
        result[output] = sum(
            connection.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()[0] for a, b in ((left, right), (right, left))
        )
    result["rows"] = connection.execute(f"SELECT count(*) FROM ({queries['processed'].format(duckdb_out)})").fetchone()[0]
    return result


def compare_engines(spark, spec: DatasetSpec, rows: int, repeat: int, workdir: Path) -> dict:
    raw = workdir / f"{spec.name}.parquet"
    generate(spec, raw, rows)
    timings: dict[str, list[float]] = {"spark": [], "duckdb": []}
    cpu: dict[str, list[float]] = {"spark": [], "duckdb": []}
    summary = diff = None
    for round_ in range(repeat):
        spark_out, duckdb_out = workdir / f"{spec.name}-spark-{round_}", workdir / f"{spec.name}-duckdb-{round_}"
        spark_timed, summary = run_spark(spark, spec, raw, spark_out)
        duckdb_timed = run_duckdb(spec, raw, duckdb_out)
        for engine, timed in (("spark", spark_timed), ("duckdb", duckdb_timed)):
            timings[engine].append(timed.wall)
            cpu[engine].append(timed.cpu)
        if round_ == 0:
            diff = differences(spec, spark_out, duckdb_out)
        shutil.rmtree(spark_out, ignore_errors=True)
        shutil.rmtree(duckdb_out, ignore_errors=True)
    medians = {engine: statistics.median(values) for engine, values in timings.items()}
    cpu_medians = {engine: statistics.median(values) for engine, values in cpu.items()}
    return {
        "dataset": spec.name,
        "columns": len(spec.columns),
        "rows": rows,
        "clean_rows": summary.clean_rows,
        "quarantined_rows": summary.quarantined_rows,
        "spark_median_seconds": round(medians["spark"], 3),
        "duckdb_median_seconds": round(medians["duckdb"], 3),
        "spark_rows_per_second": round(rows / medians["spark"]),
        "duckdb_rows_per_second": round(rows / medians["duckdb"]),
        "spark_over_duckdb_time": round(medians["spark"] / medians["duckdb"], 2),
        "spark_median_cpu_seconds": round(cpu_medians["spark"], 2),
        "duckdb_median_cpu_seconds": round(cpu_medians["duckdb"], 2),
        "spark_over_duckdb_cpu": round(cpu_medians["spark"] / cpu_medians["duckdb"], 2),
        "rows_only_one_engine_wrote": {k: v for k, v in diff.items() if k != "rows"},
        "engines_agree": diff["processed"] == 0 and diff["quarantine"] == 0 and diff["rows"] == summary.clean_rows,
    }


def planning_seconds(spark, columns: int, repeat: int) -> float:
    """Median wall and CPU seconds to build both optimized plans of the transform of a `columns`-column dataset."""
    spec = wide_dataset(columns)
    raw = spark.createDataFrame([tuple("1" for _ in spec.columns)], ", ".join(f"{n} string" for n in spec.column_names))
    before = spark.conf.get("spark.sql.constraintPropagation.enabled")
    spark.conf.set("spark.sql.constraintPropagation.enabled", "true")  # Spark's default, not the guard
    timings, cpu = [], []
    try:
        for _ in range(repeat):
            with Timed(spark) as timed:
                result = transform(raw, spec)
                for frame in (result.clean, result.quarantine):
                    frame._jdf.queryExecution().optimizedPlan()
            timings.append(timed.wall)
            cpu.append(timed.cpu)
    finally:
        spark.conf.set("spark.sql.constraintPropagation.enabled", before)
    return statistics.median(timings), statistics.median(cpu)


def amplification(spark, rows: int, workdir: Path) -> dict:
    """A stored month, then a batch of replays over every day plus new rows on three days."""
    import duckdb

    spec = wide_dataset(20)
    stored, batch = workdir / "amp-stored.parquet", workdir / "amp-batch.parquet"
    generate(spec, stored, rows)
    new = workdir / "amp-new.parquet"
    generate(spec, new, rows // 20, start=rows * 10)
    duckdb.sql(
        f"""COPY (SELECT * FROM read_parquet('{stored}') USING SAMPLE 10% (bernoulli, 7)
                  UNION ALL
                  SELECT * EXCLUDE (i) REPLACE ('n' || id AS id, strftime(TIMESTAMP '2024-05-28' + to_seconds(i % (3 * 86400)), '%Y-%m-%d %H:%M:%S') AS "at")
                  FROM (SELECT *, row_number() OVER () AS i FROM read_parquet('{new}')))
            TO '{batch}' (FORMAT parquet)"""
    )
    out = workdir / "amp"
    run_spark(spark, spec, stored, out)
    timed, summary = run_spark(spark, spec, batch, out)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "stored_rows": rows,
        "batch_rows": summary.input_rows,
        "new_rows": summary.new_rows,
        "partitions_touched": len(summary.partitions),
        "partitions_written": len(summary.partitions_written),
        "rows_written": summary.rows_written,
        "write_amplification": round(summary.write_amplification or 0.0, 2),
        "rewrite_all_touched_amplification": round(summary.clean_rows / summary.new_rows, 2) if summary.new_rows else None,
        "seconds": round(timed.wall, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each generated batch (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per engine (default 3)")
    parser.add_argument("--case", choices=("narrow", "wide", "all"), default="all")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-etl-"))
    try:
        started = time.perf_counter()
        spark = local_spark("bench-etl", shuffle_partitions=8, driver_memory="2g")
        spark_startup = time.perf_counter() - started
        specs = {"narrow": [template_dataset()], "wide": [wide_dataset(20)], "all": [template_dataset(), wide_dataset(20)]}
        cases = [compare_engines(spark, spec, args.rows, args.repeat, workdir) for spec in specs[args.case]]
        planning_runs = {str(n): planning_seconds(spark, n, args.repeat) for n in (5, 20, 50, 100)}
        planning = {n: round(wall, 3) for n, (wall, _) in planning_runs.items()}
        planning_cpu = {n: round(cpu, 3) for n, (_, cpu) in planning_runs.items()}
        amp = amplification(spark, args.rows, workdir)
        spark.stop()
        result = {
            "rows": args.rows,
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
            "spark_startup_seconds": round(spark_startup, 2),
            "cases": cases,
            "planning_seconds_by_columns": planning,
            "planning_cpu_seconds_by_columns": planning_cpu,
            "amplification": amp,
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(f"ETL transform, {args.rows:,} rows per batch, median of {args.repeat}, {os.cpu_count()} CPUs "
                  f"(Spark session start-up {spark_startup:.1f} s, not included)")
            print(f"{'dataset':<10}{'cols':>5}{'clean':>10}{'quarant.':>10}{'spark s':>10}{'duckdb s':>10}{'ratio':>8}"
                  f"{'spark cpu':>11}{'duckdb cpu':>12}{'ratio':>8}  agree")
            for case in cases:
                print(f"{case['dataset']:<10}{case['columns']:>5}{case['clean_rows']:>10,}{case['quarantined_rows']:>10,}"
                      f"{case['spark_median_seconds']:>10.2f}{case['duckdb_median_seconds']:>10.2f}"
                      f"{case['spark_over_duckdb_time']:>7.2f}x{case['spark_median_cpu_seconds']:>11.2f}"
                      f"{case['duckdb_median_cpu_seconds']:>12.2f}{case['spark_over_duckdb_cpu']:>7.2f}x"
                      f"  {'yes' if case['engines_agree'] else 'NO'}")
            print("planning (constraint propagation on), wall (cpu) s: "
                  + ", ".join(f"{n} columns {s:.2f} ({planning_cpu[n]:.2f})" for n, s in planning.items()))
            print(f"write amplification, second batch ({amp['batch_rows']:,} rows, {amp['new_rows']:,} new, "
                  f"{amp['partitions_written']}/{amp['partitions_touched']} touched partitions rewritten): "
                  f"{amp['write_amplification']:.2f} rows written per new row "
                  f"(rewriting every touched partition: {amp['rewrite_all_touched_amplification']:.2f})")
        if not all(case["engines_agree"] for case in cases):
            print(f"engines disagree: {[(c['dataset'], c['rows_only_one_engine_wrote']) for c in cases]}", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
