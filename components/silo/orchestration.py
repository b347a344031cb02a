"""`Pipeline`: the Step Functions state machine that runs a silo's ETL, on an EventBridge schedule.

crawl raw (start, poll until READY, bounded) → Glue job (`.sync`) → per dataset a Redshift load
through the Data API (`BatchExecuteStatement`, poll `DescribeStatement`, bounded) → crawl processed.
Every task retries throttling with exponential backoff and catches everything else into one
`NotifyFailure` task (SNS) that ends in the `PipelineFailed` Fail state. Executions that time out or
are aborted never reach a Catch, and neither do `States.Runtime` errors or a notification that could
not be delivered: an EventBridge rule reports exactly those to the same topic. Each failure takes one
alert path: the rule ignores executions that failed with `PipelineFailed`, whose alert was sent.

The definition is a Python dict built by `pipeline_definition` (pure; tests lint it with statelint
and run its failure path in moto) and serialized once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from ..shared.iam import AccountContext, Statement, account_service_trust, statement
from ..shared.naming import bounded_name
from ..shared.roles import role_with_policy
from ..shared.context import SiloContext
from .config import EtlConfig
from .schema import RAW_PARTITION_KEY

NOTIFY = "NotifyFailure"
FAILED = "PipelineFailed"
"""The Fail state after a delivered alert; its error name tells the failure rule the alert went out."""
UNREPORTED = "PipelineFailedUnreported"
"""The Fail state when the alert itself could not be published: the failure rule reports these."""
SUCCEEDED = "PipelineSucceeded"
NO_NEW_DATA = "NoNewData"

# Throttling and transient service errors, as Step Functions names them (aws-sdk: `<Service>.<Exception>`
# for the error shapes of the service's model; offline/sdk_contract.py checks each name against it).
# Errors a model does not declare (S3's SlowDown and InternalError, the Data API's ThrottlingException)
# surface as the SDK's base exception of the service (`S3.S3Exception`), so that is what retries them;
# it also matches permanent errors such as AccessDenied, which the bounded backoff then hands to the Catch.
GLUE_TRANSIENT = ["Glue.ThrottlingException", "Glue.OperationTimeoutException", "Glue.InternalServiceException"]
GLUE_JOB_TRANSIENT = ["Glue.ConcurrentRunsExceededException", "Glue.ThrottlingException", "Glue.InternalServiceException"]
SSM_TRANSIENT = ["Ssm.ThrottlingException", "Ssm.InternalServerErrorException"]
S3_TRANSIENT = ["S3.S3Exception"]
REDSHIFT_DATA_TRANSIENT = [
    "RedshiftData.ActiveStatementsExceededException",
    "RedshiftData.DatabaseConnectionException",
    "RedshiftData.InternalServerException",
    "RedshiftData.RedshiftDataException",
]
SNS_TRANSIENT = ["SNS.ThrottledException", "SNS.InternalErrorException", "States.Timeout"]


@dataclass(frozen=True)
class DatasetLoad:
    """One dataset's warehouse load: a name for its states and the SQL of its transaction."""

    dataset: str
    sqls: Sequence[str]


@dataclass(frozen=True)
class PipelineTargets:
    """Everything the state machine calls, as plain strings (resolved Outputs)."""

    raw_crawler: str
    processed_crawler: str
    job_name: str
    workgroup_name: str
    database: str
    topic_arn: str
    loads: Sequence[DatasetLoad]
    partition: str
    """ARN partition of the silo (`aws`, `aws-cn`, `aws-us-gov`): service integrations are
    `arn:<partition>:states:::...` resources."""
    poll_seconds: int = 30
    max_polls: int = 60
    timeout_seconds: int = 6 * 3600
    raw_bucket: Optional[str] = None
    """With `last_run_parameter`: skip the run when no raw object arrived since the last success."""
    last_run_parameter: Optional[str] = None
    """SSM parameter holding the start time of the last successful run (ISO 8601)."""

    @property
    def gated(self) -> bool:
        return bool(self.raw_bucket and self.last_run_parameter)


def integration(partition: str, target: str) -> str:
    """The Resource of a Step Functions service integration: `arn:<partition>:states:::<target>`."""
    return f"arn:{partition}:states:::{target}"


def retry(errors: Sequence[str], interval: int = 2, attempts: int = 6) -> list[dict[str, Any]]:
    """Exponential backoff: 2, 4, 8, ... seconds."""
    return [{"ErrorEquals": list(errors), "IntervalSeconds": interval, "MaxAttempts": attempts, "BackoffRate": 2.0}]


