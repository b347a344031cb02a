"""Glue entry point of the silo ETL job: bookmarked raw reads in, `dataset_transform` does the work.

Job arguments (set by the Pulumi program, `components/silo/etl.py`):
  --datasets          JSON list of the datasets' schemas and quality rules (name, columns, required,
                      dedupeKey, eventTimeColumn, quality)
  --raw_database      Glue database holding one raw table per dataset (Firehose's Parquet)
  --processed_bucket  bucket that receives s3://<bucket>/<dataset>/event_date=YYYY-MM-DD/
  --quarantine_bucket bucket that receives rejected rows under quarantine/<dataset>/ingest_date=…/
                      and the run summaries under glue/runs/
  --processed_database Glue database of the processed tables (the crawler's), kept at the declared columns
  --silo              silo name: the `Silo` dimension of the metrics
  --metrics_namespace CloudWatch namespace of the per-dataset metrics (the role may write no other)
Job bookmarks must be enabled (`--job-bookmark-option job-bookmark-enable`): each run reads only the
raw files it has not seen, keyed by the `transformation_ctx` of each dataset.

Schema evolution: the job records the schema it last wrote each dataset with under
glue/schemas/<dataset>.json of the quarantine bucket. When the declared schema differs (a column was
added at the end, or a type widened), it first rewrites the stored processed partitions with the
declared schema (Redshift COPY maps Parquet columns by position), then brings the processed Glue
table's columns up to date (the crawler runs incrementally, which Glue allows only with a LOG
schema-change policy, so it never does), then processes the batch.

After every dataset is written, and before `job.commit()`, the job publishes each dataset's figures
as CloudWatch metrics and writes one JSON run summary. A failure there fails the run before the
bookmarks move: the re-run replays the batch, which the transform writes idempotently.

awsglue exists only inside Glue, so it is imported in `main()`: the transform module, and this
file, import anywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any, Optional

RUNS_PREFIX = "glue/runs"
SCHEMAS_PREFIX = "glue/schemas"
SESSION_SETTINGS = {
    # `event_date` is the UTC date of the event time, and text timestamps without an offset are read
    # as UTC, whatever zone the Glue cluster happens to run in.
    "spark.sql.session.timeZone": "UTC",
    # Second guard for wide datasets (the transform's plan shape is the first): constraint
    # propagation costs planning time exponential in the number of aliased columns.
    "spark.sql.constraintPropagation.enabled": "false",
}
_MAX_METRICS_PER_CALL = 1000  # PutMetricData's limit


def processed_path(bucket: str, dataset: str) -> str:
    return f"s3://{bucket}/{dataset}/"


def quarantine_path(bucket: str, dataset: str) -> str:
    return f"s3://{bucket}/quarantine/{dataset}/"


def configure_session(spark) -> None:
    """The runtime settings the transform relies on, whatever the Glue defaults are."""
    for key, value in SESSION_SETTINGS.items():
        spark.conf.set(key, value)


def metric_data(summary, silo: str) -> list[dict[str, Any]]:
    """A dataset's run as CloudWatch metrics, dimensions `Silo` and `Dataset` (and `Rule`)."""
    dimensions = [{"Name": "Silo", "Value": silo}, {"Name": "Dataset", "Value": summary.dataset}]
    counts = {
        "InputRows": summary.input_rows,
        "CleanRows": summary.clean_rows,
        "QuarantinedRows": summary.quarantined_rows,
        "DuplicatesDropped": summary.duplicates_dropped,
        "NewRows": summary.new_rows,
        "RowsWritten": summary.rows_written,
        "PartitionsWritten": len(summary.partitions_written),
    }
    data = [{"MetricName": name, "Dimensions": dimensions, "Value": float(value), "Unit": "Count"} for name, value in counts.items()]
    data.append({"MetricName": "QuarantineShare", "Dimensions": dimensions, "Value": summary.quarantine_share, "Unit": "None"})
    for rule, rows in sorted(summary.quarantined_by_rule.items()):
        data.append(
            {
                "MetricName": "QuarantinedRows",
                "Dimensions": [*dimensions, {"Name": "Rule", "Value": rule}],
                "Value": float(rows),
                "Unit": "Count",
            }
        )
    return data


def publish_metrics(cloudwatch, namespace: str, silo: str, summaries: Sequence) -> None:
    data = [item for summary in summaries for item in metric_data(summary, silo)]
    for start in range(0, len(data), _MAX_METRICS_PER_CALL):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + _MAX_METRICS_PER_CALL])


def run_summary(job_name: str, run_id: str, started: dt.datetime, summaries: Sequence) -> dict[str, Any]:
    return {
        "job": job_name,
        "runId": run_id,
        "startedAt": started.isoformat(),
        "finishedAt": dt.datetime.now(dt.timezone.utc).isoformat(),
        "datasets": [summary.as_dict() for summary in summaries],
    }


def write_run_summary(s3, bucket: str, summary: dict[str, Any]) -> str:
    """Writes the run summary to `glue/runs/<run id>.json` (the bucket's default encryption applies)."""
    key = f"{RUNS_PREFIX}/{summary['runId']}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(summary, indent=2).encode(), ContentType="application/json")
    return key


def schema_record_key(dataset: str) -> str:
    return f"{SCHEMAS_PREFIX}/{dataset}.json"


