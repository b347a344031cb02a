"""Every state machine the programs build, held to botocore's service models and to statelint; and the
checker itself, shown to catch each kind of mistake it claims to."""

from __future__ import annotations

import copy

import pytest
from statelint.linter import Linter

from offline.sdk_contract import check_definition, definitions_of, error_names, error_prefix, service_model


@pytest.fixture(scope="module")
def program_definitions(evaluations):
    """Every state machine of the shipped master and silo. The silo's default (gated) pipeline holds
    every kind of call the pipeline makes; other settings only leave states out."""
    return [
        (label, urn, definition)
        for label, recording in (("silo", evaluations.silo()), ("master", evaluations.master()))
        for urn, definition in definitions_of(recording)
    ]


def test_the_programs_build_state_machines_to_check(program_definitions):
    assert "silo" in {label for label, _, _ in program_definitions}


def test_every_state_machine_call_matches_the_service_models(program_definitions):
    problems = [f"{label} {urn}: {p}" for label, urn, d in program_definitions for p in check_definition(d, partition="aws")]
    assert problems == []


def test_every_state_machine_passes_statelint(program_definitions):
    problems = [f"{label} {urn}: {p}" for label, urn, d in program_definitions for p in Linter.validate(d)]
    assert problems == []


# --- the checker catches what it claims to ------------------------------------------------------


def task(resource: str, parameters=None, **fields) -> dict:
    state = {"Type": "Task", "Resource": resource, "End": True, **fields}
    if parameters is not None:
        state["Parameters"] = parameters
    return state


def machine(**states) -> dict:
    return {"StartAt": next(iter(states)), "States": states}


def problems_of(state: dict, **kwargs) -> list[str]:
    return check_definition(machine(Only=state), **kwargs)


SDK = "arn:aws:states:::aws-sdk:"


def test_a_correct_aws_sdk_call_has_no_problem():
    state = task(f"{SDK}s3:listObjectsV2", {"Bucket": "b", "Prefix": "orders/", "MaxKeys": 1, "StartAfter.$": "$.after"},
                 ResultSelector={"keys.$": "$.KeyCount"}, Retry=[{"ErrorEquals": ["S3.S3Exception", "States.Timeout"]}])
    assert problems_of(state) == []


def test_a_misspelt_parameter_is_named_with_the_member_it_resembles():
    (problem,) = problems_of(task(f"{SDK}glue:startCrawler", {"Name": "c", "Nmae": "c"}))
    assert "no parameter 'Nmae'" in problem and "did you mean Name" in problem


def test_a_jsonpath_key_is_checked_without_its_suffix():
    assert problems_of(task(f"{SDK}glue:getCrawler", {"Name.$": "$.name"})) == []
    problems = problems_of(task(f"{SDK}glue:getCrawler", {"CrawlerName.$": "$.name"}))
    assert any("no parameter 'CrawlerName'" in p for p in problems)
    assert any("required parameter 'Name' is missing" in p for p in problems)


def test_a_missing_required_parameter_is_reported_even_without_parameters():
    assert problems_of(task(f"{SDK}glue:startCrawler")) == ["Only: glue:StartCrawler: required parameter 'Name' is missing"]


def test_static_values_must_have_the_members_type_and_enum():
    problems = problems_of(task(f"{SDK}ssm:putParameter", {"Name": "/x", "Value": "v", "Overwrite": "yes", "Type": "Text"}))
    assert any("Overwrite: expected boolean, got str" in p for p in problems)
    assert any("'Text' is not one of String, StringList, SecureString" in p for p in problems)
    problems = problems_of(task(f"{SDK}redshiftdata:batchExecuteStatement", {"Sqls": "SELECT 1", "Database": "d"}))
    assert any("Sqls: expected a list, got str" in p for p in problems)
    assert problems_of(task(f"{SDK}s3:listObjectsV2", {"Bucket": "b", "MaxKeys": True})) != []


def test_nested_structures_are_checked_member_by_member():
    state = task(f"{SDK}glue:startJobRun", {"JobName": "j", "NotificationProperty": {"NotifyDelayAfter": "10", "Delay": 1}})
    problems = problems_of(state)
    assert any("NotificationProperty.NotifyDelayAfter: expected integer" in p for p in problems)
    assert any("NotificationProperty: no parameter 'Delay'" in p for p in problems)


def test_unknown_services_and_operations_are_refused():
    assert "matches no botocore model" in problems_of(task(f"{SDK}redshift-data:describeStatement", {"Id": "x"}))[0]
    assert "no operation for action 'startCrawlers'" in problems_of(task(f"{SDK}glue:startCrawlers", {"Name": "c"}))[0]
    assert "no operation for action 'StartCrawler'" in problems_of(task(f"{SDK}glue:StartCrawler", {"Name": "c"}))[0]


def test_aws_sdk_service_names_follow_the_java_sdk_not_botocore():
    assert problems_of(task(f"{SDK}sfn:describeExecution", {"ExecutionArn": "a"})) == []
    assert problems_of(task(f"{SDK}cloudwatchlogs:describeLogGroups", {})) == []
    assert "matches no botocore model" in problems_of(task(f"{SDK}stepfunctions:describeExecution", {"ExecutionArn": "a"}))[0]


