"""The Glue job's transform in local PySpark: types, quarantine with reasons, dedupe, partition overwrite."""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

GLUE_DIR = Path(__file__).resolve().parent.parent / "functions" / "glue"
sys.path.insert(0, str(GLUE_DIR))

from dataset_transform import (  # noqa: E402
    DatasetSpec,
    parse_specs,
    read_existing,
    run_dataset,
    touched_dates,
    transform,
    write_processed,
)

SPEC = DatasetSpec.from_dict(
    {
        "name": "orders",
        "columns": [
            {"name": "order_id", "type": "string"},
            {"name": "amount", "type": "decimal(12,2)"},
            {"name": "quantity", "type": "int"},
            {"name": "express", "type": "boolean"},
            {"name": "ordered_at", "type": "timestamp"},
        ],
        "required": ["order_id"],
        "dedupeKey": ["order_id"],
        "eventTimeColumn": "ordered_at",
    }
)
TEXT_SCHEMA = "order_id string, amount string, quantity string, express string, ordered_at string"


@pytest.fixture(scope="session")
def spark():
    from offline.spark import local_spark

    session = local_spark("datalake-etl-tests")
    yield session
    session.stop()


def rows(df):
    return sorted((r.asDict() for r in df.collect()), key=lambda r: json.dumps(r, default=str, sort_keys=True))


def test_every_column_is_cast_to_its_declared_type(spark):
    raw = spark.createDataFrame([("o1", "12.50", "3", "true", "2024-05-01 10:00:00")], TEXT_SCHEMA)
    result = transform(raw, SPEC)
    types = dict(result.clean.dtypes)
    assert types == {
        "order_id": "string",
        "amount": "decimal(12,2)",
        "quantity": "int",
        "express": "boolean",
        "ordered_at": "timestamp",
        "event_date": "date",
    }
    (row,) = result.clean.collect()
    assert (row.amount, row.quantity, row.express) == (Decimal("12.50"), 3, True)
    assert row.event_date == dt.date(2024, 5, 1)
    assert result.quarantine.count() == 0


def test_rows_missing_a_required_column_or_failing_a_cast_are_quarantined_with_every_reason(spark):
    raw = spark.createDataFrame(
        [
            ("ok", "1.00", "1", "false", "2024-05-01 10:00:00"),
            (None, "1.00", "1", "false", "2024-05-01 10:00:00"),
            ("bad", "lots", "two", "false", "2024-05-01 10:00:00"),
            ("late", "1.00", "1", "false", None),
        ],
        TEXT_SCHEMA,
    )
    result = transform(raw, SPEC)
    assert [r.order_id for r in result.clean.collect()] == ["ok"]
    reasons = {r.order_id: r._reason for r in result.quarantine.collect()}
    assert reasons == {
        None: "missing required column order_id",
        "bad": "column amount: cannot cast 'lots' to decimal(12,2); column quantity: cannot cast 'two' to int",
        "late": "missing required column ordered_at",
    }
    quarantined = {r.order_id: r for r in result.quarantine.collect()}
    assert quarantined["bad"].amount == "lots", "quarantine keeps the original value"


def test_a_declared_column_absent_from_the_input_counts_as_missing(spark):
    raw = spark.createDataFrame([("o1", "2024-05-01 10:00:00")], "order_id string, ordered_at string")
    result = transform(raw, SPEC)
    (row,) = result.clean.collect()
    assert row.amount is None and row.quantity is None
    spec = DatasetSpec.from_dict({**json.loads(json.dumps(SPEC_DICT)), "required": ["order_id", "amount"]})
    quarantined = transform(raw, spec).quarantine.collect()
    assert [r._reason for r in quarantined] == ["missing required column amount"]


SPEC_DICT = {
    "name": "orders",
    "columns": [{"name": n, "type": t} for n, t in SPEC.columns],
    "required": ["order_id"],
    "dedupeKey": ["order_id"],
    "eventTimeColumn": "ordered_at",
}


def test_duplicates_keep_the_latest_event_and_on_a_tie_the_last_ingested(spark):
    raw = spark.createDataFrame(
        [
            ("o1", "1.00", "1", "false", "2024-05-01 10:00:00"),
            ("o1", "2.00", "1", "false", "2024-05-01 12:00:00"),
            ("o1", "3.00", "1", "false", "2024-05-01 11:00:00"),
            ("o2", "5.00", "1", "false", "2024-05-01 09:00:00"),
            ("o2", "6.00", "1", "false", "2024-05-01 09:00:00"),
        ],
        TEXT_SCHEMA,
    ).coalesce(1)
    result = transform(raw, SPEC)
    amounts = {r.order_id: r.amount for r in result.clean.collect()}
    assert amounts == {"o1": Decimal("2.00"), "o2": Decimal("6.00")}