def catch_all(extra: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Any error not retried (or retried out) goes to the notification, the error kept in `$.error`."""
    return [*extra, {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": NOTIFY}]


def _pascal(text: str) -> str:
    return "".join(part.capitalize() for part in text.replace("-", "_").split("_"))


def counter_reset(path: str, next_state: str) -> dict[str, Any]:
    """Pass: `<path> = {"value": 0}` (a Pass state's output is an object, so counters are objects)."""
    return {"Type": "Pass", "Result": {"value": 0}, "ResultPath": path, "Next": next_state}


def counter_increment(path: str, next_state: str) -> dict[str, Any]:
    """Pass: `<path>.value += 1` with the States.MathAdd intrinsic."""
    return {
        "Type": "Pass",
        "Parameters": {"value.$": f"States.MathAdd({path}.value, 1)"},
        "ResultPath": path,
        "Next": next_state,
    }


def _timeout_state(error: str, cause: str) -> dict[str, Any]:
    """A Pass state that records an error like a Catch would, then notifies."""
    return {"Type": "Pass", "Result": {"Error": error, "Cause": cause}, "ResultPath": "$.error", "Next": NOTIFY}


def crawler_states(
    label: str, crawler: str, poll_seconds: int, max_polls: int, next_state: str, *, partition: str
) -> dict[str, Any]:
    """Start a crawler (already running is fine), then poll until READY; fail if its crawl failed or
    it is still running after `max_polls` checks."""
    start, init, wait, get, check, count = (f"{p}{label}Crawler" for p in ("Start", "Init", "Wait", "Get", "Check", "Count"))
    crawl_failed, timed_out = f"{label}CrawlFailed", f"{label}CrawlerTimedOut"
    poll = f"$.{label.lower()}CrawlerPolls"
    result = f"$.{label.lower()}Crawler"
    return {
        start: {
            "Type": "Task",
            "Resource": integration(partition, "aws-sdk:glue:startCrawler"),
            "Parameters": {"Name": crawler},
            "ResultPath": None,
            "Retry": retry(GLUE_TRANSIENT),
            "Catch": catch_all([{"ErrorEquals": ["Glue.CrawlerRunningException"], "ResultPath": None, "Next": init}]),
            "Next": init,
        },
        init: counter_reset(poll, wait),
        wait: {"Type": "Wait", "Seconds": poll_seconds, "Next": get},
        get: {
            "Type": "Task",
            "Resource": integration(partition, "aws-sdk:glue:getCrawler"),
            "Parameters": {"Name": crawler},
            "ResultSelector": {"crawler.$": "$.Crawler"},
            "ResultPath": result,
            "Retry": retry(GLUE_TRANSIENT),
            "Catch": catch_all(),
            "Next": check,
        },
        check: {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": f"{result}.crawler.State", "StringEquals": "READY"},
                        {"Variable": f"{result}.crawler.LastCrawl.Status", "IsPresent": True},
                        {"Variable": f"{result}.crawler.LastCrawl.Status", "StringEquals": "FAILED"},
                    ],
                    "Next": crawl_failed,
                },
                {"Variable": f"{result}.crawler.State", "StringEquals": "READY", "Next": next_state},
                {"Variable": f"{poll}.value", "NumericGreaterThanEquals": max_polls, "Next": timed_out},
            ],
            "Default": count,
        },
        count: counter_increment(poll, wait),
        crawl_failed: _timeout_state("CrawlFailed", f"crawler {crawler} finished with status FAILED"),
        timed_out: _timeout_state("CrawlerTimeout", f"crawler {crawler} still running after {max_polls} checks"),
    }


