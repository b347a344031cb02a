"""The ETL state machine: structure, lint, scope of its ARNs, and its failure path executed in moto."""

from __future__ import annotations

import json
import re
import time

import boto3
import pytest
from moto import mock_aws
from statelint.linter import Linter

from components.silo.orchestration import FAILED, NOTIFY, UNREPORTED, DatasetLoad, PipelineTargets, pipeline_definition
from offline.sdk_contract import reachable, successors
from offline.harness import SILO_ACCOUNT_ID, Recording
from offline.stacks import run_silo, silo_config

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def silo(evaluations) -> Recording:
    return evaluations.silo()


@pytest.fixture(scope="module")
def definition(silo) -> dict:
    machine = silo.one("aws:sfn/stateMachine:StateMachine")
    return json.loads(machine.inputs["definition"])


def test_definition_passes_statelint(definition):
    assert Linter.validate(definition) == []


def test_statelint_would_catch_a_dangling_next(definition):
    broken = json.loads(json.dumps(definition))
    broken["States"]["RunEtlJob"]["Next"] = "NoSuchState"
    assert Linter.validate(broken) != []


def test_no_dangling_transitions_and_every_state_is_reachable(definition):
    states = definition["States"]
    for name, state in states.items():
        assert successors(state) <= set(states), f"{name} -> {successors(state) - set(states)}"
    assert reachable(definition) == set(states)


