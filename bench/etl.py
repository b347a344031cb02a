"""Benchmark: the Glue job's transform in local Spark against the same clean/dedupe in DuckDB.

The dataset is the example of `Pulumi.silo-template.yaml` (orders: text, decimal, int, boolean,
timestamp columns; dedupe on order_id). Generates N raw rows (default 1,000,000) as Parquet with
text columns, like an untyped raw feed:
~10% duplicate keys, ~2% bad rows (a missing required value or a value that does not cast). Then,
in one run, for `--repeat` rounds each:
  spark   `dataset_transform.run_dataset` (cast, quarantine, dedupe, write partitioned Parquet)
          in `local[2]`, the session started once beforehand (start-up reported separately);
  duckdb  the same rules as one SQL script (TRY_CAST, concat_ws reasons, row_number dedupe),
          written with COPY ... PARTITION_BY.
Prints rows/s (median of the rounds) per engine and their ratio; `--json` prints one JSON object.
Both engines must agree on the clean and quarantined row counts, or the script fails.
"""

from __future__ import annotations

import argparse
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

from components.config import parse_stack_config  # noqa: E402
from components.schema import job_datasets_argument  # noqa: E402
from dataset_transform import DatasetSpec, parse_specs, run_dataset  # noqa: E402
from offline.spark import local_spark  # noqa: E402
from offline.stacks import silo_config  # noqa: E402



def template_dataset() -> DatasetSpec:
    """The example dataset of `Pulumi.silo-template.yaml`, as the Glue job receives it."""
    config = parse_stack_config("bench", silo_config())
    (spec,) = parse_specs(job_datasets_argument(config.datasets[:1]))
    return spec


SPEC = template_dataset()
DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN",
                "timestamp": "TIMESTAMP", "date": "DATE"}


def duckdb_type(type_name: str) -> str:
    return type_name.upper() if type_name.startswith("decimal") else DUCKDB_TYPES[type_name]


def generate(path: Path, rows: int) -> None:
    import duckdb

    distinct_keys = int(rows * 0.9)
    duckdb.sql(
        f"""
        COPY (
          SELECT 'o' || (i % {distinct_keys}) AS order_id,
                 CASE WHEN i % 101 = 0 THEN NULL ELSE 'c' || (i % 5000) END AS customer_id,
                 CASE WHEN i % 97 = 0 THEN 'n/a' ELSE printf('%.2f', (i % 100000) / 100.0) END AS amount,
                 CAST(i % 7 AS VARCHAR) AS quantity,
                 CASE WHEN i % 2 = 0 THEN 'true' ELSE 'false' END AS express,
                 strftime(TIMESTAMP '2024-05-01' + to_seconds(i % (30 * 86400)), '%Y-%m-%d %H:%M:%S') AS ordered_at
          FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT parquet)
        """
    )


def duckdb_script(raw: Path, processed: Path, quarantine: Path) -> list[str]:
    """The transform's rules in SQL: same reasons, same 'latest event, then last in batch' dedupe."""
    reasons = []
    for name, type_name in SPEC.columns:
        if name in SPEC.required:
            reasons.append(f"CASE WHEN {name} IS NULL THEN 'missing required column {name}' END")
        reasons.append(
            f"CASE WHEN {name} IS NOT NULL AND TRY_CAST({name} AS {duckdb_type(type_name)}) IS NULL "
            f"THEN 'column {name}: cannot cast ''' || CAST({name} AS VARCHAR) || ''' to {type_name}' END"
        )
    typed = ", ".join(f"TRY_CAST({n} AS {duckdb_type(t)}) AS {n}" for n, t in SPEC.columns)
    names = ", ".join(SPEC.column_names)
    key = ", ".join(SPEC.dedupe_key)
    return [
        f"""CREATE OR REPLACE TEMP TABLE checked AS
            SELECT *, concat_ws('; ', {', '.join(reasons)}) AS _reason
            FROM (SELECT *, row_number() OVER () AS _batch_order FROM read_parquet('{raw}'))""",
        f"""COPY (
              SELECT {names}, CAST({SPEC.event_time_column} AS DATE) AS event_date FROM (
                SELECT {typed}, _batch_order,
                       row_number() OVER (PARTITION BY {key}
                                          ORDER BY TRY_CAST({SPEC.event_time_column} AS TIMESTAMP) DESC, _batch_order DESC) AS _rank
                FROM checked WHERE _reason = '')
              WHERE _rank = 1
            ) TO '{processed}' (FORMAT parquet, PARTITION_BY (event_date), OVERWRITE_OR_IGNORE)""",
        f"""COPY (SELECT {names}, _reason, current_date AS quarantine_date FROM checked WHERE _reason <> '')
            TO '{quarantine}' (FORMAT parquet, PARTITION_BY (quarantine_date), OVERWRITE_OR_IGNORE)""",
    ]


