"""Holds Step Functions definitions to AWS's own API models (botocore's `service-2.json`).

`check_definition(definition)` walks every state, the states of Map and Parallel states included,
and returns a list of problems (empty when nothing is wrong). For each Task it checks, against the
botocore model of the operation the Task calls:

- the Resource: `arn:<partition>:states:::aws-sdk:<service>:<action>[.waitForTaskToken]` names a
  service and an operation that exist, or `arn:<partition>:states:::<service>:<action>[.sync|...]` is
  an optimized integration in `OPTIMIZED` with an integration pattern it supports; the partition is
  a real one (and the expected one, when given);
- the Parameters (or JSONata Arguments): every key (without the `.$` of JSONPath keys) is a member of
  the operation's input, at every level of nesting; every required member is present; a static value
  has the member's type (string, number, boolean, list, structure, map) and, for enums, a value of
  the enum; optimized integrations pass only the parameters Step Functions documents for them;
- the Retry and Catch `ErrorEquals` names: `States.*` names of the States Language, or
  `<Service>.<Exception>` names the service's model declares (see `error_names`);
- for aws-sdk Tasks, the paths a ResultSelector reads (`$.Crawler`, `$.Parameter.Value`) exist in the
  operation's output.

Call it from any test that builds a state machine: `assert check_definition(json.loads(definition)) == []`.
`definitions_of(recording)` lists the state machines a recorded program registers.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

PARTITIONS = frozenset({"aws", "aws-cn", "aws-us-gov"})

# Error names of the States Language (https://states-language.net/#appendix-a-predefined-error-codes
# and the Step Functions developer guide, "Error names").
STATES_ERRORS = frozenset(
    {
        "States.ALL",
        "States.DataLimitExceeded",
        "States.ExceedToleratedFailureThreshold",
        "States.HeartbeatTimeout",
        "States.IntrinsicFailure",
        "States.ItemReaderFailed",
        "States.NoChoiceMatched",
        "States.ParameterPathFailure",
        "States.Permissions",
        "States.QueryEvaluationError",
        "States.ResultPathMatchFailure",
        "States.ResultWriterFailed",
        "States.Runtime",
        "States.TaskFailed",
        "States.Timeout",
        "States.BranchFailed",
    }
)

SYNC, SYNC2, CALLBACK = ".sync", ".sync:2", ".waitForTaskToken"

# aws-sdk service names are the AWS SDK for Java v2 names: the model's serviceId, lower-case, without
# spaces. Where that differs from botocore's name, botocore's name (derived from the installed models'
# serviceId; `_botocore_name` checks each entry against the model).
SDK_SERVICE_NAMES = {
    "applicationdiscoveryservice": "discovery",
    "cloudwatchlogs": "logs",
    "cognitoidentityprovider": "cognito-idp",
    "configservice": "config",
    "costandusagereportservice": "cur",
    "costexplorer": "ce",
    "databasemigrationservice": "dms",
    "directoryservice": "ds",
    "directoryservicedata": "ds-data",
    "elasticloadbalancing": "elb",
    "elasticloadbalancingv2": "elbv2",
    "elasticsearchservice": "es",
    "eventbridge": "events",
    "iotdataplane": "iot-data",
    "iotjobsdataplane": "iot-jobs-data",
    "lexmodelbuildingservice": "lex-models",
    "lexmodelsv2": "lexv2-models",
    "lexruntimeservice": "lex-runtime",
    "lexruntimev2": "lexv2-runtime",
    "marketplaceentitlementservice": "marketplace-entitlement",
    "marketplacemetering": "meteringmarketplace",
    "migrationhub": "mgh",
    "pinpointsmsvoice": "sms-voice",
    "serverlessapplicationrepository": "serverlessrepo",
    "sfn": "stepfunctions",
    "simpledb": "sdb",
}


@dataclass(frozen=True)
class Integration:
    """An optimized integration: the botocore operation behind it and what Step Functions documents."""

    service: str
    """botocore service name."""
    operation: str
    """botocore operation name."""
    error_prefix: str
    """Prefix of the errors the integration raises (`SNS.ThrottledException`)."""
    patterns: frozenset[str] = frozenset({""})
    """Supported integration patterns: "" (request/response), `.sync`, `.sync:2`, `.waitForTaskToken`."""
    parameters: Optional[frozenset[str]] = None
    """The parameters Step Functions documents (None: every member of the operation's input)."""
    json_members: frozenset[str] = frozenset()
    """Members that may hold a JSON object where the API takes a string (Step Functions serialises it)."""
    sdk_errors: frozenset[str] = frozenset()
    """Error names that come from the SDK rather than the model (`Lambda.AWSLambdaException`)."""
    custom_errors: bool = False
    """Whether the target raises errors of its own choosing (a Lambda function's `errorType`)."""


def _integration(service: str, operation: str, prefix: str, *patterns: str, **extra: Any) -> Integration:
    fields = {k: frozenset(v) if isinstance(v, (set, tuple, list)) else v for k, v in extra.items()}
    return Integration(service, operation, prefix, frozenset({"", *patterns}), **fields)


# The optimized integrations ("Integrating optimized services with Step Functions"), keyed by the
# `<service>:<action>` of their Resource. Parameter lists where the developer guide narrows the API.
OPTIMIZED: dict[str, Integration] = {
    "lambda:invoke": _integration(
        "lambda", "Invoke", "Lambda", CALLBACK,
        parameters={"ClientContext", "FunctionName", "InvocationType", "LogType", "Payload", "Qualifier"},
        json_members={"Payload"},
        sdk_errors={"AWSLambdaException", "SdkClientException", "Unknown"},
        custom_errors=True,
    ),
    "glue:startJobRun": _integration(
        "glue", "StartJobRun", "Glue", SYNC,
        parameters={
            "JobName", "JobRunId", "JobRunQueuingEnabled", "Arguments", "AllocatedCapacity", "Timeout",
            "MaxCapacity", "SecurityConfiguration", "NotificationProperty", "WorkerType",
            "NumberOfWorkers", "ExecutionClass",
        },
        sdk_errors={"AWSGlueException"},
    ),
    "sns:publish": _integration(
        "sns", "Publish", "SNS", CALLBACK,
        parameters={
            "Message", "MessageAttributes", "MessageStructure", "MessageDeduplicationId",
            "MessageGroupId", "PhoneNumber", "Subject", "TargetArn", "TopicArn",
        },
        json_members={"Message"},
        sdk_errors={"AmazonSNSException"},
    ),
    "sqs:sendMessage": _integration(
        "sqs", "SendMessage", "SQS", CALLBACK,
        parameters={"DelaySeconds", "MessageAttributes", "MessageBody", "MessageDeduplicationId", "MessageGroupId", "QueueUrl"},
        json_members={"MessageBody"},
        sdk_errors={"AmazonSQSException", "SdkClientException"},
    ),
    "states:startExecution": _integration(
        "stepfunctions", "StartExecution", "StepFunctions", SYNC, SYNC2, CALLBACK,
        parameters={"Input", "Name", "StateMachineArn"},
        json_members={"Input"},
    ),
    "events:putEvents": _integration(
        "events", "PutEvents", "EventBridge", CALLBACK, parameters={"Entries"}, json_members={"Detail"},
        sdk_errors={"FailedEntry"},
    ),
    "codebuild:startBuild": _integration("codebuild", "StartBuild", "CodeBuild", SYNC),
    "codebuild:stopBuild": _integration("codebuild", "StopBuild", "CodeBuild"),
    "codebuild:batchDeleteBuilds": _integration("codebuild", "BatchDeleteBuilds", "CodeBuild"),
    "codebuild:batchGetReports": _integration("codebuild", "BatchGetReports", "CodeBuild"),
    "codebuild:startBuildBatch": _integration("codebuild", "StartBuildBatch", "CodeBuild", SYNC),
    "codebuild:stopBuildBatch": _integration("codebuild", "StopBuildBatch", "CodeBuild"),
    "codebuild:retryBuild": _integration("codebuild", "RetryBuild", "CodeBuild", SYNC),
    "codebuild:retryBuildBatch": _integration("codebuild", "RetryBuildBatch", "CodeBuild", SYNC),
    "codebuild:deleteBuildBatch": _integration("codebuild", "DeleteBuildBatch", "CodeBuild"),
    "athena:startQueryExecution": _integration("athena", "StartQueryExecution", "Athena", SYNC),
    "athena:stopQueryExecution": _integration("athena", "StopQueryExecution", "Athena"),
    "athena:getQueryExecution": _integration("athena", "GetQueryExecution", "Athena"),
    "athena:getQueryResults": _integration("athena", "GetQueryResults", "Athena"),
    "dynamodb:getItem": _integration("dynamodb", "GetItem", "DynamoDB", sdk_errors={"AmazonDynamoDBException"}),
    "dynamodb:putItem": _integration("dynamodb", "PutItem", "DynamoDB", sdk_errors={"AmazonDynamoDBException"}),
    "dynamodb:updateItem": _integration("dynamodb", "UpdateItem", "DynamoDB", sdk_errors={"AmazonDynamoDBException"}),
    "dynamodb:deleteItem": _integration("dynamodb", "DeleteItem", "DynamoDB", sdk_errors={"AmazonDynamoDBException"}),
    "ecs:runTask": _integration("ecs", "RunTask", "ECS", SYNC, CALLBACK),
    "batch:submitJob": _integration("batch", "SubmitJob", "Batch", SYNC),
    "databrew:startJobRun": _integration("databrew", "StartJobRun", "DataBrew", SYNC),
}

# Map states read and write S3 through these (Distributed Map: ItemReader, ResultWriter).
ITEM_READERS = {"s3:getObject": ("s3", "GetObject"), "s3:listObjectsV2": ("s3", "ListObjectsV2")}
RESULT_WRITER_PARAMETERS = frozenset({"Bucket", "Prefix"})

_RESOURCE = re.compile(r"^arn:(?P<partition>[^:]+):states:::(?P<target>[^:]+(?::[^:]+)+)$")
_FUNCTION_ARN = re.compile(r"^arn:[^:]+:lambda:[^:]+:\d{12}:function:")
_ACTIVITY_ARN = re.compile(r"^arn:[^:]+:states:[^:]+:\d{12}:activity:")
_OUTPUT_PATH = re.compile(r"(?<![\w$])\$((?:\.[A-Za-z_]\w*)+)")


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@lru_cache(maxsize=None)
def service_model(name: str) -> ServiceModel:
    """botocore's model of `name` (`glue`, `redshift-data`), from the installed botocore."""
    return _session().get_service_model(name)


def sdk_service_name(model: ServiceModel) -> str:
    """The aws-sdk integration's name of a service: its serviceId, lower-case, letters and digits."""
    return re.sub(r"[^a-z0-9]", "", model.metadata["serviceId"].lower())


def error_prefix(model: ServiceModel) -> str:
    """`<Service>` of aws-sdk error names: the serviceId in PascalCase word by word, as the AWS SDK for
    Java v2 names its clients (`SSM` → `Ssm`, `Redshift Data` → `RedshiftData`, `DynamoDB` → `DynamoDb`)."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", model.metadata["serviceId"])
    return "".join(word[0].upper() + word[1:].lower() for word in words)


@lru_cache(maxsize=None)
def _botocore_name(sdk_name: str) -> Optional[str]:
    available = set(_session().get_available_services())
    candidates = [SDK_SERVICE_NAMES.get(sdk_name)] + sorted(n for n in available if n.replace("-", "") == sdk_name)
    for candidate in candidates:
        if candidate in available and sdk_service_name(service_model(candidate)) == sdk_name:
            return candidate
    return None


def _exception_name(name: str) -> str:
    return name if name.endswith("Exception") else f"{name}Exception"


@lru_cache(maxsize=None)
def error_names(service: str, prefix: str) -> frozenset[str]:
    """`<prefix>.<Exception>` for every error shape of the service: its shape name and its error code,
    with `Exception` appended when missing (the Step Functions guide asks for the suffix even where the
    service's own error name lacks it: `S3.BucketAlreadyExistsException`), and `<prefix>.<prefix>Exception`, the
    SDK's base class, which unmodeled errors (throttling, access denied) surface as."""
    model = service_model(service)
    found = {f"{prefix}.{prefix}Exception"}
    for name in model.shape_names:
        shape = model.shape_for(name)
        if shape.metadata.get("exception"):
            found.add(f"{prefix}.{_exception_name(name)}")
            code = shape.metadata.get("error", {}).get("code")
            if code:
                found.add(f"{prefix}.{_exception_name(code)}")
    return frozenset(found)


@dataclass(frozen=True)
class Call:
    """What one Task calls, resolved against the models."""

    operation: OperationModel
    error_prefix: str
    errors: frozenset[str]
    integration: Optional[Integration] = None
    """None for aws-sdk calls."""

    @property
    def label(self) -> str:
        return f"{self.operation.service_model.service_name}:{self.operation.name}"


def iter_states(states: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state with its path (`Outer/Branch 0/Inner`), nested Map and Parallel states included."""
    for name, state in states.items():
        where = f"{path}{name}"
        yield where, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from iter_states(processor.get("States", {}), f"{where}/")
        for index, branch in enumerate(state.get("Branches", [])):
            yield from iter_states(branch.get("States", {}), f"{where}/Branch {index}/")


def check_definition(definition: Mapping[str, Any], *, partition: Optional[str] = None) -> list[str]:
    """Every way `definition` disagrees with the service models; see the module docstring.

    `partition`, when given, is the one every `arn:<partition>:states:::` Resource must name.
    """
    problems: list[str] = []
    for where, state in iter_states(definition.get("States", {})):
        call = None
        if state.get("Type") == "Task":
            call = _check_task(where, state, partition, problems)
        if state.get("Type") == "Map":
            _check_map_io(where, state, partition, problems)
        _check_errors(where, state, call, problems)
    return problems


def successors(state: Mapping[str, Any]) -> set[str]:
    """The states one state can go to: Next, Default, every Choice and Catch."""
    found = {state[key] for key in ("Next", "Default") if key in state}
    found |= {branch["Next"] for branch in [*state.get("Choices", []), *state.get("Catch", [])]}
    return found


def reachable(definition: Mapping[str, Any]) -> set[str]:
    """The top-level states reachable from StartAt."""
    states = definition["States"]
    seen: set[str] = set()
    todo = [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen and name in states:
            seen.add(name)
            todo += successors(states[name])
    return seen


def definitions_of(recording: Any) -> list[tuple[str, dict[str, Any]]]:
    """(URN, parsed definition) of every state machine a recorded program registered."""
    return [
        (r.urn, json.loads(r.inputs["definition"]))
        for r in recording.of_type("aws:sfn/stateMachine:StateMachine")
    ]


# -- Tasks -------------------------------------------------------------------------------------------


def _split_pattern(action: str) -> tuple[str, str]:
    for pattern in (SYNC2, SYNC, CALLBACK):
        if action.endswith(pattern):
            return action[: -len(pattern)], pattern
    return action, ""


def _check_partition(where: str, found: str, expected: Optional[str], problems: list[str]) -> bool:
    if found not in PARTITIONS:
        problems.append(f"{where}: partition {found!r} is not one of {sorted(PARTITIONS)}")
        return False
    if expected is not None and found != expected:
        problems.append(f"{where}: the Resource names partition {found!r}, but the state machine lives in {expected!r}")
    return True


def resolve(resource: str) -> tuple[Optional[Call], Optional[str], Optional[str]]:
    """(call, partition, problem) for a Task's Resource; call is None for Lambda functions, activities
    and resources that do not parse (then problem says why)."""
    if _FUNCTION_ARN.match(resource) or _ACTIVITY_ARN.match(resource):
        return None, resource.split(":")[1], None
    match = _RESOURCE.match(resource)
    if not match:
        return None, None, f"Resource {resource!r} is neither arn:<partition>:states:::<integration> nor a function or activity ARN"
    partition, target = match["partition"], match["target"]
    parts = target.split(":")
    if parts[0] == "aws-sdk":
        if len(parts) != 3:
            return None, partition, f"aws-sdk Resource {resource!r} must be aws-sdk:<service>:<action>"
        _, sdk_name, action = parts
        action, pattern = _split_pattern(action)
        if pattern not in ("", CALLBACK):
            return None, partition, f"aws-sdk integrations support request/response and {CALLBACK} only, not {pattern!r}"
        service = _botocore_name(sdk_name)
        if service is None:
            return None, partition, (
                f"aws-sdk service {sdk_name!r} matches no botocore model (names are the SDK for Java v2's: "
                "serviceId lower-cased, e.g. redshiftdata, sfn, cloudwatchlogs)"
            )
        model = service_model(service)
        operation = action[:1].upper() + action[1:]
        if action[:1] != action[:1].lower() or operation not in model.operation_names:
            close = difflib.get_close_matches(operation, model.operation_names, n=3)
            hint = f"; did you mean {', '.join(c[0].lower() + c[1:] for c in close)}?" if close else ""
            return None, partition, f"{service} has no operation for action {action!r} (actions are camelCase API names){hint}"
        prefix = error_prefix(model)
        return Call(model.operation_model(operation), prefix, error_names(service, prefix)), partition, None
    service_part, _, rest = target.partition(":")
    action, pattern = _split_pattern(rest)
    integration = OPTIMIZED.get(f"{service_part}:{action}")
    if integration is None:
        return None, partition, (
            f"{service_part}:{action} is not an optimized integration this checker knows; add it to "
            "OPTIMIZED from the Step Functions developer guide"
        )
    if pattern not in integration.patterns:
        supported = ", ".join(p or "request/response" for p in sorted(integration.patterns))
        return None, partition, f"{service_part}:{action} does not support the {pattern} pattern (supported: {supported})"
    operation = service_model(integration.service).operation_model(integration.operation)
    errors = error_names(integration.service, integration.error_prefix) | {
        f"{integration.error_prefix}.{name}" for name in integration.sdk_errors
    }
    return Call(operation, integration.error_prefix, errors, integration), partition, None


def _check_task(where: str, state: Mapping[str, Any], partition: Optional[str], problems: list[str]) -> Optional[Call]:
    resource = state.get("Resource", "")
    call, found_partition, problem = resolve(resource)
    if found_partition is not None:
        _check_partition(where, found_partition, partition, problems)
    if problem:
        problems.append(f"{where}: {problem}")
    if call is None:
        return None
    arguments = state.get("Parameters", state.get("Arguments", {}))
    if isinstance(arguments, str):
        return call  # one JSONata expression: nothing static to check
    integration = call.integration
    _check_structure(
        f"{where}: {call.label}",
        call.operation.input_shape,
        arguments,
        allowed=integration.parameters if integration else None,
        json_members=integration.json_members if integration else frozenset(),
        problems=problems,
    )
    if integration is None:
        _check_result_selector(where, call, state.get("ResultSelector"), problems)
    return call


def _check_map_io(where: str, state: Mapping[str, Any], partition: Optional[str], problems: list[str]) -> None:
    reader = state.get("ItemReader")
    if reader:
        match = _RESOURCE.match(reader.get("Resource", ""))
        target = ITEM_READERS.get(match["target"]) if match else None
        if target is None:
            problems.append(f"{where}: ItemReader Resource {reader.get('Resource')!r} is not one of {sorted(ITEM_READERS)}")
        else:
            _check_partition(f"{where} ItemReader", match["partition"], partition, problems)
            operation = service_model(target[0]).operation_model(target[1])
            _check_structure(f"{where} ItemReader: s3:{target[1]}", operation.input_shape, reader.get("Parameters", {}),
                             allowed=None, json_members=frozenset(), problems=problems)
    writer = state.get("ResultWriter")
    if writer and "Resource" in writer:
        names = {key.removesuffix(".$") for key in writer.get("Parameters", {})}
        if writer["Resource"].split(":::", 1)[-1] != "s3:putObject":
            problems.append(f"{where}: ResultWriter Resource must be arn:<partition>:states:::s3:putObject")
        if names != RESULT_WRITER_PARAMETERS:
            problems.append(f"{where}: ResultWriter Parameters must be exactly {sorted(RESULT_WRITER_PARAMETERS)}; got {sorted(names)}")


# -- Parameters ---------------------------------------------------------------------------------------


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def pascal_members(shape: Optional[Shape]) -> dict[str, Shape]:
    """A structure's members by the names Step Functions uses: PascalCase "even if the native service
    API is in camelCase" (Step Functions' own API: `StateMachineArn` for `stateMachineArn`)."""
    return {_pascal(name): member for name, member in shape.members.items()} if shape is not None else {}


def _dynamic(key: str, value: Any) -> bool:
    return key.endswith(".$") or (isinstance(value, str) and value.startswith("{%") and value.endswith("%}"))


def _check_structure(
    where: str,
    shape: Optional[Shape],
    values: Any,
    *,
    allowed: Optional[frozenset[str]],
    json_members: frozenset[str],
    problems: list[str],
) -> None:
    if not isinstance(values, Mapping):
        problems.append(f"{where}: expected an object of parameters, got {type(values).__name__}")
        return
    members = pascal_members(shape)
    present = set()
    for key, value in values.items():
        name = key.removesuffix(".$")
        present.add(name)
        if name not in members:
            close = difflib.get_close_matches(name, list(members), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            problems.append(f"{where}: no parameter {name!r}{hint} (members: {', '.join(sorted(members)) or 'none'})")
            continue
        if allowed is not None and name not in allowed:
            problems.append(f"{where}: Step Functions does not pass {name!r} to this integration (documented: {', '.join(sorted(allowed))})")
            continue
        if not _dynamic(key, value):
            _check_value(f"{where}.{name}", members[name], value, json_members, problems)
    required = getattr(shape, "required_members", []) if shape is not None else []
    for name in map(_pascal, required):
        if name not in present:
            problems.append(f"{where}: required parameter {name!r} is missing")


_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "blob": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "timestamp": (str, int, float),
}


def _check_value(where: str, shape: Shape, value: Any, json_members: frozenset[str], problems: list[str]) -> None:
    kind = shape.type_name
    if where.rsplit(".", 1)[-1] in json_members and isinstance(value, (Mapping, list)):
        return
    if kind == "structure":
        _check_structure(where, shape, value, allowed=None, json_members=json_members, problems=problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {type(value).__name__} {value!r}")
            return
        for index, item in enumerate(value):
            _check_value(f"{where}[{index}]", shape.member, item, json_members, problems)
    elif kind == "map":
        if not isinstance(value, Mapping):
            problems.append(f"{where}: expected a map, got {type(value).__name__} {value!r}")
            return
        for key, item in value.items():
            if not _dynamic(key, item):
                _check_value(f"{where}[{key!r}]", shape.value, item, json_members, problems)
    elif kind in _SCALARS:
        types = _SCALARS[kind]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            problems.append(f"{where}: expected {kind}, got {type(value).__name__} {value!r}")
        elif kind == "string" and shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} is not one of {', '.join(shape.enum)}")


def _check_result_selector(where: str, call: Call, selector: Any, problems: list[str]) -> None:
    if not isinstance(selector, Mapping):
        return
    output = call.operation.output_shape
    for key, value in selector.items():
        if not (key.endswith(".$") and isinstance(value, str)):
            continue
        for path in _OUTPUT_PATH.findall(value):
            shape = output
            for member in path.strip(".").split("."):
                if shape is None or shape.type_name != "structure":
                    break
                members = pascal_members(shape)
                if member not in members:
                    problems.append(
                        f"{where}: ResultSelector reads ${path} but {call.label}'s output has no {member!r} "
                        f"(members: {', '.join(sorted(members))})"
                    )
                    break
                shape = members[member]


# -- Errors -------------------------------------------------------------------------------------------


def _check_errors(where: str, state: Mapping[str, Any], call: Optional[Call], problems: list[str]) -> None:
    handlers = [("Retry", r) for r in state.get("Retry", [])] + [("Catch", c) for c in state.get("Catch", [])]
    for field, handler in handlers:
        for name in handler.get("ErrorEquals", []):
            if name.startswith("States."):
                if name not in STATES_ERRORS:
                    problems.append(f"{where}: {field} names {name!r}, which is not a States Language error")
                continue
            if call is None or name in call.errors:
                continue  # a Lambda function, an activity or a nested state: errors of their own naming
            custom = call.integration is not None and call.integration.custom_errors
            if custom and not name.startswith(f"{call.error_prefix}."):
                continue
            close = difflib.get_close_matches(name, sorted(call.errors), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            problems.append(
                f"{where}: {field} names {name!r}, which {call.label} never raises "
                f"(its errors: {call.error_prefix}.<Exception> of its model, and States.*){hint}"
            )