def test_without_a_dedupe_key_every_valid_row_is_kept(spark):
    spec = DatasetSpec.from_dict({**SPEC_DICT, "dedupeKey": []})
    raw = spark.createDataFrame([("o1", "1.00", "1", "false", "2024-05-01 10:00:00")] * 3, TEXT_SCHEMA)
    assert transform(raw, spec).clean.count() == 3


def test_typed_input_as_firehose_writes_it_passes_through(spark):
    raw = spark.createDataFrame(
        [("o1", Decimal("1.50"), 2, True, dt.datetime(2024, 5, 2, 8, 0))],
        "order_id string, amount decimal(12,2), quantity int, express boolean, ordered_at timestamp",
    )
    (row,) = transform(raw, SPEC).clean.collect()
    assert (row.amount, row.quantity, row.event_date) == (Decimal("1.50"), 2, dt.date(2024, 5, 2))


def test_empty_input_writes_nothing_and_reports_zero(spark, tmp_path):
    raw = spark.createDataFrame([], TEXT_SCHEMA)
    summary = run_dataset(spark, raw, SPEC, str(tmp_path / "processed"), str(tmp_path / "quarantine"))
    assert (summary.input_rows, summary.clean_rows, summary.quarantined_rows, summary.partitions) == (0, 0, 0, ())
    assert not (tmp_path / "processed").exists() and not (tmp_path / "quarantine").exists()


def test_a_run_overwrites_only_the_partitions_it_touched_and_merges_with_what_they_held(spark, tmp_path):
    processed, quarantine = str(tmp_path / "processed"), str(tmp_path / "quarantine")
    first = spark.createDataFrame(
        [
            ("a", "1.00", "1", "false", "2024-05-01 10:00:00"),
            ("b", "1.00", "1", "false", "2024-05-02 10:00:00"),
            ("c", "1.00", "1", "false", "2024-05-02 11:00:00"),
        ],
        TEXT_SCHEMA,
    )
    assert run_dataset(spark, first, SPEC, processed, quarantine).partitions == ("2024-05-01", "2024-05-02")
    day_one_files = sorted(p.name for p in (tmp_path / "processed" / "event_date=2024-05-01").glob("*.parquet"))

    second = spark.createDataFrame(
        [
            ("b", "9.00", "1", "false", "2024-05-02 12:00:00"),  # newer version of b
            ("d", "4.00", "1", "false", "2024-05-02 09:00:00"),
            ("e", "oops", "1", "false", "2024-05-03 09:00:00"),  # quarantined: touches no partition
        ],
        TEXT_SCHEMA,
    )
    summary = run_dataset(spark, second, SPEC, processed, quarantine)
    assert summary.partitions == ("2024-05-02",)
    assert (summary.clean_rows, summary.quarantined_rows) == (3, 1)

    stored = {r.order_id: (r.amount, str(r.event_date)) for r in spark.read.parquet(processed).collect()}
    assert stored == {
        "a": (Decimal("1.00"), "2024-05-01"),
        "b": (Decimal("9.00"), "2024-05-02"),
        "c": (Decimal("1.00"), "2024-05-02"),
        "d": (Decimal("4.00"), "2024-05-02"),
    }
    assert sorted(p.name for p in (tmp_path / "processed" / "event_date=2024-05-01").glob("*.parquet")) == day_one_files
    (bad,) = spark.read.parquet(quarantine).collect()
    assert (bad.order_id, bad._reason) == ("e", "column amount: cannot cast 'oops' to decimal(12,2)")


def test_rerunning_the_same_batch_changes_nothing(spark, tmp_path):
    processed = str(tmp_path / "processed")
    batch = spark.createDataFrame([("a", "1.00", "1", "false", "2024-05-01 10:00:00")], TEXT_SCHEMA)
    run_dataset(spark, batch, SPEC, processed, str(tmp_path / "q"))
    run_dataset(spark, batch, SPEC, processed, str(tmp_path / "q"))
    assert spark.read.parquet(processed).count() == 1


def test_existing_rows_of_untouched_partitions_are_not_read_into_the_result(spark, tmp_path):
    processed = str(tmp_path / "processed")
    old = spark.createDataFrame([("a", "1.00", "1", "false", "2024-04-01 10:00:00")], TEXT_SCHEMA)
    write_processed(transform(old, SPEC).clean, processed)
    new = spark.createDataFrame([("b", "1.00", "1", "false", "2024-05-01 10:00:00")], TEXT_SCHEMA)
    dates = touched_dates(transform(new, SPEC).clean)
    existing = read_existing(spark, processed, dates)
    assert [r.order_id for r in transform(new, SPEC, existing).clean.collect()] == ["b"]
    assert read_existing(spark, str(tmp_path / "nothing-here"), dates) is None