def test_happy_path_order_is_crawl_raw_job_loads_crawl_processed(definition):
    states = definition["States"]
    assert definition["StartAt"] == "ReadLastRun"
    assert states["RouteOrders"]["Choices"][0]["Next"] == "StartRawCrawler"
    assert states["CheckRawCrawler"]["Choices"][1]["Next"] == "RunEtlJob"
    assert states["RunEtlJob"]["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    assert states["RunEtlJob"]["Parameters"] == {"JobName": "acme-dl-sales-etl"}
    assert states["RunEtlJob"]["Next"] == "LoadOrders"
    assert states["CheckLoadOrders"]["Choices"][0] == {
        "Variable": "$.loadStatus.orders.status", "StringEquals": "FINISHED", "Next": "StartProcessedCrawler"
    }
    assert states["CheckProcessedCrawler"]["Choices"][1]["Next"] == "RecordRun"
    assert states["RecordRun"]["Parameters"] == {
        "Name": "/acme-dl/sales/etl/last-successful-run", "Value.$": "$$.Execution.StartTime", "Overwrite": True
    }
    assert states["RecordRun"]["Next"] == "PipelineSucceeded"


def test_a_run_without_new_raw_objects_ends_before_any_billed_step(definition):
    states = definition["States"]
    check = states["HasNewOrders"]
    assert check["Resource"] == "arn:aws:states:::aws-sdk:s3:listObjectsV2"
    assert check["Parameters"]["Bucket"] == f"acme-dl-sales-raw-{SILO_ACCOUNT_ID}"
    assert check["Parameters"]["Prefix"] == "orders/"
    assert states["RouteOrders"]["Default"] == "NoNewData"
    assert states["NoNewData"]["Type"] == "Succeed"


def test_the_new_data_gate_can_be_switched_off():
    config = silo_config(**{"datalake:etl": {"skipWhenNoNewData": False}})
    silo = run_silo(config)
    definition = json.loads(silo.one("aws:sfn/stateMachine:StateMachine").inputs["definition"])
    assert definition["StartAt"] == "StartRawCrawler"
    assert not {"ReadLastRun", "RecordRun", "NoNewData"} & set(definition["States"])
    assert silo.of_type("aws:ssm/parameter:Parameter") == []


def test_the_marker_parameter_starts_at_the_epoch_and_is_left_to_the_pipeline(silo):
    marker = silo.one("aws:ssm/parameter:Parameter")
    assert marker.inputs["name"] == "/acme-dl/sales/etl/last-successful-run"
    assert "1970-01-01T00:00:00Z" in json.dumps(marker.inputs["value"])


def test_crawler_polls_wait_between_checks_and_are_bounded(definition):
    states = definition["States"]
    assert states["StartRawCrawler"]["Resource"] == "arn:aws:states:::aws-sdk:glue:startCrawler"
    assert states["WaitRawCrawler"] == {"Type": "Wait", "Seconds": 30, "Next": "GetRawCrawler"}
    bound = states["CheckRawCrawler"]["Choices"][2]
    assert bound == {"Variable": "$.rawCrawlerPolls.value", "NumericGreaterThanEquals": 60, "Next": "RawCrawlerTimedOut"}
    assert states["CountRawCrawler"]["Parameters"] == {"value.$": "States.MathAdd($.rawCrawlerPolls.value, 1)"}
    assert states["RawCrawlerTimedOut"]["Next"] == NOTIFY
    # A crawler that is already running (e.g. started by hand) is waited for, not treated as a failure.
    assert states["StartRawCrawler"]["Catch"][0] == {
        "ErrorEquals": ["Glue.CrawlerRunningException"], "ResultPath": None, "Next": "InitRawCrawler"
    }


def test_poll_settings_come_from_config():
    config = silo_config(**{"datalake:etl": {"crawlerPollSeconds": 10, "crawlerMaxPolls": 5}})
    states = json.loads(run_silo(config).one("aws:sfn/stateMachine:StateMachine").inputs["definition"])["States"]
    assert states["WaitProcessedCrawler"]["Seconds"] == 10
    assert states["CheckProcessedCrawler"]["Choices"][2]["NumericGreaterThanEquals"] == 5


def test_loads_use_the_data_api_with_a_copy_from_parquet_and_poll_until_done(silo, definition):
    states = definition["States"]
    load = states["LoadOrders"]
    assert load["Resource"] == "arn:aws:states:::aws-sdk:redshiftdata:batchExecuteStatement"
    workgroup = silo.one("aws:redshiftserverless/workgroup:Workgroup")
    assert load["Parameters"]["WorkgroupName"] == workgroup.inputs["workgroupName"]
    assert load["Parameters"]["Database"] == "sales"
    create, procedure, sync, delete, copy = load["Parameters"]["Sqls"]
    assert create.startswith("CREATE TABLE IF NOT EXISTS public.orders (")
    assert procedure.startswith("CREATE OR REPLACE PROCEDURE public.datalake_sync_columns(")
    assert sync.startswith("CALL public.datalake_sync_columns('public', 'orders', 'order_id character varying(65535),")
    assert delete == "DELETE FROM public.orders"
    copy_role = silo.one("aws:iam/role:Role", "silo-sales-warehouse-copy-role").outputs["arn"]
    assert copy == (
        f"COPY public.orders FROM 's3://acme-dl-sales-processed-{SILO_ACCOUNT_ID}/orders/' "
        f"IAM_ROLE '{copy_role}' FORMAT AS PARQUET"
    )
    assert states["DescribeLoadOrders"]["Resource"] == "arn:aws:states:::aws-sdk:redshiftdata:describeStatement"
    assert states["DescribeLoadOrders"]["Parameters"] == {"Id.$": "$.loads.orders.id"}
    failed = states["CheckLoadOrders"]["Choices"][1]
    assert {c["StringEquals"] for c in failed["Or"]} == {"FAILED", "ABORTED"}
    assert states[failed["Next"]]["Next"] == NOTIFY


def test_every_task_retries_with_backoff_and_catches_into_the_notification(definition):
    tasks = {n: s for n, s in definition["States"].items() if s["Type"] == "Task"}
    assert len(tasks) >= 7
    for name, task in tasks.items():
        (retry,) = task["Retry"]
        assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 3, name
        assert "States.ALL" not in retry["ErrorEquals"], f"{name} retries every error"
        last = task["Catch"][-1]
        assert last["ErrorEquals"] == ["States.ALL"], name
        expected = UNREPORTED if name == NOTIFY else NOTIFY
        assert last["Next"] == expected, name


def test_notification_publishes_the_error_to_the_silo_topic_then_fails(silo, definition):
    notify = definition["States"][NOTIFY]
    topic = silo.one("aws:sns/topic:Topic")
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"] == topic.outputs["arn"]
    assert "$.error" in notify["Parameters"]["Message.$"]
    assert notify["Next"] == FAILED
    assert definition["States"][FAILED]["Type"] == "Fail"


def test_every_arn_in_the_definition_belongs_to_this_silo(definition):
    text = json.dumps(definition)
    arns = re.findall(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:\d*:[^\"' ]+", text)
    assert arns, "the definition names no ARN at all"
    for arn in arns:
        _, _, service, region, account, _ = arn.split(":", 5)
        if service == "states" and not account:
            continue  # service integrations: arn:aws:states:::glue:startJobRun.sync
        assert (region, account) in (("eu-west-1", SILO_ACCOUNT_ID), ("", SILO_ACCOUNT_ID)), arn
    names = [definition["States"][s]["Parameters"]["Name"] for s in ("StartRawCrawler", "StartProcessedCrawler")]
    assert all(n.startswith("acme-dl-sales-") for n in names)


def test_role_may_call_only_the_pipelines_own_resources(silo):
    policy = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-pipeline-policy")
    crawlers = policy.statement("RunSiloCrawlers")
    assert crawlers["Resource"] == [
        f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}:crawler/acme-dl-sales-raw",
        f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}:crawler/acme-dl-sales-processed",
    ]
    assert policy.statement("RunEtlJobSync")["Resource"] == [f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}:job/acme-dl-sales-etl"]
    workgroup = silo.one("aws:redshiftserverless/workgroup:Workgroup")
    assert policy.statement("LoadWarehouseThroughDataApi")["Resource"] == [workgroup.outputs["arn"]]
    assert policy.statement("ReadWriteLastRunMarker")["Resource"] == [
        f"arn:aws:ssm:eu-west-1:{SILO_ACCOUNT_ID}:parameter/acme-dl/sales/etl/last-successful-run"
    ]
    listing = policy.statement("ListNewRawObjects")
    assert listing["Resource"] == [f"arn:aws:s3:::acme-dl-sales-raw-{SILO_ACCOUNT_ID}"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["orders/*"]}}
    describe = policy.statement("DescribeOwnStatements")
    assert describe["Condition"] == {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}
    assert policy.statement("NotifyFailures")["Resource"] == [silo.one("aws:sns/topic:Topic").outputs["arn"]]


