"""A local Spark session for the Glue transform's tests and `bench/etl.py` (Glue itself builds its own)."""

from __future__ import annotations

import os


def local_spark(app_name: str, *, shuffle_partitions: int = 2, driver_memory: str = "1g"):
    """`local[2]` on the loopback address, UTC, no UI or progress bars, warnings silenced.

    Like the Glue job (`functions/glue/job.py`), it switches constraint propagation off: a guard
    against plans whose constraint sets grow with every aliased column (see `dataset_transform`).

    `spark.sql.shuffle.partitions` defaults to 200, which makes small inputs crawl; Glue's own
    default on two G.1X workers is of the same order as the values used here.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.constraintPropagation.enabled", "false")
        .config("spark.driver.memory", driver_memory)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session
