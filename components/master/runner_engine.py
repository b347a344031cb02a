"""The runner's distributed engine (`datalake:runner.engine: stepfunctions`) and its account-event routing.

The state machine, built here as a Python dict (`rollout_definition`):

1. **Route**: an execution started with `{"accounts": "<id>[,<id>...]", "time": "<event time>"}` (an
   Organizations event; without `time` the execution's start time stands in) is a targeted run: one build of the *targeted* project runs `apply --account <id>` and ends.
   Anything else is a full rollout:
2. **Plan**: a build of the runner project runs `plan --plan-json s3://<state>/runner-plans/<execution>/plan.json`,
   which also writes `items.json` (one item per runnable operation, `runner/shards.py`);
3. **Rollout**: a Distributed Map reads `items.json` (`ItemReader`, `s3:getObject`, JSON), groups
   `batchSize` items per child (`ItemBatcher`), runs at most `mapMaxConcurrency` children at once and
   tolerates `toleratedFailurePercentage` of failed children; each child is one build of the *shard*
   project, `codebuild:startBuild.sync`, running `apply --from-plan <plan> --items <the batch's items>`;
4. **MergeReports**: a build runs `merge-reports --from-plan <plan>`: one run report from every batch's
   results, exit 1 (a failed build) when any operation failed or no result came back;
5. **Alert**: any failure above publishes to the alerts topic, then the execution fails.

Every child runs the same planner output and the same per-stack code (`runner.execution`) as the
local engine; only the fan-out differs. The plan is computed once, so the mass-retire guard judges
the whole organization.

Account events (`ACCOUNT_EVENT_SHAPES`): each event shape carries the account id at another path,
so each gets its own rule whose input transformer extracts it; the target starts a targeted run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from .config import RunnerConfig
from ..shared.iam import AccountContext, Statement, account_service_trust, concat, policy_json, statement

PLAN_PREFIX = "runner-plans"
CODEBUILD_SYNC = "codebuild:startBuild.sync"
CODEBUILD_RULE = "StepFunctionsGetEventsForCodeBuildStartBuildRule"
"""The managed EventBridge rule through which `startBuild.sync` learns that a build ended."""


@dataclass(frozen=True)
class AccountEventShape:
    """Organizations events that carry the account id at the same path of their CloudTrail record."""

    name: str
    """Suffix of the rule's name and of its Pulumi resource name."""
    events: tuple[str, ...]
    detail_type: str
    account_path: str
    """Where the account id is, as an EventBridge input path."""


ACCOUNT_EVENT_SHAPES = (
    # An AwsServiceEvent, written when the asynchronous CreateAccount finished: the id is only here.
    AccountEventShape("created", ("CreateAccountResult",), "AWS Service Event via CloudTrail",
                      "$.detail.serviceEventDetails.createAccountStatus.accountId"),
    # AwsApiCall events: CloudTrail records the request as sent (`AccountId` → `accountId`).
    AccountEventShape("lifecycle", ("MoveAccount", "CloseAccount", "RemoveAccountFromOrganization"),
                      "AWS API Call via CloudTrail", "$.detail.requestParameters.accountId"),
    # Tag changes name the tagged resource; for an account that is its id (OUs and policies also get
    # tagged: their ids are not 12 digits, and the runner refuses them with a clear error).
    AccountEventShape("tags", ("TagResource", "UntagResource"), "AWS API Call via CloudTrail",
                      "$.detail.requestParameters.resourceId"),
)


def account_event_pattern(shape: AccountEventShape) -> dict[str, Any]:
    """The rule's pattern: the shape's events, successful ones only (a failed call changed nothing)."""
    detail: dict[str, Any] = {"eventSource": ["organizations.amazonaws.com"], "eventName": list(shape.events)}
    if shape.detail_type == "AWS API Call via CloudTrail":
        detail["errorCode"] = [{"exists": False}]
    else:
        detail["serviceEventDetails"] = {"createAccountStatus": {"state": ["SUCCEEDED"]}}
    return {"source": ["aws.organizations"], "detail-type": [shape.detail_type], "detail": detail}


def _event_paths(shape: AccountEventShape) -> dict[str, str]:
    # The event's time travels with the account: the run measures from it how long the change took
    # to reach the master's catalogs (`RUNNER_EVENT_TIME`, runner/catalogs.py).
    return {"account": shape.account_path, "time": "$.time"}


def codebuild_event_input(shape: AccountEventShape) -> tuple[dict[str, str], str]:
    """Input transformer of a rule that starts the targeted CodeBuild project directly (local engine)."""
    template = {
        "environmentVariablesOverride": [
            {"name": "RUNNER_COMMAND", "value": "apply", "type": "PLAINTEXT"},
            {"name": "RUNNER_ACCOUNTS", "value": "<account>", "type": "PLAINTEXT"},
            {"name": "RUNNER_EVENT_TIME", "value": "<time>", "type": "PLAINTEXT"},
        ]
    }
    return _event_paths(shape), json.dumps(template)