def test_schedule_starts_the_state_machine_daily_by_default(silo):
    machine = silo.one("aws:sfn/stateMachine:StateMachine")
    rule = silo.one("aws:cloudwatch/eventRule:EventRule", "silo-sales-pipeline-schedule")
    assert rule.inputs["scheduleExpression"] == "cron(0 3 * * ? *)"
    target = silo.one("aws:cloudwatch/eventTarget:EventTarget", "silo-sales-pipeline-schedule-target")
    assert (target.inputs["rule"], target.inputs["arn"]) == (rule.outputs["name"], machine.outputs["arn"])
    start = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-pipeline-schedule-policy").statement("StartThisPipeline")
    assert (start["Action"], start["Resource"]) == (["states:StartExecution"], [machine.outputs["arn"]])


def test_timeouts_aborts_and_unreported_failures_reach_the_topic_through_eventbridge(silo):
    machine = silo.one("aws:sfn/stateMachine:StateMachine")
    rule = silo.one("aws:cloudwatch/eventRule:EventRule", "silo-sales-pipeline-failures")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"] == {
        "stateMachineArn": [machine.outputs["arn"]],
        "$or": [
            {"status": ["TIMED_OUT", "ABORTED"]},
            {"status": ["FAILED"], "error": [{"anything-but": [FAILED]}]},
        ],
    }
    target = silo.one("aws:cloudwatch/eventTarget:EventTarget", "silo-sales-pipeline-failures-target")
    assert target.inputs["arn"] == silo.one("aws:sns/topic:Topic").outputs["arn"]
    key = silo.one("aws:kms/key:Key")
    grant = key.statement("AllowServicesPublishEncryptedMessages")
    assert grant["Principal"] == {"Service": ["events.amazonaws.com", "cloudwatch.amazonaws.com"]}  # + quality alarms