def test_optimized_integrations_take_their_documented_parameters_and_patterns():
    assert problems_of(task("arn:aws:states:::glue:startJobRun.sync", {"JobName": "j"})) == []
    assert "does not support the .waitForTaskToken pattern" in problems_of(
        task("arn:aws:states:::glue:startJobRun.waitForTaskToken", {"JobName": "j"}))[0]
    assert "does not support the .sync pattern" in problems_of(
        task("arn:aws:states:::sns:publish.sync", {"TopicArn": "t", "Message": "m"}))[0]
    # Parameters are PascalCase although the Step Functions API's own members are camelCase.
    assert problems_of(task("arn:aws:states:::states:startExecution.sync:2", {"StateMachineArn": "a", "Input": {"x": 1}})) == []
    # TraceHeader is a StartExecution member, but not one the integration passes on.
    (problem,) = problems_of(task("arn:aws:states:::states:startExecution.sync:2", {"StateMachineArn": "a", "TraceHeader": "t"}))
    assert "does not pass 'TraceHeader'" in problem
    # The integration serialises a JSON object given for a string member it documents as such.
    assert problems_of(task("arn:aws:states:::sns:publish", {"TopicArn": "t", "Message": {"input.$": "$"}})) == []
    assert problems_of(task("arn:aws:states:::sns:publish", {"TopicArn": "t", "Subject": {"a": 1}})) != []


def test_an_unknown_integration_is_refused_rather_than_passed():
    (problem,) = problems_of(task("arn:aws:states:::redshift-data:executeStatement", {"Sql": "SELECT 1"}))
    assert "not an optimized integration this checker knows" in problem


def test_states_inside_map_and_parallel_are_checked():
    inner = {"StartAt": "Inner", "States": {"Inner": task(f"{SDK}glue:startCrawler", {"Nme": "c"})}}
    definition = machine(
        Fan={"Type": "Parallel", "Branches": [copy.deepcopy(inner)], "Next": "Each"},
        Each={"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **copy.deepcopy(inner)}, "End": True},
    )
    paths = {p.split(":")[0] for p in check_definition(definition)}
    assert paths == {"Fan/Branch 0/Inner", "Each/Inner"}


def test_error_names_must_exist_in_the_model():
    state = task(f"{SDK}s3:listObjectsV2", {"Bucket": "b"}, Retry=[{"ErrorEquals": ["S3.SlowDownException", "S3.NoSuchBucket"]}],
                 Catch=[{"ErrorEquals": ["States.Timeot", "Glue.ThrottlingException"], "Next": "Only"}])
    problems = problems_of(state)
    assert len(problems) == 4
    assert any("'S3.SlowDownException', which s3:ListObjectsV2 never raises" in p for p in problems)
    assert any("'S3.NoSuchBucket'" in p and "did you mean S3.NoSuchBucketException" in p for p in problems)
    assert any("'States.Timeot', which is not a States Language error" in p for p in problems)
    assert any("'Glue.ThrottlingException'" in p for p in problems)


def test_lambda_functions_raise_errors_of_their_own_naming():
    state = task("arn:aws:states:::lambda:invoke", {"FunctionName": "f", "Payload.$": "$"},
                 Retry=[{"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException", "ValidationFailed"]}])
    assert problems_of(state) == []
    state["Retry"][0]["ErrorEquals"] = ["Lambda.NoSuchException"]
    assert problems_of(state) != []


def test_the_result_selector_reads_only_what_the_output_has():
    state = task(f"{SDK}glue:getCrawler", {"Name": "c"}, ResultSelector={"state.$": "$.Crawler.Sate", "ok.$": "$.Crawler.State"})
    (problem,) = problems_of(state)
    assert "reads $.Crawler.Sate" in problem and "no 'Sate'" in problem
    intrinsic = task(f"{SDK}ssm:getParameter", {"Name": "/x"}, ResultSelector={"ymd.$": "States.StringSplit($.Parameter.Valu, '-')"})
    assert "no 'Valu'" in problems_of(intrinsic)[0]


def test_the_resource_partition_is_a_real_one_and_the_expected_one():
    state = task(f"{SDK}glue:startCrawler", {"Name": "c"})
    assert problems_of(state, partition="aws") == []
    assert "but the state machine lives in 'aws-cn'" in problems_of(state, partition="aws-cn")[0]
    assert "is not one of" in problems_of(task("arn:aws-mars:states:::aws-sdk:glue:startCrawler", {"Name": "c"}))[0]


# --- the naming rules, pinned to the examples of the Step Functions developer guide -------------


def test_error_names_follow_the_developer_guides_examples():
    # "AcmPca.ResourceNotFoundException" for aws-sdk:acmpca:deleteCertificateAuthority, and
    # "S3.BucketAlreadyExistsException" for S3's BucketAlreadyExists (suffix added).
    assert error_prefix(service_model("acm-pca")) == "AcmPca"
    assert "AcmPca.ResourceNotFoundException" in error_names("acm-pca", "AcmPca")
    assert "S3.BucketAlreadyExistsException" in error_names("s3", "S3")
    assert [error_prefix(service_model(s)) for s in ("ssm", "redshift-data", "dynamodb", "stepfunctions")] == [
        "Ssm", "RedshiftData", "DynamoDb", "Sfn"
    ]