def load_states(load: DatasetLoad, targets: PipelineTargets, next_state: str) -> dict[str, Any]:
    """Run the dataset's load transaction, then poll DescribeStatement until FINISHED (or fail)."""
    label = _pascal(load.dataset)
    run, init, wait, describe, check, count = (
        f"{p}{label}" for p in ("Load", "InitLoadPolls", "WaitLoad", "DescribeLoad", "CheckLoad", "CountLoadPolls")
    )
    failed, timed_out = f"LoadFailed{label}", f"LoadTimedOut{label}"
    poll = f"$.loadPolls.{load.dataset}"
    return {
        run: {
            "Type": "Task",
            "Resource": integration(targets.partition, "aws-sdk:redshiftdata:batchExecuteStatement"),
            "Parameters": {
                "WorkgroupName": targets.workgroup_name,
                "Database": targets.database,
                "StatementName": f"load-{load.dataset}",
                "Sqls": list(load.sqls),
            },
            "ResultSelector": {"id.$": "$.Id"},
            "ResultPath": f"$.loads.{load.dataset}",
            "Retry": retry(REDSHIFT_DATA_TRANSIENT),
            "Catch": catch_all(),
            "Next": init,
        },
        init: counter_reset(poll, wait),
        wait: {"Type": "Wait", "Seconds": targets.poll_seconds, "Next": describe},
        describe: {
            "Type": "Task",
            "Resource": integration(targets.partition, "aws-sdk:redshiftdata:describeStatement"),
            "Parameters": {"Id.$": f"$.loads.{load.dataset}.id"},
            "ResultSelector": {"status.$": "$.Status", "statement.$": "$"},
            "ResultPath": f"$.loadStatus.{load.dataset}",
            "Retry": retry(REDSHIFT_DATA_TRANSIENT),
            "Catch": catch_all(),
            "Next": check,
        },
        check: {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"$.loadStatus.{load.dataset}.status", "StringEquals": "FINISHED", "Next": next_state},
                {
                    "Or": [
                        {"Variable": f"$.loadStatus.{load.dataset}.status", "StringEquals": "FAILED"},
                        {"Variable": f"$.loadStatus.{load.dataset}.status", "StringEquals": "ABORTED"},
                    ],
                    "Next": failed,
                },
                {"Variable": f"{poll}.value", "NumericGreaterThanEquals": targets.max_polls, "Next": timed_out},
            ],
            "Default": count,
        },
        count: counter_increment(poll, wait),
        failed: {
            "Type": "Pass",
            "Parameters": {"Error": "RedshiftLoadFailed", "Cause.$": f"States.JsonToString($.loadStatus.{load.dataset}.statement)"},
            "ResultPath": "$.error",
            "Next": NOTIFY,
        },
        timed_out: _timeout_state("RedshiftLoadTimeout", f"load of {load.dataset} unfinished after {targets.max_polls} checks"),
    }


def new_data_gate(targets: PipelineTargets, first_step: str) -> dict[str, Any]:
    """States that end the run early, as a success, when no dataset received a raw object since the
    last successful run; a daily schedule then costs nothing on idle days (crawlers bill at least
    10 minutes per run, Redshift Serverless 60 seconds).

    Firehose keys start with `<dataset>/ingest_date=YYYY-MM-DD/` (UTC), so listing after the last
    run's day finds any object written since (and, at worst, that day's earlier ones once more: one
    extra run, never a missed one). The marker is written only when a run succeeds.
    """
    first_check = f"HasNew{_pascal(targets.loads[0].dataset)}"
    states: dict[str, Any] = {
        "ReadLastRun": {
            "Type": "Task",
            "Resource": integration(targets.partition, "aws-sdk:ssm:getParameter"),
            "Parameters": {"Name": targets.last_run_parameter},
            "ResultSelector": {"dateAndTime.$": "States.StringSplit($.Parameter.Value, 'T')"},
            "ResultPath": "$.lastRun",
            "Retry": retry(SSM_TRANSIENT),
            "Catch": catch_all(),
            "Next": "SplitLastRunDay",
        },
        "SplitLastRunDay": {
            "Type": "Pass",
            "Parameters": {"day.$": "States.ArrayGetItem($.lastRun.dateAndTime, 0)"},
            "ResultPath": "$.lastRun",
            "Next": first_check,
        },
    }
    for index, load in enumerate(targets.loads):
        label = _pascal(load.dataset)
        following = (
            f"HasNew{_pascal(targets.loads[index + 1].dataset)}" if index + 1 < len(targets.loads) else NO_NEW_DATA
        )
        states[f"HasNew{label}"] = {
            "Type": "Task",
            "Resource": integration(targets.partition, "aws-sdk:s3:listObjectsV2"),
            "Parameters": {
                "Bucket": targets.raw_bucket,
                "Prefix": f"{load.dataset}/",
                "StartAfter.$": f"States.Format('{load.dataset}/{RAW_PARTITION_KEY}={{}}/', $.lastRun.day)",
                "MaxKeys": 1,
            },
            "ResultSelector": {"keys.$": "$.KeyCount"},
            "ResultPath": f"$.newData.{load.dataset}",
            "Retry": retry(S3_TRANSIENT),
            "Catch": catch_all(),
            "Next": f"Route{label}",
        }
        states[f"Route{label}"] = {
            "Type": "Choice",
            "Choices": [{"Variable": f"$.newData.{load.dataset}.keys", "NumericGreaterThan": 0, "Next": first_step}],
            "Default": following,
        }
    states[NO_NEW_DATA] = {"Type": "Succeed", "Comment": "No raw object since the last successful run"}
    return states