def test_job_argument_round_trips_and_event_time_is_always_required():
    (spec,) = parse_specs(json.dumps([{**SPEC_DICT, "required": []}]))
    assert spec.required == ("ordered_at",)
    assert spec.column_names == ["order_id", "amount", "quantity", "express", "ordered_at"]


def test_glue_entry_point_imports_without_awsglue():
    import importlib

    module = importlib.import_module("job")
    assert module.processed_path("b", "orders") == "s3://b/orders/"
    assert module.quarantine_path("r", "orders") == "s3://r/quarantine/orders/"
    with pytest.raises(ModuleNotFoundError, match="awsglue"):
        module.main(["job.py"])


@dataclass
class JobRun:
    calls: list
    metrics: dict
    """(metric name, dimensions as a sorted tuple) -> the values moto's CloudWatch received."""
    summaries: dict
    """S3 key -> JSON run summary."""


@pytest.fixture
def aws(monkeypatch):
    """moto's CloudWatch, S3 (bucket `raw`) and Glue, for the job's metrics, records and catalog updates."""
    import types

    import boto3
    from moto import mock_aws

    for variable, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "eu-west-1")):
        monkeypatch.setenv(variable, value)
    with mock_aws():
        clients = types.SimpleNamespace(cloudwatch=boto3.client("cloudwatch"), s3=boto3.client("s3"), glue=boto3.client("glue"))
        clients.s3.create_bucket(Bucket="raw", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        clients.glue.create_database(DatabaseInput={"Name": "acme_dl_sales_processed"})
        yield clients


def run_job(spark, tmp_path, monkeypatch, aws, raw, datasets=None, run_id="jr_0123") -> JobRun:
    """`job.main` against a stand-in for the awsglue package (which exists only inside Glue), with
    moto receiving the metrics, the run summary, the schema record and catalog updates."""
    import types

    calls: list[tuple] = []

    class Frame:
        def toDF(self):  # noqa: N802 - awsglue's name
            return raw

    class GlueContext:
        def __init__(self, context):
            self.spark_session = spark
            self.create_dynamic_frame = self

        def from_catalog(self, database, table_name, transformation_ctx):
            calls.append(("read", database, table_name, transformation_ctx))
            return Frame()

        def get_logger(self):
            return types.SimpleNamespace(
                info=lambda message: calls.append(("log", message)), warn=lambda message: calls.append(("warn", message))
            )

    class Job:
        def __init__(self, context):
            pass

        def init(self, name, args):
            calls.append(("init", name))

        def commit(self):
            calls.append(("commit",))

    def resolved(argv, names):
        pairs = dict(zip(argv[1::2], argv[2::2]))
        return {name: pairs[f"--{name}"] for name in names}

    modules = {
        "awsglue": types.ModuleType("awsglue"),
        "awsglue.context": types.SimpleNamespace(GlueContext=GlueContext),
        "awsglue.job": types.SimpleNamespace(Job=Job),
        "awsglue.utils": types.SimpleNamespace(getResolvedOptions=resolved),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    import job

    monkeypatch.setattr(job, "processed_path", lambda bucket, dataset: str(tmp_path / bucket / dataset))
    monkeypatch.setattr(job, "quarantine_path", lambda bucket, dataset: str(tmp_path / bucket / "quarantine" / dataset))
    cloudwatch, s3 = aws.cloudwatch, aws.s3
    job.main(
        [
            "job.py",
            "--JOB_NAME", "acme-dl-sales-etl",
            "--JOB_RUN_ID", run_id,
            "--datasets", json.dumps(datasets or [SPEC_DICT]),
            "--raw_database", "acme_dl_sales_raw",
            "--processed_database", "acme_dl_sales_processed",
            "--processed_bucket", "processed",
            "--quarantine_bucket", "raw",
            "--silo", "sales",
            "--metrics_namespace", "acme-dl/etl",
        ],
        cloudwatch=cloudwatch,
        s3=s3,
        glue_client=aws.glue,
    )
    metrics = {}
    for metric in cloudwatch.list_metrics(Namespace="acme-dl/etl")["Metrics"]:
        statistics = cloudwatch.get_metric_statistics(
            Namespace="acme-dl/etl",
            MetricName=metric["MetricName"],
            Dimensions=metric["Dimensions"],
            StartTime=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1),
            EndTime=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        key = (metric["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in metric["Dimensions"])))
        metrics[key] = [point["Maximum"] for point in statistics]
    summaries = {
        item["Key"]: json.loads(s3.get_object(Bucket="raw", Key=item["Key"])["Body"].read())
        for item in s3.list_objects_v2(Bucket="raw", Prefix="glue/runs/").get("Contents", [])
    }
    return JobRun(calls, metrics, summaries)


def test_glue_entry_point_runs_every_dataset_with_its_bookmark_context_then_commits(spark, tmp_path, monkeypatch, aws):
    raw = spark.createDataFrame([("o1", "1.00", "1", "true", "2024-05-01 10:00:00")], TEXT_SCHEMA)
    calls = run_job(spark, tmp_path, monkeypatch, aws, raw).calls
    assert calls[0] == ("init", "acme-dl-sales-etl")
    assert calls[1] == ("read", "acme_dl_sales_raw", "orders", "raw_orders")
    assert calls[-1] == ("commit",), "bookmarks are committed only after every dataset was written"
    (row,) = spark.read.parquet(str(tmp_path / "processed" / "orders")).collect()
    assert (row.order_id, str(row.event_date)) == ("o1", "2024-05-01")


def test_glue_job_pins_the_session_to_utc_so_event_date_is_the_utc_date(spark, tmp_path, monkeypatch, aws):
    # 02:00 UTC on May 1st is still April 30th in New York.
    raw = spark.createDataFrame([("o1", "1.00", "1", "true", "2024-05-01T02:00:00Z")], TEXT_SCHEMA)
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    spark.conf.set("spark.sql.constraintPropagation.enabled", "true")
    try:
        run_job(spark, tmp_path, monkeypatch, aws, raw)
        settings = [spark.conf.get(k) for k in ("spark.sql.session.timeZone", "spark.sql.constraintPropagation.enabled")]
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        spark.conf.set("spark.sql.constraintPropagation.enabled", "false")
    assert settings == ["UTC", "false"]
    (row,) = spark.read.parquet(str(tmp_path / "processed" / "orders")).collect()
    assert str(row.event_date) == "2024-05-01"


# --- wide schemas (issue 13, item 1) ------------------------------------------------------------


def wide_spec(columns: int) -> DatasetSpec:
    """`columns` declared columns: a key, an event time and int/double/decimal/boolean/date columns."""
    kinds = ("int", "double", "decimal(12,2)", "boolean", "bigint", "date")
    declared = [{"name": "id", "type": "string"}, {"name": "at", "type": "timestamp"}]
    declared += [{"name": f"c{i}", "type": kinds[i % len(kinds)]} for i in range(columns - 2)]
    return DatasetSpec.from_dict(
        {"name": "wide", "columns": declared, "required": ["id"], "dedupeKey": ["id"], "eventTimeColumn": "at"}
    )


def wide_raw(spark, spec: DatasetSpec):
    values = {"int": "7", "double": "1.5", "decimal(12,2)": "2.50", "boolean": "true", "bigint": "9", "date": "2024-05-01"}
    row = tuple("a" if n == "id" else "2024-05-01 10:00:00" if n == "at" else values[t] for n, t in spec.columns)
    return spark.createDataFrame([row], ", ".join(f"{n} string" for n in spec.column_names))


def constraint_work(frame) -> int:
    """Sum over the optimized plan's nodes of the constraints each node derives before pruning.

    Spark's constraint propagation rewrites every inherited constraint once per alias that matches
    part of it; a projection that re-aliases N columns above a filter mentioning all N doubles the
    set N times (what made a 19-column dataset run out of memory while planning). This counts that
    work directly instead of timing it.
    """

    def walk(plan) -> int:
        total = plan.validConstraints().size()
        children = plan.children().iterator()
        while children.hasNext():
            total += walk(children.next())
        return total

    return walk(frame._jdf.queryExecution().optimizedPlan())


@pytest.fixture
def constraint_propagation(spark):
    """Spark's default (on) for one test: the local helper and the Glue job switch it off as a guard."""
    before = spark.conf.get("spark.sql.constraintPropagation.enabled")
    spark.conf.set("spark.sql.constraintPropagation.enabled", "true")
    yield
    spark.conf.set("spark.sql.constraintPropagation.enabled", before)


def test_planning_work_grows_linearly_with_the_number_of_columns(spark, constraint_propagation):
    def work(columns: int) -> int:
        spec = wide_spec(columns)
        result = transform(wide_raw(spark, spec), spec)
        return constraint_work(result.clean) + constraint_work(result.quarantine)

    # At 12 columns the transform of main derived ~2^10 constraints per projection; linear growth
    # means twice the columns cost at most about twice the work.
    small, double = work(6), work(12)
    assert double <= 2.5 * small, (small, double)
    hundred = work(100)
    assert hundred <= 25 * small, (small, hundred)


def test_the_plan_of_a_hundred_columns_has_the_shape_of_the_plan_of_five(spark, constraint_propagation):
    def nodes(frame) -> list[str]:
        plan = frame._jdf.queryExecution().optimizedPlan()
        names, stack = [], [plan]
        while stack:
            node = stack.pop()
            names.append(node.nodeName())
            children = node.children().iterator()
            while children.hasNext():
                stack.append(children.next())
        return names

    shapes = []
    for columns in (5, 100):
        spec = wide_spec(columns)
        result = transform(wide_raw(spark, spec), spec)
        shapes.append((nodes(result.clean), nodes(result.quarantine)))
        (row,) = result.clean.collect()
        assert row.id == "a" and row.c0 == 7
    assert shapes[0] == shapes[1]


def test_local_sessions_switch_constraint_propagation_off_as_a_second_guard(spark):
    assert spark.conf.get("spark.sql.constraintPropagation.enabled") == "false"


# --- integral floats (item 4) ------------------------------------------------------------------


def test_integer_columns_take_integral_values_written_as_decimals_and_refuse_fractions(spark):
    raw = spark.createDataFrame(
        [
            ("o1", "1.00", "517.0", "true", "2024-05-01 10:00:00"),
            ("o2", "1.00", "5.17e2", "true", "2024-05-01 10:00:00"),
            ("o3", "1.00", "517", "true", "2024-05-01 10:00:00"),
            ("o4", "1.00", "517.5", "true", "2024-05-01 10:00:00"),
            ("o5", "1.00", "9999999999.0", "true", "2024-05-01 10:00:00"),
        ],
        TEXT_SCHEMA,
    )
    result = transform(raw, SPEC)
    assert {r.order_id: r.quantity for r in result.clean.collect()} == {"o1": 517, "o2": 517, "o3": 517}
    assert {r.order_id: r._reason for r in result.quarantine.collect()} == {
        "o4": "column quantity: cannot cast '517.5' to int",
        "o5": "column quantity: cannot cast '9999999999.0' to int",
    }


def test_integer_columns_read_from_floating_point_raw_columns_are_never_truncated(spark):
    # A JSON feed read by Spark infers numbers as double: 517.5 must not become 517.
    raw = spark.createDataFrame(
        [("o1", 517.0, "2024-05-01 10:00:00"), ("o2", 517.5, "2024-05-01 10:00:00"), ("o3", None, "2024-05-01 10:00:00")],
        "order_id string, quantity double, ordered_at string",
    )
    result = transform(raw, SPEC)
    assert {r.order_id: r.quantity for r in result.clean.collect()} == {"o1": 517, "o3": None}
    assert [(r.order_id, r.quantity, r._reason) for r in result.quarantine.collect()] == [
        ("o2", "517.5", "column quantity: cannot cast '517.5' to int")
    ]


# --- idempotent quarantine (item 2) --------------------------------------------------------------

RAW_SCHEMA = f"{TEXT_SCHEMA}, ingest_date string"


def quarantined(spark, path: str) -> list[tuple]:
    return sorted((r.order_id, r._reason) for r in spark.read.parquet(path).collect())


def test_a_replayed_batch_quarantines_each_rejected_row_once(spark, tmp_path):
    processed, quarantine = str(tmp_path / "processed"), str(tmp_path / "quarantine")
    batch = spark.createDataFrame(
        [
            ("a", "1.00", "1", "false", "2024-05-01 10:00:00", "2024-05-01"),
            ("bad", "lots", "1", "false", "2024-05-01 10:00:00", "2024-05-01"),
        ],
        RAW_SCHEMA,
    )
    first = run_dataset(spark, batch, SPEC, processed, quarantine)
    # The job failed before job.commit(): bookmarks hand the same files again, with newer ones.
    later = spark.createDataFrame(
        [("worse", "1.00", "x", "false", "2024-05-02 10:00:00", "2024-05-02")], RAW_SCHEMA
    )
    second = run_dataset(spark, batch.unionByName(later), SPEC, processed, quarantine)
    assert (first.quarantined_rows, second.quarantined_rows) == (1, 2)
    assert quarantined(spark, quarantine) == [
        ("bad", "column amount: cannot cast 'lots' to decimal(12,2)"),
        ("worse", "column quantity: cannot cast 'x' to int"),
    ]
    assert sorted(p.name for p in (tmp_path / "quarantine").iterdir() if p.is_dir()) == [
        "ingest_date=2024-05-01", "ingest_date=2024-05-02"
    ]
    assert spark.read.parquet(processed).count() == 1


# --- write amplification (item 6) --------------------------------------------------------------


def parquet_files(directory: Path) -> dict[str, list[str]]:
    return {p.name: sorted(f.name for f in p.glob("*.parquet")) for p in sorted(directory.iterdir()) if p.is_dir()}


def test_partitions_whose_content_does_not_change_are_not_rewritten(spark, tmp_path):
    processed, quarantine = str(tmp_path / "processed"), str(tmp_path / "quarantine")
    stored = [(f"k{day}", "1.00", "1", "false", f"2024-05-0{day} 10:00:00") for day in range(1, 6)]
    run_dataset(spark, spark.createDataFrame(stored, TEXT_SCHEMA), SPEC, processed, quarantine)
    before = parquet_files(tmp_path / "processed")

    # At-least-once delivery replays every stored row; one new row lands on 2024-05-03.
    replay = [*stored, ("new", "2.00", "1", "false", "2024-05-03 11:00:00")]
    summary = run_dataset(spark, spark.createDataFrame(replay, TEXT_SCHEMA), SPEC, processed, quarantine)

    after = parquet_files(tmp_path / "processed")
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == ["event_date=2024-05-03"]
    assert summary.partitions == ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04", "2024-05-05")
    assert summary.partitions_written == ("2024-05-03",)
    assert (summary.new_rows, summary.rows_written, summary.duplicates_dropped) == (1, 2, 5)
    assert summary.write_amplification == 2.0
    assert sorted(r.order_id for r in spark.read.parquet(processed).collect()) == ["k1", "k2", "k3", "k4", "k5", "new"]


def test_a_newer_version_of_a_stored_row_rewrites_its_partition(spark, tmp_path):
    processed, quarantine = str(tmp_path / "processed"), str(tmp_path / "quarantine")
    run_dataset(spark, spark.createDataFrame([("a", "1.00", "1", "false", "2024-05-01 10:00:00")], TEXT_SCHEMA), SPEC, processed, quarantine)
    update = spark.createDataFrame([("a", "3.00", "1", "false", "2024-05-01 12:00:00")], TEXT_SCHEMA)
    summary = run_dataset(spark, update, SPEC, processed, quarantine)
    assert summary.partitions_written == ("2024-05-01",)
    assert [r.amount for r in spark.read.parquet(processed).collect()] == [Decimal("3.00")]


# --- raw partitions (item 5) --------------------------------------------------------------------


def test_year_month_and_day_are_data_and_the_raw_partition_is_not(spark, tmp_path):
    spec = DatasetSpec.from_dict(
        {
            "name": "visits",
            "columns": [{"name": n, "type": t} for n, t in (("id", "string"), ("year", "int"), ("month", "int"), ("day", "int"), ("at", "timestamp"))],
            "dedupeKey": ["id"],
            "eventTimeColumn": "at",
        }
    )
    # As the Glue job reads the raw table: the declared columns plus Firehose's partition column.
    raw = spark.createDataFrame(
        [("v1", 1999, 12, 31, dt.datetime(2024, 5, 1, 10), "2024-05-02"), ("v2", 2000, 13, 1, None, "2024-05-02")],
        "id string, year int, month int, day int, at timestamp, ingest_date string",
    )
    summary = run_dataset(spark, raw, spec, str(tmp_path / "processed"), str(tmp_path / "quarantine"))
    assert (summary.clean_rows, summary.quarantined_rows) == (1, 1)
    (row,) = spark.read.parquet(str(tmp_path / "processed")).collect()
    assert (row.year, row.month, row.day, str(row.event_date)) == (1999, 12, 31, "2024-05-01")
    assert "ingest_date" not in row.asDict()
    assert [p.name for p in (tmp_path / "quarantine").iterdir() if p.is_dir()] == ["ingest_date=2024-05-02"]


# --- data-quality rules (item 8) ----------------------------------------------------------------

QUALITY_SPEC = DatasetSpec.from_dict(
    {
        **SPEC_DICT,
        "quality": {
            "rules": [
                {"name": "amount_positive", "column": "amount", "notNull": False, "min": 0.01, "max": 1000},
                {"name": "small_orders", "column": "quantity", "notNull": False, "allowedValues": [1, 2, 3]},
                {"name": "order_format", "column": "order_id", "notNull": False, "pattern": "^o-[0-9]+$"},
                {"name": "express_known", "column": "express", "notNull": True},
                {"name": "one_row_per_minute", "notNull": False, "unique": ["ordered_at"]},
            ],
            "maxQuarantineShare": 0.5,
        },
    }
)


def test_quality_rules_quarantine_rows_with_the_rules_name_and_count_them_per_rule(spark, tmp_path):
    raw = spark.createDataFrame(
        [
            ("o-1", "10.00", "1", "true", "2024-05-01 10:00:00"),
            ("o-2", "0.00", "2", "true", "2024-05-01 10:01:00"),
            ("o-3", "5.00", "7", None, "2024-05-01 10:02:00"),
            ("x-4", "5.00", "1", "false", "2024-05-01 10:03:00"),
            ("o-5", "5.00", "1", "false", "2024-05-01 10:04:00"),
            ("o-6", "5.00", "1", "false", "2024-05-01 10:04:00"),
        ],
        TEXT_SCHEMA,
    )
    summary = run_dataset(spark, raw, QUALITY_SPEC, str(tmp_path / "processed"), str(tmp_path / "quarantine"))
    reasons = dict(quarantined(spark, str(tmp_path / "quarantine")))
    assert reasons == {
        "o-2": "rule amount_positive: column amount value '0.00' is below 0.01",
        "o-3": "rule small_orders: column quantity value '7' is not one of 1, 2, 3; rule express_known: column express is null",
        "x-4": "rule order_format: column order_id value 'x-4' does not match ^o-[0-9]+$",
        "o-5": "rule one_row_per_minute: ordered_at=2024-05-01 10:04:00 is not unique within the batch",
        "o-6": "rule one_row_per_minute: ordered_at=2024-05-01 10:04:00 is not unique within the batch",
    }
    assert [r.order_id for r in spark.read.parquet(str(tmp_path / "processed")).collect()] == ["o-1"]
    assert summary.quarantined_by_rule == {
        "amount_positive": 1, "small_orders": 1, "express_known": 1, "order_format": 1, "one_row_per_minute": 2
    }
    assert summary.quarantine_share == 5 / 6 and summary.quality_failed


def test_schema_failures_and_rules_are_counted_apart(spark, tmp_path):
    raw = spark.createDataFrame(
        [("o-1", "lots", "1", "true", "2024-05-01 10:00:00"), ("o-2", "1.00", "1", "true", "2024-05-01 10:00:30")], TEXT_SCHEMA
    )
    summary = run_dataset(spark, raw, QUALITY_SPEC, str(tmp_path / "processed"), str(tmp_path / "quarantine"))
    assert summary.quarantined_by_rule == {"schema": 1}
    assert (summary.quarantine_share, summary.quality_failed) == (0.5, False)


def test_glue_job_publishes_each_datasets_figures_as_metrics_and_writes_a_run_summary(spark, tmp_path, monkeypatch, aws):
    raw = spark.createDataFrame(
        [
            ("o-1", "10.00", "1", "true", "2024-05-01 10:00:00"),
            ("o-2", "0.00", "2", "true", "2024-05-01 10:01:00"),
            ("o-3", "5.00", "1", "true", "2024-05-02 10:02:00"),
            ("o-3", "5.00", "1", "true", "2024-05-02 10:02:00"),
        ],
        TEXT_SCHEMA,
    )
    spec = {**SPEC_DICT, "quality": {"rules": [{"name": "amount_positive", "column": "amount", "min": 0.01}], "maxQuarantineShare": 0.2}}
    run = run_job(spark, tmp_path, monkeypatch, aws, raw, datasets=[spec])
    dims = (("Dataset", "orders"), ("Silo", "sales"))
    assert run.metrics[("InputRows", dims)] == [4.0]
    assert run.metrics[("CleanRows", dims)] == [2.0]
    assert run.metrics[("QuarantinedRows", dims)] == [1.0]
    assert run.metrics[("QuarantineShare", dims)] == [0.25]
    assert run.metrics[("DuplicatesDropped", dims)] == [1.0]
    assert run.metrics[("PartitionsWritten", dims)] == [2.0]
    assert run.metrics[("QuarantinedRows", tuple(sorted((*dims, ("Rule", "amount_positive")))))] == [1.0]
    (summary,) = run.summaries.values()
    assert list(run.summaries) == ["glue/runs/jr_0123.json"]
    assert summary["job"] == "acme-dl-sales-etl" and summary["runId"] == "jr_0123"
    (orders,) = summary["datasets"]
    assert orders["quarantinedByRule"] == {"amount_positive": 1}
    assert (orders["qualityFailed"], orders["partitionsWritten"]) == (True, ["2024-05-01", "2024-05-02"])
    assert any(kind == "warn" and "above maxQuarantineShare 20.0%" in message for kind, *rest in run.calls for message in rest)
    assert run.calls[-1] == ("commit",)



# --- schema evolution (item 7) ------------------------------------------------------------------

V2_DICT = {
    **SPEC_DICT,
    # quantity widened from int, channel appended: the two safe changes.
    "columns": [*({"name": n, "type": "bigint" if n == "quantity" else t} for n, t in SPEC.columns), {"name": "channel", "type": "string"}],
}


def test_a_column_added_and_a_type_widened_roll_through_stored_partitions_and_the_processed_table(spark, tmp_path, monkeypatch, aws):
    v1 = spark.createDataFrame(
        [("a", "1.00", "2", "true", "2024-05-01 10:00:00"), ("b", "1.00", "3", "true", "2024-05-02 10:00:00")], TEXT_SCHEMA
    )
    run_job(spark, tmp_path, monkeypatch, aws, v1, run_id="jr_1")
    # The processed crawler catalogs what v1 wrote.
    aws.glue.create_table(
        DatabaseName="acme_dl_sales_processed",
        TableInput={
            "Name": "orders",
            "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t in SPEC.columns], "Location": "s3://processed/orders/"},
            "PartitionKeys": [{"Name": "event_date", "Type": "string"}],
            "Parameters": {"classification": "parquet"},
        },
    )

    v2 = spark.createDataFrame(
        [("c", "2.00", "3000000000", "false", "2024-05-02 11:00:00", "web")], f"{TEXT_SCHEMA}, channel string"
    )
    run = run_job(spark, tmp_path, monkeypatch, aws, v2, datasets=[V2_DICT], run_id="jr_2")

    # Every stored file now holds the v2 columns (what Redshift COPY needs), old rows with channel null.
    stored = spark.read.option("mergeSchema", "true").parquet(str(tmp_path / "processed" / "orders"))
    assert dict(stored.dtypes)["quantity"] == "bigint" and "channel" in stored.columns
    rows = {r.order_id: (r.quantity, r.channel) for r in stored.collect()}
    assert rows == {"a": (2, None), "b": (3, None), "c": (3000000000, "web")}
    assert run.summaries["glue/runs/jr_2.json"]["datasets"][0]["partitionsMigrated"] == ["2024-05-01", "2024-05-02"]
    table = aws.glue.get_table(DatabaseName="acme_dl_sales_processed", Name="orders")["Table"]
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == [(c["name"], c["type"]) for c in V2_DICT["columns"]]
    assert table["PartitionKeys"] == [{"Name": "event_date", "Type": "string"}]
    record = json.loads(aws.s3.get_object(Bucket="raw", Key="glue/schemas/orders.json")["Body"].read())
    assert record["columns"] == [[c["name"], c["type"]] for c in V2_DICT["columns"]]


def test_old_partitions_read_a_new_column_as_null_when_merged(spark, tmp_path):
    processed = str(tmp_path / "processed")
    run_dataset(spark, spark.createDataFrame([("a", "1.00", "1", "true", "2024-05-01 10:00:00")], TEXT_SCHEMA), SPEC, processed, str(tmp_path / "q"))
    v2 = DatasetSpec.from_dict(V2_DICT)
    batch = spark.createDataFrame([("b", "1.00", "1", "true", "2024-05-01 11:00:00", "store")], f"{TEXT_SCHEMA}, channel string")
    summary = run_dataset(spark, batch, v2, processed, str(tmp_path / "q"))
    assert summary.partitions_written == ("2024-05-01",)
    rows = {r.order_id: r.channel for r in spark.read.parquet(processed).collect()}
    assert rows == {"a": None, "b": "store"}


def test_quarantine_written_before_the_ingest_date_layout_does_not_get_in_the_way(spark, tmp_path):
    quarantine = tmp_path / "quarantine"
    # What earlier versions of the job left: partitions by the day of rejection.
    spark.createDataFrame([("old", "x", "column amount: cannot cast 'x' to decimal(12,2)")], "order_id string, amount string, _reason string").write.parquet(
        str(quarantine / "quarantine_date=2024-04-01")
    )
    batch = spark.createDataFrame([("bad", "lots", "1", "false", "2024-05-01 10:00:00", "2024-05-01")], RAW_SCHEMA)
    for _ in range(2):
        run_dataset(spark, batch, SPEC, str(tmp_path / "processed"), str(quarantine))
    stored = spark.read.parquet(str(quarantine / "ingest_date=2024-05-01"))
    assert [r.order_id for r in stored.collect()] == ["bad"]
    assert (quarantine / "quarantine_date=2024-04-01").exists()
