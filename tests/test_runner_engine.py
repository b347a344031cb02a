"""The distributed engine's state machine (statelint, botocore, structure) and the account-event transformers.

Event examples. `CreateAccountResult` and `CloseAccount` are the CloudTrail records of the AWS
Organizations User Guide, "Logging API calls with AWS CloudTrail for AWS Organizations"
(https://docs.aws.amazon.com/organizations/latest/userguide/orgs_cloudtrail-integration.html,
"Example log entries"), wrapped in the EventBridge envelope EventBridge adds ("AWS Service Event
via CloudTrail" / "AWS API Call via CloudTrail"). That guide shows no `MoveAccount`,
`RemoveAccountFromOrganization`, `TagResource` or `UntagResource` record; theirs follow the same
record with `requestParameters` as CloudTrail writes them, the request's members in lower camel case
(the API reference's `AccountId`, `SourceParentId`, `DestinationParentId`, `ResourceId`, `Tags`,
`TagKeys`). The rules and transformers run in moto's EventBridge (pattern matching and
`InputTransformer`), delivering to SQS, not in a model written for this test.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws
from statelint.linter import Linter

from components.master.runner_engine import (
    ACCOUNT_EVENT_SHAPES,
    RolloutSettings,
    account_event_pattern,
    codebuild_event_input,
    rollout_definition,
    state_machine_event_input,
)
from offline.sdk_contract import check_definition, reachable

SETTINGS = RolloutSettings(
    partition="aws",
    plan_project="acme-dl-runner",
    shard_project="acme-dl-runner-shard",
    targeted_project="acme-dl-runner-targeted",
    state_bucket="acme-dl-master-pulumi-state-111111111111",
    alert_topic_arn="arn:aws:sns:eu-west-1:111111111111:acme-dl-alerts",
    batch_size=40,
    max_concurrency=25,
    tolerated_failure_percentage=5,
)

USER = {
    "type": "IAMUser",
    "principalId": "AIDAMVNPBQA3EXAMPLE:my-admin-role",
    "arn": "arn:aws:sts::111122223333:assumed-role/my-admin-role/my-session-id",
    "accountId": "111122223333",
    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
}

# From the Organizations User Guide (see the module docstring).
CREATE_ACCOUNT_RESULT = {
    "eventVersion": "1.05",
    "userIdentity": {"accountId": "111122223333", "invokedBy": "..."},
    "eventTime": "2020-09-16T21:20:53Z",
    "eventSource": "organizations.amazonaws.com",
    "eventName": "CreateAccountResult",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "192.0.2.0",
    "userAgent": "....",
    "requestParameters": None,
    "responseElements": None,
    "eventID": "EXAMPLE8-90ab-cdef-fedc-ba987EXAMPLE",
    "readOnly": False,
    "eventType": "AwsServiceEvent",
    "recipientAccountId": "111122223333",
    "serviceEventDetails": {
        "createAccountStatus": {
            "id": "car-examplecreateaccountrequestid111",
            "state": "SUCCEEDED",
            "accountName": "****",
            "accountId": "444455556666",
            "requestedTimestamp": "Sep 16, 2020 9:20:50 PM",
            "completedTimestamp": "Sep 16, 2020 9:20:53 PM",
        }
    },
}
CLOSE_ACCOUNT = {
    "eventVersion": "1.08",
    "userIdentity": USER,
    "eventTime": "2022-03-18T18:17:06Z",
    "eventSource": "organizations.amazonaws.com",
    "eventName": "CloseAccount",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "192.168.0.1",
    "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)...",
    "requestParameters": {"accountId": "555555555555"},
    "responseElements": None,
    "requestID": "e28932f8-d5da-4d7a-8238-ef74f3d5c09a",
    "eventID": "19fe4c10-f57e-4cb7-a2bc-6b5c30233592",
    "readOnly": False,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "recipientAccountId": "111122223333",
    "eventCategory": "Management",
}


def api_call(name: str, parameters: dict) -> dict:
    """An AwsApiCall record like CLOSE_ACCOUNT, for another Organizations call."""
    record = copy.deepcopy(CLOSE_ACCOUNT)
    record.update(eventName=name, requestParameters=parameters)
    return record


EVENTS = {
    "CreateAccountResult": ("AWS Service Event via CloudTrail", CREATE_ACCOUNT_RESULT, "444455556666"),
    "CloseAccount": ("AWS API Call via CloudTrail", CLOSE_ACCOUNT, "555555555555"),
    "MoveAccount": ("AWS API Call via CloudTrail", api_call("MoveAccount", {
        "accountId": "666677778888", "sourceParentId": "r-ab12", "destinationParentId": "ou-ab12-11111111"}), "666677778888"),
    "RemoveAccountFromOrganization": ("AWS API Call via CloudTrail", api_call("RemoveAccountFromOrganization", {
        "accountId": "777788889999"}), "777788889999"),
    "TagResource": ("AWS API Call via CloudTrail", api_call("TagResource", {
        "resourceId": "888899990000", "tags": [{"key": "datalake:silo", "value": "false"}]}), "888899990000"),
    "UntagResource": ("AWS API Call via CloudTrail", api_call("UntagResource", {
        "resourceId": "999900001111", "tagKeys": ["datalake:silo"]}), "999900001111"),
}


@pytest.fixture
def definition() -> dict:
    return json.loads(json.dumps(rollout_definition(SETTINGS)))


# statelint 3.1.0 (the newest release) predates `ReaderConfig.InputType`, which Step Functions needs
# to read a JSON file ("ItemReader (Map)", https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html).
STATELINT_GAPS = ['Field "InputType" not allowed in State Machine.States.Rollout.ItemReader.ReaderConfig']


def test_definition_passes_statelint_and_botocore(definition):
    assert Linter.validate(definition) == STATELINT_GAPS
    assert check_definition(definition, partition="aws") == []


def test_the_checkers_would_catch_a_broken_definition(definition):
    broken = copy.deepcopy(definition)
    broken["States"]["Plan"]["Next"] = "NoSuchState"
    assert Linter.validate(broken) != STATELINT_GAPS
    typo = copy.deepcopy(definition)
    typo["States"]["Rollout"]["ItemProcessor"]["States"]["ApplyBatch"]["Parameters"]["ProjectNam"] = "x"
    assert any("ProjectNam" in problem for problem in check_definition(typo, partition="aws"))


def test_every_state_is_reachable_and_every_failure_alerts(definition):
    states = definition["States"]
    assert reachable(definition) == set(states)
    for name in ("TargetedApply", "Plan", "MergeReports"):
        assert states[name]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Alert"}]
    # A rollout past its tolerance still merges its report; the merge then fails and alerts.
    assert states["Rollout"]["Catch"][0]["Next"] == "MergeReports"
    assert states["Alert"]["Next"] == "Failed" and states["Failed"]["Type"] == "Fail"
    assert states["Alert"]["Parameters"]["TopicArn"] == SETTINGS.alert_topic_arn


def env_of(state: dict) -> dict[str, str]:
    return {e["Name"]: e.get("Value", e.get("Value.$")) for e in state["Parameters"]["EnvironmentVariablesOverride"]}


def _route(start_input: dict) -> tuple[list[str], dict]:
    """Runs the definition's routing states (Route, StampTime, as built) in moto's Step Functions
    interpreter, with the builds they lead to replaced by Succeed states (moto's parser refuses the
    Distributed Map's `ItemBatcher`); returns the visited states and what TargetedApply was given."""
    states = rollout_definition(SETTINGS)["States"]
    routing = {"StartAt": "Route", "States": {"Route": states["Route"], "StampTime": states["StampTime"],
                                              "TargetedApply": {"Type": "Succeed"}, "Plan": {"Type": "Succeed"}}}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="eu-west-1")
        machine = sfn.create_state_machine(name="acme-dl-runner", definition=json.dumps(routing),
                                           roleArn="arn:aws:iam::123456789012:role/runner-engine")["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps(start_input))["executionArn"]
        deadline = time.time() + 30
        # Polled by listing: moto cannot serialise a described output holding `$$.Execution.StartTime`.
        while next(e for e in sfn.list_executions(stateMachineArn=machine)["executions"] if e["executionArn"] == execution)["status"] == "RUNNING":
            assert time.time() < deadline, "execution did not finish"
            time.sleep(0.05)
        events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"] for e in events if "stateEnteredEventDetails" in e]
    given = next((json.loads(e["input"]) for e in entered if e["name"] == "TargetedApply"), {})
    return [e["name"] for e in entered], given


def test_an_account_event_routes_to_a_targeted_build_with_its_time_and_a_hand_started_one_gets_the_start_time():
    visited, given = _route({"accounts": "111122223333", "time": "2026-03-10T12:00:00Z"})
    assert visited[:2] == ["Route", "TargetedApply"] and given == {"accounts": "111122223333", "time": "2026-03-10T12:00:00Z"}
    visited, given = _route({"accounts": "111122223333"})
    assert visited[:3] == ["Route", "StampTime", "TargetedApply"]
    assert given["accounts"] == "111122223333" and given["time"][:2] == "20"  # the execution's start, ISO 8601
    visited, _ = _route({})
    assert visited[:2] == ["Route", "Plan"]


def test_plan_map_merge_structure(definition):
    states = definition["States"]
    assert states["Route"]["Default"] == "Plan"
    plan_uri = "States.Format('s3://acme-dl-master-pulumi-state-111111111111/runner-plans/{}/plan.json', $$.Execution.Name)"
    assert states["Plan"]["Resource"] == "arn:aws:states:::codebuild:startBuild.sync"
    assert states["Plan"]["Parameters"]["ProjectName"] == "acme-dl-runner"
    assert env_of(states["Plan"]) == {"RUNNER_COMMAND": "plan", "RUNNER_PLAN_JSON": plan_uri}

    rollout = states["Rollout"]
    assert rollout["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert rollout["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": SETTINGS.state_bucket, "Key.$": "States.Format('runner-plans/{}/items.json', $$.Execution.Name)"},
    }
    assert rollout["ItemBatcher"] == {"MaxItemsPerBatch": 40, "BatchInput": {"plan.$": plan_uri}}
    assert (rollout["MaxConcurrency"], rollout["ToleratedFailurePercentage"]) == (25, 5)
    child = rollout["ItemProcessor"]["States"]["ApplyBatch"]
    assert child["Resource"] == "arn:aws:states:::codebuild:startBuild.sync" and child["End"] is True
    assert child["Parameters"]["ProjectName"] == "acme-dl-runner-shard"
    assert env_of(child) == {"RUNNER_COMMAND": "apply", "RUNNER_FROM_PLAN": "$.BatchInput.plan", "RUNNER_ITEMS": "States.JsonToString($.Items)"}
    assert env_of(states["MergeReports"]) == {"RUNNER_COMMAND": "merge-reports", "RUNNER_FROM_PLAN": plan_uri}
    assert states["TargetedApply"]["Parameters"]["ProjectName"] == "acme-dl-runner-targeted"
    assert env_of(states["TargetedApply"]) == {"RUNNER_COMMAND": "apply", "RUNNER_ACCOUNTS": "$.accounts", "RUNNER_EVENT_TIME": "$.time"}


def test_partition_reaches_every_integration():
    gov = rollout_definition(RolloutSettings(**{**SETTINGS.__dict__, "partition": "aws-us-gov"}))
    text = json.dumps(gov)
    assert "arn:aws:states" not in text and text.count("arn:aws-us-gov:states:::") == 6
    assert check_definition(json.loads(text), partition="aws-us-gov") == []


def test_every_event_has_exactly_one_shape():
    names = [event for shape in ACCOUNT_EVENT_SHAPES for event in shape.events]
    assert sorted(names) == sorted(EVENTS)


EVENT_TIME = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def iso_time(value: str) -> str:
    """EventBridge's `time` is ISO 8601 (what `--event-time` parses). moto applies the transformer while
    it still holds the time as epoch seconds (it formats only a top-level `time` key afterwards), so
    its epoch value is mapped back here; either way it must be the event's own time."""
    if value.isdigit():
        return datetime.fromtimestamp(int(value), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def deliver(shape, transformer, detail_type: str, record: dict) -> list[dict]:
    """Puts one event on a moto bus with the shape's rule; returns what its SQS target received."""
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName=f"q-{shape.name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"r-{shape.name}", EventPattern=json.dumps(account_event_pattern(shape)))
    paths, template = transformer(shape)
    events.put_targets(Rule=f"r-{shape.name}", Targets=[{"Id": "1", "Arn": arn, "InputTransformer": {"InputPathsMap": paths, "InputTemplate": template}}])
    events.put_events(Entries=[{"Source": "aws.organizations", "DetailType": detail_type, "Detail": json.dumps(record), "Time": EVENT_TIME}])
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def shape_of(event_name: str):
    return next(shape for shape in ACCOUNT_EVENT_SHAPES if event_name in shape.events)


@pytest.mark.parametrize("event_name", sorted(EVENTS))
def test_each_event_shape_yields_its_account_id(event_name):
    detail_type, record, account = EVENTS[event_name]
    with mock_aws():
        [to_build] = deliver(shape_of(event_name), codebuild_event_input, detail_type, record)
        variables = to_build["environmentVariablesOverride"]
        variables[2]["value"] = iso_time(variables[2]["value"])
        assert variables == [
            {"name": "RUNNER_COMMAND", "value": "apply", "type": "PLAINTEXT"},
            {"name": "RUNNER_ACCOUNTS", "value": account, "type": "PLAINTEXT"},
            {"name": "RUNNER_EVENT_TIME", "value": "2026-03-10T12:00:00Z", "type": "PLAINTEXT"},
        ]
    with mock_aws():
        assert deliver(shape_of(event_name), state_machine_event_input, detail_type, record) == [
            {"accounts": account, "time": "2026-03-10T12:00:00Z"}
        ]


def test_failed_calls_and_failed_creations_start_nothing():
    failed_create = copy.deepcopy(CREATE_ACCOUNT_RESULT)  # the guide's failure example: no accountId at all
    status = failed_create["serviceEventDetails"]["createAccountStatus"]
    status.pop("accountId")
    status.update(state="FAILED", failureReason="EMAIL_ALREADY_EXISTS")
    denied = api_call("MoveAccount", {"accountId": "666677778888", "sourceParentId": "r-ab12", "destinationParentId": "ou-ab12-11111111"})
    denied.update(errorCode="AccessDenied", errorMessage="You don't have permissions to access this resource.")
    with mock_aws():
        assert deliver(shape_of("CreateAccountResult"), codebuild_event_input, "AWS Service Event via CloudTrail", failed_create) == []
    with mock_aws():
        assert deliver(shape_of("MoveAccount"), codebuild_event_input, "AWS API Call via CloudTrail", denied) == []
    with mock_aws():  # the other shapes' rules do not take an event that is not theirs
        assert deliver(shape_of("TagResource"), codebuild_event_input, "AWS API Call via CloudTrail", CLOSE_ACCOUNT) == []