def test_silo_without_datasets_builds_no_pipeline_ingestion_or_job():
    config = silo_config()
    config.pop("datalake:datasets")
    silo = run_silo(config)
    for type_ in ("aws:sfn/stateMachine:StateMachine", "aws:glue/job:Job", "datalake:ingestion:Ingestion"):
        assert silo.of_type(type_) == []
    assert silo.of_type("aws:redshiftserverless/workgroup:Workgroup")


# --- executed in moto --------------------------------------------------------------------------


def _targets(topic_arn: str, **overrides) -> PipelineTargets:
    values = dict(
        raw_crawler="acme-dl-sales-raw",
        processed_crawler="acme-dl-sales-processed",
        job_name="acme-dl-sales-etl",
        workgroup_name="acme-dl-sales",
        database="sales",
        topic_arn=topic_arn,
        loads=[DatasetLoad("orders", ["SELECT 1"])],
        partition="aws",
        poll_seconds=0,
        max_polls=2,
    )
    values.update(overrides)
    return PipelineTargets(**values)


def _execute(definition: dict, setup=None) -> tuple[dict, list[str], list[tuple]]:
    """Runs one execution to its end; returns (execution, visited state names, SNS messages)."""
    from moto.sns.models import sns_backends

    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="pipeline", definition=json.dumps(definition), roleArn=f"arn:aws:iam::{SILO_ACCOUNT_ID}:role/pipeline"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    deadline = time.time() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.time() < deadline, "execution did not finish"
        time.sleep(0.1)
    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    visited = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    topic = next(iter(sns_backends[SILO_ACCOUNT_ID][REGION].topics.values()))
    return described, visited, list(topic.sent_notifications)


@pytest.fixture
def moto_sfn(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "MOTO_ACCOUNT_ID": SILO_ACCOUNT_ID,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="acme-dl-sales-etl-alerts")["TopicArn"]
        yield topic


def test_a_failing_task_reaches_the_sns_notification_and_the_fail_state(moto_sfn):
    # No crawler exists in this account: StartCrawler fails with EntityNotFoundException.
    execution, visited, messages = _execute(pipeline_definition(_targets(moto_sfn)))
    assert execution["status"] == "FAILED"
    assert visited == ["StartRawCrawler", NOTIFY, FAILED]
    (message,) = messages
    body = message[1]
    assert "EntityNotFoundException" in body and execution["executionArn"] in body
    assert message[2] == "Data lake ETL pipeline failed"


def test_a_crawler_that_never_finishes_fails_after_the_bounded_number_of_checks(moto_sfn):
    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": "raw"})
    glue.create_crawler(
        Name="acme-dl-sales-raw",
        Role=f"arn:aws:iam::{SILO_ACCOUNT_ID}:role/crawler",
        DatabaseName="raw",
        Targets={"S3Targets": [{"Path": "s3://bucket/orders/"}]},
    )
    # moto leaves a started crawler RUNNING forever, as a stuck crawler would be.
    execution, visited, messages = _execute(pipeline_definition(_targets(moto_sfn, max_polls=2)))
    assert execution["status"] == "FAILED"
    assert visited.count("GetRawCrawler") == 3  # checks 0, 1, 2: the third reaches the bound
    assert visited[-3:] == ["RawCrawlerTimedOut", NOTIFY, FAILED]
    (message,) = messages
    assert "CrawlerTimeout" in message[1] and "still running after 2 checks" in message[1]


def _gated(topic_arn: str, bucket: str) -> dict:
    return pipeline_definition(_targets(topic_arn, raw_bucket=bucket, last_run_parameter="/acme-dl/sales/etl/last-successful-run"))


def _gate_fixtures(last_run: str, keys: list[str]) -> str:
    bucket = f"acme-dl-sales-raw-{SILO_ACCOUNT_ID}"
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/acme-dl/sales/etl/last-successful-run", Value=last_run, Type="String"
    )
    return bucket


def test_no_object_since_the_last_run_day_ends_as_a_success_without_crawling(moto_sfn):
    bucket = _gate_fixtures("2024-05-02T03:00:00.000Z", ["orders/ingest_date=2024-04-30/a.parquet"])
    execution, visited, messages = _execute(_gated(moto_sfn, bucket))
    assert execution["status"] == "SUCCEEDED"
    assert visited == ["ReadLastRun", "SplitLastRunDay", "HasNewOrders", "RouteOrders", "NoNewData"]
    assert messages == []