def state_machine_event_input(shape: AccountEventShape) -> tuple[dict[str, str], str]:
    """Input transformer of a rule that starts the state machine (stepfunctions engine)."""
    return _event_paths(shape), '{"accounts": "<account>", "time": "<time>"}'


@dataclass(frozen=True)
class RolloutSettings:
    """What the definition needs (plain values: the component resolves its Outputs first)."""

    partition: str
    plan_project: str
    """CodeBuild project of the plan and merge steps (the runner project)."""
    shard_project: str
    """CodeBuild project of the children (concurrency at least `max_concurrency`)."""
    targeted_project: str
    """CodeBuild project of targeted runs (never queued behind a rollout)."""
    state_bucket: str
    alert_topic_arn: str
    batch_size: int
    max_concurrency: int
    tolerated_failure_percentage: int


def _env(**variables: str) -> list[dict[str, str]]:
    """CodeBuild `EnvironmentVariablesOverride`; a name ending in `_` takes a JSONPath (`Value.$`)."""
    found = []
    for name, value in variables.items():
        key = "Value.$" if name.endswith("_") else "Value"
        found.append({"Name": name.rstrip("_"), key: value, "Type": "PLAINTEXT"})
    return found


def _build(settings: RolloutSettings, project: str, **variables: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": f"arn:{settings.partition}:states:::{CODEBUILD_SYNC}",
        "Parameters": {"ProjectName": project, "EnvironmentVariablesOverride": _env(**variables)},
        # A new build for every attempt: CodeBuild's own quota throttling is worth waiting out.
        "Retry": [{"ErrorEquals": ["CodeBuild.AccountLimitExceededException"], "IntervalSeconds": 30, "BackoffRate": 2.0, "MaxAttempts": 6}],
    }


def rollout_definition(settings: RolloutSettings) -> dict[str, Any]:
    """The state machine (see the module docstring), as the States Language document."""
    plan_uri = f"States.Format('s3://{settings.state_bucket}/{PLAN_PREFIX}/{{}}/plan.json', $$.Execution.Name)"
    alert = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Alert"}
    targeted = _build(settings, settings.targeted_project, RUNNER_COMMAND="apply", RUNNER_ACCOUNTS_="$.accounts",
                      RUNNER_EVENT_TIME_="$.time")
    plan = _build(settings, settings.plan_project, RUNNER_COMMAND="plan", RUNNER_PLAN_JSON_=plan_uri)
    child = _build(settings, settings.shard_project, RUNNER_COMMAND="apply", RUNNER_FROM_PLAN_="$.BatchInput.plan",
                   RUNNER_ITEMS_="States.JsonToString($.Items)")
    merge = _build(settings, settings.plan_project, RUNNER_COMMAND="merge-reports", RUNNER_FROM_PLAN_=plan_uri)
    rollout = {
        "Type": "Map",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},  # .sync needs STANDARD children
            "StartAt": "ApplyBatch",
            "States": {"ApplyBatch": {**child, "End": True}},
        },
        "ItemReader": {
            "Resource": f"arn:{settings.partition}:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {
                "Bucket": settings.state_bucket,
                "Key.$": f"States.Format('{PLAN_PREFIX}/{{}}/items.json', $$.Execution.Name)",
            },
        },
        "ItemBatcher": {"MaxItemsPerBatch": settings.batch_size, "BatchInput": {"plan.$": plan_uri}},
        "MaxConcurrency": settings.max_concurrency,
        "ToleratedFailurePercentage": settings.tolerated_failure_percentage,
        "ResultPath": None,
        # A rollout beyond its failure tolerance still gets its report merged (and then alerts).
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.rolloutError", "Next": "MergeReports"}],
        "Next": "MergeReports",
    }
    return {
        "Comment": "Runner rollout: plan, a Distributed Map of CodeBuild batches, one merged report (docs/runner.md)",
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"And": [{"Variable": "$.accounts", "IsPresent": True}, {"Variable": "$.time", "IsPresent": True}],
                     "Next": "TargetedApply"},
                    {"Variable": "$.accounts", "IsPresent": True, "Next": "StampTime"},
                ],
                "Default": "Plan",
            },
            # An execution started by hand with only `{"accounts": ...}`: a missing `$.time` would fail
            # the build's parameters, so the execution's start stands in for the event's time.
            "StampTime": {
                "Type": "Pass",
                "Parameters": {"accounts.$": "$.accounts", "time.$": "$$.Execution.StartTime"},
                "Next": "TargetedApply",
            },
            "TargetedApply": {**targeted, "ResultPath": None, "Catch": [alert], "Next": "Done"},
            "Plan": {**plan, "ResultPath": None, "Catch": [alert], "Next": "Rollout"},
            "Rollout": rollout,
            "MergeReports": {**merge, "ResultPath": None, "Catch": [alert], "Next": "Done"},
            "Alert": {
                "Type": "Task",
                "Resource": f"arn:{settings.partition}:states:::sns:publish",
                "Parameters": {
                    "TopicArn": settings.alert_topic_arn,
                    "Subject": "datalake runner rollout failed",
                    "Message.$": "States.Format('Runner execution {} failed; see the merged report under "
                                 f"s3://{settings.state_bucket}/runner-reports/ and the builds: {{}}', "
                                 "$$.Execution.Name, States.JsonToString($.error))",
                },
                "ResultPath": None,
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail", "Error": "RunnerRolloutFailed", "Cause": "a step or an operation failed; the alerts topic has the details"},
            "Done": {"Type": "Succeed"},
        },
    }