def run_duckdb(raw: Path, out: Path) -> tuple[float, int, int]:
    import duckdb

    processed, quarantine = out / "processed", out / "quarantine"
    out.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect()
    started = time.perf_counter()
    for sql in duckdb_script(raw, processed, quarantine):
        connection.execute(sql)
    elapsed = time.perf_counter() - started
    clean = connection.execute(f"SELECT count(*) FROM read_parquet('{processed}/*/*.parquet')").fetchone()[0]
    bad = connection.execute(f"SELECT count(*) FROM read_parquet('{quarantine}/*/*.parquet')").fetchone()[0]
    return elapsed, clean, bad


def run_spark(spark, raw: Path, out: Path) -> tuple[float, int, int]:
    started = time.perf_counter()
    summary = run_dataset(spark, spark.read.parquet(str(raw)), SPEC, str(out / "processed"), str(out / "quarantine"))
    elapsed = time.perf_counter() - started
    return elapsed, summary.clean_rows, summary.quarantined_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-etl-"))
    try:
        raw = workdir / "raw.parquet"
        generate(raw, args.rows)
        started = time.perf_counter()
        spark = local_spark("bench-etl", shuffle_partitions=8, driver_memory="2g")
        spark_startup = time.perf_counter() - started

        timings: dict[str, list[float]] = {"spark": [], "duckdb": []}
        counts: dict[str, tuple[int, int]] = {}
        for round_ in range(args.repeat):
            for engine in ("spark", "duckdb"):
                out = workdir / f"{engine}-{round_}"
                if engine == "spark":
                    elapsed, clean, bad = run_spark(spark, raw, out)
                else:
                    elapsed, clean, bad = run_duckdb(raw, out)
                timings[engine].append(elapsed)
                counts[engine] = (clean, bad)
                shutil.rmtree(out, ignore_errors=True)
        spark.stop()
        if counts["spark"] != counts["duckdb"]:
            print(f"engines disagree on (clean, quarantined) rows: {counts}", file=sys.stderr)
            return 1

        medians = {engine: statistics.median(values) for engine, values in timings.items()}
        rates = {engine: args.rows / seconds for engine, seconds in medians.items()}
        result = {
            "rows": args.rows,
            "repeat": args.repeat,
            "clean_rows": counts["spark"][0],
            "quarantined_rows": counts["spark"][1],
            "spark_startup_seconds": round(spark_startup, 2),
            "spark_median_seconds": round(medians["spark"], 3),
            "duckdb_median_seconds": round(medians["duckdb"], 3),
            "spark_rows_per_second": round(rates["spark"]),
            "duckdb_rows_per_second": round(rates["duckdb"]),
            "duckdb_over_spark": round(rates["duckdb"] / rates["spark"], 2),
            "cpus": os.cpu_count(),
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(f"ETL transform on {args.rows:,} rows ({result['clean_rows']:,} clean, "
                  f"{result['quarantined_rows']:,} quarantined), median of {args.repeat}, {os.cpu_count()} CPUs")
            print(f"{'engine':<22}{'median s':>10}{'rows/s':>14}")
            print(f"{'spark local[2]':<22}{medians['spark']:>10.2f}{rates['spark']:>14,.0f}")
            print(f"{'duckdb':<22}{medians['duckdb']:>10.2f}{rates['duckdb']:>14,.0f}")
            print(f"duckdb / spark throughput: {result['duckdb_over_spark']:.2f}x "
                  f"(Spark session start-up {spark_startup:.1f} s, not included)")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
