"""Glue entry point of the silo ETL job: bookmarked raw reads in, `dataset_transform` does the work.

Job arguments (set by the Pulumi program, `components/etl.py`):
  --datasets          JSON list of the datasets' schemas (name, columns, required, dedupeKey, eventTimeColumn)
  --raw_database      Glue database holding one raw table per dataset (Firehose's Parquet)
  --processed_bucket  bucket that receives s3://<bucket>/<dataset>/event_date=YYYY-MM-DD/
  --quarantine_bucket bucket that receives rejected rows under quarantine/<dataset>/
Job bookmarks must be enabled (`--job-bookmark-option job-bookmark-enable`): each run reads only the
raw files it has not seen, keyed by the `transformation_ctx` of each dataset.

awsglue exists only inside Glue, so it is imported in `main()`: the transform module, and this
file, import anywhere.
"""

from __future__ import annotations

import sys


def processed_path(bucket: str, dataset: str) -> str:
    return f"s3://{bucket}/{dataset}/"


def quarantine_path(bucket: str, dataset: str) -> str:
    return f"s3://{bucket}/quarantine/{dataset}/"


SESSION_SETTINGS = {
    # `event_date` is the UTC date of the event time, and text timestamps without an offset are read
    # as UTC, whatever zone the Glue cluster happens to run in.
    "spark.sql.session.timeZone": "UTC",
    # Second guard for wide datasets (the transform's plan shape is the first): constraint
    # propagation costs planning time exponential in the number of aliased columns.
    "spark.sql.constraintPropagation.enabled": "false",
}


def configure_session(spark) -> None:
    """The runtime settings the transform relies on, whatever the Glue defaults are."""
    for key, value in SESSION_SETTINGS.items():
        spark.conf.set(key, value)


def main(argv: list[str]) -> None:
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    from dataset_transform import parse_specs, run_dataset

    args = getResolvedOptions(
        argv, ["JOB_NAME", "datasets", "raw_database", "processed_bucket", "quarantine_bucket"]
    )
    glue = GlueContext(SparkContext.getOrCreate())
    spark = glue.spark_session
    configure_session(spark)
    # Spark's _SUCCESS markers would be read as (empty, invalid) Parquet files by Redshift COPY.
    spark.sparkContext._jsc.hadoopConfiguration().set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    job = Job(glue)
    job.init(args["JOB_NAME"], args)
    logger = glue.get_logger()
    for spec in parse_specs(args["datasets"]):
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
        logger.info(f"dataset {summary.dataset}: {summary}")
    job.commit()


if __name__ == "__main__":
    main(sys.argv)