@dataclass(frozen=True)
class RunnerEngineArgs:
    """Arguments of `RunnerEngine`."""

    account: AccountContext
    """The master account."""
    state_machine_name: str
    """Physical name of the state machine (and prefix of its role), e.g. `acme-dl-runner`."""
    runner: RunnerConfig
    """`batchSize`, `mapMaxConcurrency`, `toleratedFailurePercentage`."""
    plan_project: aws.codebuild.Project
    """Project of the plan and merge steps (one build at a time)."""
    targeted_project: aws.codebuild.Project
    """Project of targeted runs (account events)."""
    shard_project: aws.codebuild.Project
    """Project of the Distributed Map's children."""
    state_bucket: pulumi.Input[str]
    """Bucket of the plans (`runner-plans/`), ledger and reports."""
    key_arn: pulumi.Input[str]
    """Master key; the alerts topic is encrypted with it."""
    alert_topic_arn: pulumi.Input[str]
    """Where a failed rollout is reported."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of every resource (default none)."""


class RunnerEngine(pulumi.ComponentResource):
    """The stepfunctions engine: the rollout state machine (`rollout_definition`) and its least-privilege role."""

    state_machine: aws.sfn.StateMachine

    def __init__(self, name: str, args: RunnerEngineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:runner:RunnerEngine", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role",
            name=f"{args.state_machine_name}-rollout",
            description="Runs the runner's rollout state machine: CodeBuild builds of the plan, its batches and the merged report",
            assume_role_policy=account_service_trust("states.amazonaws.com", args.account),
            tags=args.tags,
            opts=child,
        )
        policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy_json(self.statements(args)), opts=child)
        self.state_machine = aws.sfn.StateMachine(
            f"{name}-state-machine",
            name=args.state_machine_name,
            role_arn=role.arn,
            type="STANDARD",  # Distributed Map children of `.sync` tasks need STANDARD executions
            definition=self.definition(args),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.register_outputs({"stateMachineArn": self.state_machine.arn, "roleArn": role.arn})

    @staticmethod
    def definition(args: RunnerEngineArgs) -> pulumi.Output[str]:
        """`rollout_definition` as JSON, once the projects' names and the bucket are known."""
        runner = args.runner
        return pulumi.Output.all(
            args.account.partition, args.plan_project.name, args.shard_project.name, args.targeted_project.name, args.state_bucket, args.alert_topic_arn
        ).apply(
            lambda v: json.dumps(
                rollout_definition(
                    RolloutSettings(
                        partition=v[0], plan_project=v[1], shard_project=v[2], targeted_project=v[3], state_bucket=v[4], alert_topic_arn=v[5],
                        batch_size=runner.batch_size, max_concurrency=runner.map_max_concurrency,
                        tolerated_failure_percentage=runner.tolerated_failure_percentage,
                    )
                ),
                indent=2,
            )
        )

    @staticmethod
    def statements(args: RunnerEngineArgs) -> list[Statement]:
        """Exactly what the definition calls ("IAM policies for using Distributed Map states", and the
        CodeBuild `.sync` integration's managed rule)."""
        account = args.account
        machine = account.arn("states", f"stateMachine:{args.state_machine_name}")
        projects = [args.plan_project.arn, args.targeted_project.arn, args.shard_project.arn]
        return [
            statement("RunBuilds", ["codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds"], projects),
            statement(
                "WatchBuildsThroughTheManagedRule",
                ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                account.arn("events", f"rule/{CODEBUILD_RULE}"),
            ),
            # The Distributed Map runs its children as executions of this state machine.
            statement("StartMapChildren", "states:StartExecution", machine),
            statement(
                "FollowMapChildren",
                ["states:DescribeExecution", "states:StopExecution"],
                account.arn("states", f"execution:{args.state_machine_name}:*"),
            ),
            statement("ReadPlanItems", "s3:GetObject", concat("arn:", account.partition, ":s3:::", args.state_bucket, f"/{PLAN_PREFIX}/*")),
            statement("AlertFailedRollouts", "sns:Publish", args.alert_topic_arn),
            # The alerts topic and the plan's items (SSE-KMS, as every runner object) use the master key.
            statement("UseMasterKey", ["kms:GenerateDataKey", "kms:Decrypt"], args.key_arn),
        ]