def record_run_state(targets: PipelineTargets, next_state: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": integration(targets.partition, "aws-sdk:ssm:putParameter"),
        "Parameters": {"Name": targets.last_run_parameter, "Value.$": "$$.Execution.StartTime", "Overwrite": True},
        "ResultPath": None,
        "Retry": retry(SSM_TRANSIENT),
        "Catch": catch_all(),
        "Next": next_state,
    }


def pipeline_definition(targets: PipelineTargets) -> dict[str, Any]:
    """The Amazon States Language document of the pipeline."""
    if not targets.loads:
        raise ValueError("the pipeline needs at least one dataset to load")
    load_names = [f"Load{_pascal(load.dataset)}" for load in targets.loads]
    states: dict[str, Any] = {}
    partition = targets.partition
    states.update(
        crawler_states("Raw", targets.raw_crawler, targets.poll_seconds, targets.max_polls, "RunEtlJob", partition=partition)
    )
    states["RunEtlJob"] = {
        "Type": "Task",
        "Resource": integration(targets.partition, "glue:startJobRun.sync"),
        "Parameters": {"JobName": targets.job_name},
        "ResultSelector": {"id.$": "$.Id", "state.$": "$.JobRunState"},
        "ResultPath": "$.etlJob",
        "Retry": retry(GLUE_JOB_TRANSIENT, interval=30, attempts=4),
        "Catch": catch_all(),
        "Next": load_names[0],
    }
    for index, load in enumerate(targets.loads):
        following = load_names[index + 1] if index + 1 < len(load_names) else "StartProcessedCrawler"
        states.update(load_states(load, targets, following))
    after_processed = "RecordRun" if targets.gated else SUCCEEDED
    states.update(
        crawler_states(
            "Processed", targets.processed_crawler, targets.poll_seconds, targets.max_polls, after_processed,
            partition=partition,
        )
    )
    if targets.gated:
        states.update(new_data_gate(targets, "StartRawCrawler"))
        states["RecordRun"] = record_run_state(targets, SUCCEEDED)
    states[SUCCEEDED] = {"Type": "Succeed"}
    states[NOTIFY] = {
        "Type": "Task",
        "Resource": integration(targets.partition, "sns:publish"),
        "Parameters": {
            "TopicArn": targets.topic_arn,
            "Subject": "Data lake ETL pipeline failed",
            "Message.$": "States.Format('Execution {} failed: {}', $$.Execution.Id, States.JsonToString($.error))",
        },
        "ResultPath": None,
        "Retry": retry(SNS_TRANSIENT),
        # An undeliverable notification ends in a failure of its own name, which the failure rule reports.
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.notifyError", "Next": UNREPORTED}],
        "Next": FAILED,
    }
    states[FAILED] = {"Type": "Fail", "Error": FAILED, "Cause": "A step failed; the error was sent to the ETL alert topic"}
    states[UNREPORTED] = {
        "Type": "Fail",
        "Error": UNREPORTED,
        "Cause": "A step failed and publishing the error to the ETL alert topic failed too",
    }
    return {
        "Comment": "Silo ETL: (skip if no new raw data) crawl raw, Glue job, load Redshift, crawl processed",
        "StartAt": "ReadLastRun" if targets.gated else "StartRawCrawler",
        "TimeoutSeconds": targets.timeout_seconds,
        "States": states,
    }



def failure_alert_pattern(state_machine_arn: str) -> dict[str, Any]:
    """EventBridge pattern of the executions no Catch reported: timed out, aborted, or failed with any
    error but `PipelineFailed` (whose alert `NotifyFailure` already published).

    The status event's `detail.error` is the execution's error: the Fail state's `Error` for a caught
    failure, `States.Runtime` and the like for the rest.
    """
    return {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {
            "stateMachineArn": [state_machine_arn],
            "$or": [
                {"status": ["TIMED_OUT", "ABORTED"]},
                {"status": ["FAILED"], "error": [{"anything-but": [FAILED]}]},
            ],
        },
    }


