"""ETL infrastructure: databases, crawlers, security configuration and the Glue job's wiring."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from components.stack_config import parse_stack_config
from components.silo.etl import GLUE_DIR
from offline.harness import SILO_ACCOUNT_ID, Recording
from offline.stacks import run_silo, silo_config

RAW_ARN = f"arn:aws:s3:::acme-dl-sales-raw-{SILO_ACCOUNT_ID}"
PROCESSED_ARN = f"arn:aws:s3:::acme-dl-sales-processed-{SILO_ACCOUNT_ID}"
GLUE = f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}"


@pytest.fixture(scope="module")
def silo(evaluations) -> Recording:
    return evaluations.silo()


def scripts_of(silo: Recording) -> list:
    return [o for o in silo.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if any(a.type == "datalake:etl:Etl" for a in silo.ancestors(o))]


def all_resources(policy) -> set[str]:
    return {r for s in policy.policy()["Statement"] for r in s["Resource"]}


def test_raw_and_processed_databases_are_silo_prefixed(silo):
    names = sorted(d.inputs["name"] for d in silo.of_type("aws:glue/catalogDatabase:CatalogDatabase"))
    assert names == ["acme_dl_sales_processed", "acme_dl_sales_raw"]


def test_security_configuration_encrypts_everything_with_the_silo_key(silo):
    key = silo.one("aws:kms/key:Key").outputs["arn"]
    config = silo.one("aws:glue/securityConfiguration:SecurityConfiguration").inputs["encryptionConfiguration"]
    assert config["cloudwatchEncryption"] == {"cloudwatchEncryptionMode": "SSE-KMS", "kmsKeyArn": key}
    assert config["jobBookmarksEncryption"] == {"jobBookmarksEncryptionMode": "CSE-KMS", "kmsKeyArn": key}
    assert config["s3Encryption"] == {"s3EncryptionMode": "SSE-KMS", "kmsKeyArn": key}
    security = silo.one("aws:glue/securityConfiguration:SecurityConfiguration").inputs["name"]
    for crawler in silo.of_type("aws:glue/crawler:Crawler"):
        assert crawler.inputs["securityConfiguration"] == security
    assert silo.one("aws:glue/job:Job").inputs["securityConfiguration"] == security


def test_logs_service_may_use_the_silo_key_for_this_accounts_log_groups_only(silo):
    grant = silo.one("aws:kms/key:Key").statement("AllowCloudWatchLogsEncryption")
    assert grant["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert grant["Condition"] == {
        "StringLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{SILO_ACCOUNT_ID}:log-group:*"}
    }


def test_raw_crawler_targets_the_declared_tables_and_never_rewrites_their_schema(silo):
    crawler = silo.one("aws:glue/crawler:Crawler", "silo-sales-etl-raw-crawler")
    assert crawler.inputs["catalogTargets"] == [{"databaseName": "acme_dl_sales_raw", "tables": ["orders"]}]
    assert crawler.inputs["schemaChangePolicy"] == {"deleteBehavior": "LOG", "updateBehavior": "LOG"}
    assert "s3Targets" not in crawler.inputs


def test_processed_crawler_targets_each_dataset_prefix(silo):
    crawler = silo.one("aws:glue/crawler:Crawler", "silo-sales-etl-processed-crawler")
    assert crawler.inputs["databaseName"] == "acme_dl_sales_processed"
    assert crawler.inputs["s3Targets"] == [{"path": f"s3://acme-dl-sales-processed-{SILO_ACCOUNT_ID}/orders/"}]


def test_crawler_roles_read_only_their_own_bucket_and_database(silo):
    raw = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-etl-raw-crawler-policy")
    assert all_resources(raw) == {
        RAW_ARN,
        f"{RAW_ARN}/orders/*",
        silo.one("aws:kms/key:Key").outputs["arn"],
        f"{GLUE}:catalog",
        f"{GLUE}:database/acme_dl_sales_raw",
        f"{GLUE}:table/acme_dl_sales_raw/*",
        f"arn:aws:logs:eu-west-1:{SILO_ACCOUNT_ID}:log-group:/aws-glue/*",
        f"arn:aws:logs:eu-west-1:{SILO_ACCOUNT_ID}:log-group:/aws-glue/*:log-stream:*",
    }
    assert "glue:CreateTable" not in raw.statement("MaintainRawCatalog")["Action"]
    processed = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-etl-processed-crawler-policy")
    assert "glue:CreateTable" in processed.statement("MaintainProcessedCatalog")["Action"]
    assert not any(r.startswith(RAW_ARN) for r in all_resources(processed))


def test_job_is_glue_5_pyspark_with_bookmarks_and_the_uploaded_scripts(silo):
    job = silo.one("aws:glue/job:Job")
    assert job.inputs["glueVersion"] == "5.0"
    assert job.inputs["command"]["name"] == "glueetl"
    scripts = {o.inputs["key"]: o for o in scripts_of(silo)}
    assert set(scripts) == {"glue/scripts/job.py", "glue/scripts/dataset_transform.py"}
    bucket = f"acme-dl-sales-raw-{SILO_ACCOUNT_ID}"
    assert job.inputs["command"]["scriptLocation"] == f"s3://{bucket}/glue/scripts/job.py"
    arguments = job.inputs["defaultArguments"]
    assert arguments["--job-bookmark-option"] == "job-bookmark-enable"
    assert arguments["--extra-py-files"] == f"s3://{bucket}/glue/scripts/dataset_transform.py"
    assert arguments["--processed_bucket"] == f"acme-dl-sales-processed-{SILO_ACCOUNT_ID}"
    assert arguments["--quarantine_bucket"] == bucket
    assert arguments["--raw_database"] == "acme_dl_sales_raw"
    assert job.inputs["maxRetries"] == 0


def test_scripts_are_encrypted_and_change_when_the_code_changes(silo):
    key = silo.one("aws:kms/key:Key").outputs["arn"]
    for script in scripts_of(silo):
        name = Path(script.inputs["key"]).name
        assert (script.inputs["serverSideEncryption"], script.inputs["kmsKeyId"]) == ("aws:kms", key)
        # Independently of components.silo.etl.file_hash: the SHA-256 of the file's bytes.
        assert script.inputs["sourceHash"] == hashlib.sha256((GLUE_DIR / name).read_bytes()).hexdigest()


def test_editing_a_script_changes_its_source_hash(tmp_path, monkeypatch, silo):
    """Pulumi re-uploads an object when `sourceHash` changes: an edited script must change it."""
    import shutil

    import components.silo.etl

    before = {Path(s.inputs["key"]).name: s.inputs["sourceHash"] for s in scripts_of(silo)}
    edited = tmp_path / "glue"
    shutil.copytree(GLUE_DIR, edited)
    with (edited / "job.py").open("a") as handle:
        handle.write("\n# edited\n")
    monkeypatch.setattr(components.silo.etl, "GLUE_DIR", edited)
    after = {Path(s.inputs["key"]).name: s.inputs["sourceHash"] for s in scripts_of(run_silo())}
    assert after["job.py"] != before["job.py"]
    assert after["dataset_transform.py"] == before["dataset_transform.py"]


def test_job_datasets_argument_is_what_the_transform_parses(silo):
    sys.path.insert(0, str(GLUE_DIR))
    from dataset_transform import parse_specs

    (spec,) = parse_specs(silo.one("aws:glue/job:Job").inputs["defaultArguments"]["--datasets"])
    declared = parse_stack_config("s", silo_config()).datasets[0]
    assert spec.columns == tuple((c.name, c.type) for c in declared.columns)
    assert spec.required == tuple(declared.required_columns)
    assert spec.dedupe_key == ("order_id",) and spec.event_time_column == "ordered_at"


def test_job_role_reads_raw_datasets_writes_processed_and_quarantine_and_nothing_else(silo):
    policy = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-etl-job-policy")
    assert policy.statement("ReadRawDatasetsAndScripts")["Resource"] == [f"{RAW_ARN}/orders/*", f"{RAW_ARN}/glue/scripts/*"]
    assert policy.statement("WriteQuarantineAndTemp")["Resource"] == [f"{RAW_ARN}/quarantine/*", f"{RAW_ARN}/glue/temp/*"]
    assert policy.statement("ReplaceProcessedPartitions")["Resource"] == [f"{PROCESSED_ARN}/orders/*"]
    assert not any("dropzone" in r or "athena-results" in r for r in all_resources(policy))
    assert set(policy.statement("ReadRawCatalog")["Action"]) <= {
        "glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition"
    }


def test_job_sizing_comes_from_config():
    config = silo_config(**{"datalake:etl": {"glueVersion": "4.0", "numberOfWorkers": 4, "jobTimeoutMinutes": 30}})
    job = run_silo(config).one("aws:glue/job:Job")
    assert (job.inputs["glueVersion"], job.inputs["numberOfWorkers"], job.inputs["timeout"]) == ("4.0", 4, 30)



# --- data-quality metrics and alarms (issue 13, item 8) -------------------------------------------


def test_job_tells_the_script_its_silo_and_metrics_namespace_and_may_put_metrics_only_there(silo):
    arguments = silo.one("aws:glue/job:Job").inputs["defaultArguments"]
    assert (arguments["--silo"], arguments["--metrics_namespace"]) == ("sales", "acme-dl/etl")
    policy = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-etl-job-policy")
    metrics = policy.statement("PutMetricsInTheEtlNamespace")
    assert metrics["Action"] == ["cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "acme-dl/etl"}}
    assert policy.statement("WriteRunSummaries")["Resource"] == [f"{RAW_ARN}/glue/runs/*"]


def test_a_dataset_with_a_quarantine_threshold_gets_an_alarm_to_the_alert_topic(silo):
    (alarm,) = silo.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    topic = silo.one("aws:sns/topic:Topic", "silo-sales-etl-alerts-topic")
    inputs = alarm.inputs
    assert (inputs["namespace"], inputs["metricName"], inputs["dimensions"]) == (
        "acme-dl/etl", "QuarantineShare", {"Silo": "sales", "Dataset": "orders"}
    )
    assert (inputs["comparisonOperator"], inputs["threshold"], inputs["statistic"]) == ("GreaterThanThreshold", 0.05, "Maximum")
    assert inputs["alarmActions"] == [topic.outputs["arn"]]
    assert inputs["treatMissingData"] == "notBreaching"
    # CloudWatch may publish to the encrypted topic: topic policy and key policy both say so.
    publish = silo.one("aws:sns/topicPolicy:TopicPolicy").statement("AllowServicesOfThisAccountPublish")
    assert "cloudwatch.amazonaws.com" in publish["Principal"]["Service"]
    key_grant = silo.one("aws:kms/key:Key").statement("AllowServicesPublishEncryptedMessages")
    assert "cloudwatch.amazonaws.com" in key_grant["Principal"]["Service"]


def test_no_threshold_no_alarm():
    config = silo_config()
    (orders,) = config["datalake:datasets"]
    config["datalake:datasets"] = [{**orders, "quality": {"rules": orders["quality"]["rules"]}}]
    assert run_silo(config).of_type("aws:cloudwatch/metricAlarm:MetricAlarm") == []