def test_an_object_from_the_last_run_day_on_starts_the_pipeline(moto_sfn):
    bucket = _gate_fixtures("2024-05-02T03:00:00.000Z", ["orders/ingest_date=2024-05-02/b.parquet"])
    execution, visited, _ = _execute(_gated(moto_sfn, bucket))
    # No crawler exists in moto here: the pipeline proceeds to it and fails there.
    assert visited[:5] == ["ReadLastRun", "SplitLastRunDay", "HasNewOrders", "RouteOrders", "StartRawCrawler"]
    assert execution["status"] == "FAILED"


# --- one failure, one alert ------------------------------------------------------------------


def status_event(state_machine_arn: str, execution: dict) -> dict:
    """The "Step Functions Execution Status Change" event AWS sends when `execution` (a
    DescribeExecution answer) ends; `detail.error`/`cause` carry the execution's error."""
    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": SILO_ACCOUNT_ID,
        "time": "2024-05-02T03:10:00Z",
        "region": REGION,
        "resources": [execution["executionArn"]],
        "detail": {
            "executionArn": execution["executionArn"],
            "stateMachineArn": state_machine_arn,
            "name": execution["executionArn"].rsplit(":", 1)[-1],
            "status": execution["status"],
            "startDate": 1714619400000,
            "stopDate": 1714619800000,
            "input": "{}",
            "output": None,
            "error": execution.get("error"),
            "cause": execution.get("cause"),
        },
    }


def alerts_from_the_failure_rule(silo: Recording, execution: dict) -> int:
    """1 when the silo's failure rule matches the execution's status event (it then publishes one
    alert), else 0. EventBridge's matching as moto implements it: `$or`, `anything-but`."""
    from moto.events.models import EventPattern

    machine = silo.one("aws:sfn/stateMachine:StateMachine")
    rule = silo.one("aws:cloudwatch/eventRule:EventRule", "silo-sales-pipeline-failures")
    return int(EventPattern.load(rule.inputs["eventPattern"]).matches_event(status_event(machine.outputs["arn"], execution)))


def test_a_caught_failure_is_alerted_once_by_the_state_machine_and_not_again_by_the_rule(silo, moto_sfn):
    execution, _, messages = _execute(pipeline_definition(_targets(moto_sfn)))
    assert (execution["status"], execution["error"]) == ("FAILED", FAILED)
    assert len(messages) + alerts_from_the_failure_rule(silo, execution) == 1
    assert len(messages) == 1


def test_a_failure_whose_alert_could_not_be_published_is_alerted_once_by_the_rule(silo, moto_sfn):
    missing_topic = moto_sfn.rsplit(":", 1)[0] + ":no-such-topic"
    execution, visited, messages = _execute(pipeline_definition(_targets(missing_topic)))
    assert visited == ["StartRawCrawler", NOTIFY, UNREPORTED]
    assert (execution["status"], execution["error"]) == ("FAILED", UNREPORTED)
    assert messages == []
    assert alerts_from_the_failure_rule(silo, execution) == 1


@pytest.mark.parametrize(
    "status, error",
    [("TIMED_OUT", None), ("ABORTED", None), ("FAILED", "States.Runtime"), ("FAILED", "States.DataLimitExceeded")],
)
def test_failures_no_catch_reports_are_alerted_by_the_rule(silo, status, error):
    # None of these reach NotifyFailure: the status event is their only alert.
    execution = {"executionArn": f"arn:aws:states:{REGION}:{SILO_ACCOUNT_ID}:execution:acme-dl-sales-etl:run", "status": status}
    if error:
        execution.update(error=error, cause="an error no Catch handles")
    assert alerts_from_the_failure_rule(silo, execution) == 1


def test_a_successful_run_raises_no_alert(silo):
    execution = {"executionArn": f"arn:aws:states:{REGION}:{SILO_ACCOUNT_ID}:execution:acme-dl-sales-etl:run", "status": "SUCCEEDED"}
    assert alerts_from_the_failure_rule(silo, execution) == 0