def state_machine_statements(
    account: AccountContext,
    *,
    crawlers: Sequence[str],
    job_name: str,
    workgroup_arn: pulumi.Input[str],
    topic_arn: pulumi.Input[str],
    kms_key_arn: pulumi.Input[str],
    raw_bucket_arn: Optional[pulumi.Input[str]] = None,
    datasets: Sequence[str] = (),
    last_run_parameter_arn: Optional[pulumi.Input[str]] = None,
) -> list[Statement]:
    """What the state machine's role may call: exactly the APIs of its states, on this silo's resources."""
    gate: list[Statement] = []
    if raw_bucket_arn is not None and last_run_parameter_arn is not None:
        gate = [
            statement("ReadWriteLastRunMarker", ["ssm:GetParameter", "ssm:PutParameter"], last_run_parameter_arn),
            statement(
                "ListNewRawObjects",
                "s3:ListBucket",
                raw_bucket_arn,
                conditions={"StringLike": {"s3:prefix": [f"{dataset}/*" for dataset in datasets]}},
            ),
        ]
    return [
        *gate,
        statement(
            "RunSiloCrawlers",
            ["glue:StartCrawler", "glue:GetCrawler"],
            [account.arn("glue", f"crawler/{crawler}") for crawler in crawlers],
        ),
        statement(
            "RunEtlJobSync",
            ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
            account.arn("glue", f"job/{job_name}"),
        ),
        statement(
            "LoadWarehouseThroughDataApi",
            ["redshift-data:BatchExecuteStatement", "redshift-serverless:GetCredentials"],
            workgroup_arn,
        ),
        # DescribeStatement has no resource type in IAM; the condition confines it to statements
        # this very role ran (the Data API records the caller's user id on each statement).
        statement(
            "DescribeOwnStatements",
            "redshift-data:DescribeStatement",
            "*",
            conditions={"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}},
        ),
        statement("NotifyFailures", "sns:Publish", topic_arn),
        statement("PublishToEncryptedTopic", ["kms:GenerateDataKey", "kms:Decrypt"], kms_key_arn),
    ]


@dataclass(frozen=True)
class PipelineArgs:
    """Arguments of `Pipeline`."""

    context: SiloContext
    """The silo: account, names, key and tags (`SiloAccount` passes its own)."""
    raw_crawler_name: str
    """Crawler of the raw tables."""
    processed_crawler_name: str
    """Crawler of the processed bucket."""
    job_name: str
    """The Glue ETL job."""
    workgroup_name: pulumi.Input[str]
    """Redshift Serverless workgroup the loads run in."""
    workgroup_arn: pulumi.Input[str]
    """Its ARN (IAM grants are per workgroup)."""
    database: str
    """Redshift database."""
    loads: Sequence[tuple[str, pulumi.Input[Sequence[str]]]]
    """Per dataset, the SQL statements of its load transaction."""
    alert_topic_arn: pulumi.Input[str]
    """SNS topic failures are published to."""
    raw_bucket_name: Optional[pulumi.Input[str]] = None
    """Raw bucket; with `config.skip_when_no_new_data` the run first checks it for new objects."""
    raw_bucket_arn: Optional[pulumi.Input[str]] = None
    """Its ARN."""
    config: EtlConfig = field(default_factory=EtlConfig)
    """The `datalake:etl` section; the pipeline reads its schedule, `skipWhenNoNewData` (which needs
    the raw bucket above) and crawler polling (default: its defaults)."""
    timeout_seconds: int = 6 * 3600
    """Execution timeout (default 6 hours)."""


class Pipeline(pulumi.ComponentResource):
    """The ETL state machine, its schedule and its failure reporting."""

    state_machine: aws.sfn.StateMachine
    definition: pulumi.Output[str]

    def __init__(self, name: str, args: PipelineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:orchestration:Pipeline", name, None, opts)
        gated = args.config.skip_when_no_new_data and args.raw_bucket_name is not None
        marker_name = f"/{args.context.name_prefix}/{args.context.silo_name}/etl/last-successful-run"
        marker = self._last_run_marker(name, args, marker_name) if gated else None
        self.definition = self._definition(args, gated, marker)
        self.state_machine = self._state_machine(name, args, gated, marker_name)
        schedule = self._schedule(name, args)
        self._failure_alerts(name, args)
        self.register_outputs(
            {"stateMachineArn": self.state_machine.arn, "schedule": schedule.schedule_expression}
        )

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _last_run_marker(self, name: str, args: PipelineArgs, marker_name: str) -> aws.ssm.Parameter:
        """The start time of the last successful run, which a gated run compares the raw bucket with."""
        # Starts at the epoch so the first run always proceeds; the pipeline owns the value after that.
        return aws.ssm.Parameter(
            f"{name}-last-run",
            name=marker_name,
            type="String",
            value="1970-01-01T00:00:00Z",
            description="Start time of the last successful ETL run (written by the state machine)",
            tags=args.context.tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
        )

    @staticmethod
    def _definition(args: PipelineArgs, gated: bool, marker: Optional[aws.ssm.Parameter]) -> pulumi.Output[str]:
        """The state machine's definition (`pipeline_definition`), once its inputs are known."""
        datasets = [dataset for dataset, _ in args.loads]

        def build(values: list[Any]) -> str:
            partition, workgroup, topic, raw_bucket, marker_name, *sqls = values
            targets = PipelineTargets(
                raw_crawler=args.raw_crawler_name,
                processed_crawler=args.processed_crawler_name,
                job_name=args.job_name,
                workgroup_name=workgroup,
                database=args.database,
                topic_arn=topic,
                loads=[DatasetLoad(dataset, list(statements)) for dataset, statements in zip(datasets, sqls)],
                partition=partition,
                poll_seconds=args.config.crawler_poll_seconds,
                max_polls=args.config.crawler_max_polls,
                timeout_seconds=args.timeout_seconds,
                raw_bucket=raw_bucket if gated else None,
                last_run_parameter=marker_name if gated else None,
            )
            return json.dumps(pipeline_definition(targets), indent=2)

        return pulumi.Output.all(
            args.context.account.partition,
            args.workgroup_name,
            args.alert_topic_arn,
            args.raw_bucket_name if gated else None,
            marker.name if marker is not None else None,
            *[statements for _, statements in args.loads],
        ).apply(build)

    def _state_machine(self, name: str, args: PipelineArgs, gated: bool, marker_name: str) -> aws.sfn.StateMachine:
        account = args.context.account
        role, role_policy = role_with_policy(
            name,
            physical_name=bounded_name(args.context.base_name, "etl-pipeline"),
            trust_policy=account_service_trust("states.amazonaws.com", account),
            statements=state_machine_statements(
                account,
                crawlers=[args.raw_crawler_name, args.processed_crawler_name],
                job_name=args.job_name,
                workgroup_arn=args.workgroup_arn,
                topic_arn=args.alert_topic_arn,
                kms_key_arn=args.context.key,
                raw_bucket_arn=args.raw_bucket_arn if gated else None,
                datasets=[dataset for dataset, _ in args.loads],
                # Parameter ARNs hold the name without its leading slash: parameter/<prefix>/<silo>/...
                last_run_parameter_arn=account.arn("ssm", f"parameter{marker_name}") if gated else None,
            ),
            tags=args.context.tags,
            opts=self._child,
        )
        return aws.sfn.StateMachine(
            f"{name}-state-machine",
            name=f"{args.context.base_name}-etl",
            role_arn=role.arn,
            definition=self.definition,
            type="STANDARD",
            tags=args.context.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )

    def _schedule(self, name: str, args: PipelineArgs) -> aws.cloudwatch.EventRule:
        """The rule that starts the pipeline on `etl.schedule`, with the role it starts it with."""
        base = args.context.base_name
        schedule_role, _ = role_with_policy(
            f"{name}-schedule",
            physical_name=bounded_name(base, "etl-schedule"),
            trust_policy=account_service_trust("events.amazonaws.com", args.context.account),
            statements=[statement("StartThisPipeline", "states:StartExecution", self.state_machine.arn)],
            tags=args.context.tags,
            opts=self._child,
        )
        schedule = aws.cloudwatch.EventRule(
            f"{name}-schedule",
            name=f"{base}-etl-schedule",
            description="Starts the silo ETL pipeline",
            schedule_expression=args.config.schedule,
            tags=args.context.tags,
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-schedule-target",
            rule=schedule.name,
            arn=self.state_machine.arn,
            role_arn=schedule_role.arn,
            opts=self._child,
        )
        return schedule

    def _failure_alerts(self, name: str, args: PipelineArgs) -> None:
        """Timeouts, aborts and failures no Catch reported: one alert each, from the status events."""
        failures = aws.cloudwatch.EventRule(
            f"{name}-failures",
            name=f"{args.context.base_name}-etl-failures",
            description="ETL executions that timed out, were aborted or failed without an alert",
            event_pattern=self.state_machine.arn.apply(lambda arn: json.dumps(failure_alert_pattern(arn))),
            tags=args.context.tags,
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-failures-target", rule=failures.name, arn=args.alert_topic_arn, opts=self._child
        )