def read_schema_record(s3, bucket: str, dataset: str) -> Optional[list[list[str]]]:
    """The columns the processed data of `dataset` was last fully written with, None before the first record."""
    try:
        body = s3.get_object(Bucket=bucket, Key=schema_record_key(dataset))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)["columns"]


def write_schema_record(s3, bucket: str, spec) -> None:
    body = json.dumps({"dataset": spec.name, "columns": [list(c) for c in spec.columns]}).encode()
    s3.put_object(Bucket=bucket, Key=schema_record_key(spec.name), Body=body, ContentType="application/json")


def sync_processed_table(glue_client, database: str, spec) -> bool:
    """Sets the processed Glue table's columns to the declared ones when they differ; True if it did.

    No table yet: nothing to do (the processed crawler creates it from the files). The rest of the
    table (partition keys, location, parameters) is kept as the crawler made it.
    """
    try:
        table = glue_client.get_table(DatabaseName=database, Name=spec.name)["Table"]
    except glue_client.exceptions.EntityNotFoundException:
        return False
    descriptor = dict(table["StorageDescriptor"])
    declared = [{"Name": name, "Type": type_name} for name, type_name in spec.columns]
    if [(c["Name"], c["Type"]) for c in descriptor.get("Columns", [])] == [(c["Name"], c["Type"]) for c in declared]:
        return False
    descriptor["Columns"] = declared
    # TableInput takes only some of what GetTable returns: filter by botocore's model of it.
    allowed = glue_client.meta.service_model.shape_for("TableInput").members
    table_input = {key: value for key, value in {**table, "StorageDescriptor": descriptor}.items() if key in allowed}
    glue_client.update_table(DatabaseName=database, TableInput=table_input)
    return True


def evolve_schema(spark, s3, glue_client, args: dict, spec) -> tuple[str, ...]:
    """Brings the stored data of one dataset to its declared schema; returns the partitions rewritten."""
    from dataset_transform import rewrite_processed, stored_schema_matches

    recorded = read_schema_record(s3, args["quarantine_bucket"], spec.name)
    declared = [list(c) for c in spec.columns]
    path = processed_path(args["processed_bucket"], spec.name)
    rewritten: tuple[str, ...] = ()
    if recorded != declared:
        # No record (data written before records existed): ask the files themselves.
        stale = recorded is not None or stored_schema_matches(spark, spec, path) is False
        if stale:
            rewritten = rewrite_processed(spark, spec, path)
    sync_processed_table(glue_client, args["processed_database"], spec)
    return rewritten


def _option(argv: Sequence[str], name: str) -> Optional[str]:
    """An argument Glue adds itself (`--JOB_RUN_ID`), read without requiring it."""
    flag = f"--{name}"
    for index, value in enumerate(argv):
        if value == flag and index + 1 < len(argv):
            return argv[index + 1]
        if value.startswith(f"{flag}="):
            return value.split("=", 1)[1]
    return None


def main(argv: list[str], cloudwatch=None, s3=None, glue_client=None) -> None:
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    from dataset_transform import parse_specs, run_dataset

    args = getResolvedOptions(
        argv,
        [
            "JOB_NAME",
            "datasets",
            "raw_database",
            "processed_database",
            "processed_bucket",
            "quarantine_bucket",
            "silo",
            "metrics_namespace",
        ],
    )
    started = dt.datetime.now(dt.timezone.utc)
    run_id = _option(argv, "JOB_RUN_ID") or started.strftime("run-%Y%m%dT%H%M%SZ")
    glue = GlueContext(SparkContext.getOrCreate())
    spark = glue.spark_session
    configure_session(spark)
    # Spark's _SUCCESS markers would be read as (empty, invalid) Parquet files by Redshift COPY.
    spark.sparkContext._jsc.hadoopConfiguration().set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    job = Job(glue)
    job.init(args["JOB_NAME"], args)
    logger = glue.get_logger()
    if cloudwatch is None or s3 is None or glue_client is None:
        import boto3

        cloudwatch = cloudwatch or boto3.client("cloudwatch")
        s3 = s3 or boto3.client("s3")
        glue_client = glue_client or boto3.client("glue")
    summaries = []
    for spec in parse_specs(args["datasets"]):
        rewritten = evolve_schema(spark, s3, glue_client, args, spec)
        if rewritten:
            logger.info(f"dataset {spec.name}: {len(rewritten)} stored partitions rewritten with the declared schema")
        frame = glue.create_dynamic_frame.from_catalog(
            database=args["raw_database"], table_name=spec.name, transformation_ctx=f"raw_{spec.name}"
        )
        summary = run_dataset(
            spark,
            frame.toDF(),
            spec,
            processed_path(args["processed_bucket"], spec.name),
            quarantine_path(args["quarantine_bucket"], spec.name),
        )
        logger.info(f"dataset {summary.dataset}: {json.dumps(summary.as_dict())}")
        if summary.quality_failed:
            logger.warn(
                f"dataset {summary.dataset}: {summary.quarantine_share:.1%} of the rows quarantined, "
                f"above maxQuarantineShare {summary.max_quarantine_share:.1%}"
            )
        write_schema_record(s3, args["quarantine_bucket"], spec)
        summaries.append(dataclasses.replace(summary, partitions_migrated=rewritten))
    publish_metrics(cloudwatch, args["metrics_namespace"], args["silo"], summaries)
    write_run_summary(s3, args["quarantine_bucket"], run_summary(args["JOB_NAME"], run_id, started, summaries))
    job.commit()


if __name__ == "__main__":
    main(sys.argv)
