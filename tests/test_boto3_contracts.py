"""Every boto3 call in functions/, runner/ and acceptance/, checked statically against botocore's models.

The handlers and the runner take their clients injected, so the tests give them moto clients, which
botocore validates call by call. This test also reads the source: each `<client>.<method>(...)`
whose receiver is a boto3 client must name an operation of that service, pass only members of its
input shape, pass every required member (unless it splats `**kwargs`), and use literal values the
model allows (enums; keys of literal structures). A typo in a code path no test reaches fails here.

A receiver is a client when it is assigned from `<anything>.client("<service>", ...)` in the same
file, or when its name says which service it is (`iam`, `self.sts`, `self._s3()`, `org`); the
dynamic Organizations calls of runner/discovery.py (`_call(client, "<method>", ...)`) are read too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import botocore.session
import pytest
from botocore import xform_name

from offline.stacks import PROJECT_DIR

SCANNED = ("functions", "runner", "acceptance")

# Receiver names that stand for one service's client, wherever they appear.
# (Not `glue`: functions/glue/job.py's `glue` is a GlueContext.)
NAMED_CLIENTS = {"iam": "iam", "sts": "sts", "s3": "s3", "logs": "logs", "org": "organizations", "organizations": "organizations"}
# Per-file names: in runner/discovery.py every `client` is the Organizations client.
FILE_CLIENTS = {"runner/discovery.py": {"client": "organizations"},
                "acceptance/aws.py": {"athena": "athena", "sfn": "stepfunctions", "kms": "kms"}}
# Helpers that make a dynamic call: (file, function) -> (service, index of the method-name argument).
DYNAMIC_CALLERS = {("runner/discovery.py", "_call"): ("organizations", 1), ("runner/discovery.py", "_pages"): ("organizations", 1)}
# Keyword arguments of those helpers that are theirs, not the API's.
HELPER_KEYWORDS = {"missing_codes", "backoff", "key"}
# Methods every client has besides its operations (botocore BaseClient, boto3's S3 transfer helpers).
CLIENT_METHODS = {"get_paginator", "get_waiter", "can_paginate", "generate_presigned_url", "generate_presigned_post", "close",
                  "upload_file", "upload_fileobj", "download_file", "download_fileobj"}


@dataclass(frozen=True)
class Call:
    file: str
    line: int
    service: str
    method: str
    keywords: tuple[tuple[str, ast.expr], ...]
    splat: bool
    """The call passes `**kwargs`: required members cannot be checked statically."""
    paginated: bool = False
    """`get_paginator("<method>").paginate(...)`: the keywords go to the operation (plus PaginationConfig)."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.service}.{self.method}"


@lru_cache(maxsize=None)
def model(service: str):
    return botocore.session.get_session().get_service_model(service)


@lru_cache(maxsize=None)
def operations(service: str) -> dict[str, str]:
    """client method name → operation name."""
    return {xform_name(op): op for op in model(service).operation_names}


def _name_of(node: ast.expr) -> Optional[str]:
    """`iam` → iam, `self.iam` → iam, `self._s3()` → s3 (a factory of clients)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id.lstrip("_").lower()
    if isinstance(node, ast.Attribute):
        return node.attr.lstrip("_").lower()
    return None


def _client_service(node: ast.expr) -> Optional[str]:
    """`<x>.client("svc", ...)` or `boto3.client("svc")` → svc."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def _assigned_clients(tree: ast.AST) -> dict[str, str]:
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and (service := _client_service(node.value)):
            for target in node.targets:
                if (name := _name_of(target)) is not None:
                    found[name] = service
    return found


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    """node → name of the innermost function around it (ast.walk visits outer functions first)."""
    owner: dict[ast.AST, str] = {}
    for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        for node in ast.walk(function):
            owner[node] = function.name
    return owner


def _calls_in(path: Path, root: Path = PROJECT_DIR) -> Iterator[Call]:
    relative = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(), filename=relative)
    names = {**NAMED_CLIENTS, **FILE_CLIENTS.get(relative, {}), **_assigned_clients(tree)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        keywords = tuple((k.arg, k.value) for k in node.keywords if k.arg is not None)
        splat = any(k.arg is None for k in node.keywords)
        func = node.func
        # Dynamic helpers: _call(client, "describe_account", backoff, ..., AccountId=...)
        if isinstance(func, ast.Name):
            for (file, helper), (service, index) in DYNAMIC_CALLERS.items():
                if file == relative and func.id == helper and len(node.args) > index:
                    method = node.args[index]
                    if isinstance(method, ast.Constant) and isinstance(method.value, str):
                        api = tuple((k, v) for k, v in keywords if k not in HELPER_KEYWORDS)
                        yield Call(relative, node.lineno, service, method.value, api, splat)
            continue
        if not isinstance(func, ast.Attribute):
            continue
        receiver = func.value
        # get_paginator("op").paginate(...)
        if (func.attr == "paginate" and isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute)
                and receiver.func.attr == "get_paginator"):
            service = _client_service(receiver.func.value) or names.get(_name_of(receiver.func.value) or "")
            if service and receiver.args and isinstance(receiver.args[0], ast.Constant):
                yield Call(relative, node.lineno, service, receiver.args[0].value, keywords, splat, paginated=True)
            continue
        service = _client_service(receiver) or names.get(_name_of(receiver) or "")
        if service is None or func.attr == "client":
            continue
        yield Call(relative, node.lineno, service, func.attr, keywords, splat)


def _sources() -> list[Path]:
    return sorted(p for d in SCANNED if (PROJECT_DIR / d).is_dir() for p in (PROJECT_DIR / d).rglob("*.py"))


@lru_cache(maxsize=1)
def all_calls() -> tuple[Call, ...]:
    return tuple(call for path in _sources() for call in _calls_in(path))


# -- checking one call ----------------------------------------------------------------------------


def _literal_problems(node: ast.expr, shape, where: str) -> list[str]:
    """What a literal value passes that the shape does not allow (members, enums, list items)."""
    problems = []
    if shape.type_name == "structure" and isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if key is None:  # **other
                continue
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                continue
            if key.value not in shape.members:
                problems.append(f"{where}: {key.value!r} is not a member of {shape.name} ({', '.join(shape.members)})")
            else:
                problems.extend(_literal_problems(value, shape.members[key.value], f"{where}.{key.value}"))
        given = {k.value for k in node.keys if isinstance(k, ast.Constant)}
        if None not in node.keys:
            missing = sorted(set(shape.required_members) - given)
            if missing:
                problems.append(f"{where}: {shape.name} requires {', '.join(missing)}")
    elif shape.type_name == "list":
        if isinstance(node, (ast.List, ast.Tuple)):
            for index, item in enumerate(node.elts):
                problems.extend(_literal_problems(item, shape.member, f"{where}[{index}]"))
        elif isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            problems.extend(_literal_problems(node.elt, shape.member, f"{where}[]"))
        elif isinstance(node, (ast.Constant, ast.Dict)):
            problems.append(f"{where}: {shape.name} is a list")
    elif shape.type_name == "string" and isinstance(node, ast.Constant):
        if not isinstance(node.value, str):
            problems.append(f"{where}: expects a string, got {node.value!r}")
        elif shape.enum and node.value not in shape.enum:
            problems.append(f"{where}: {node.value!r} is not one of {shape.enum}")
    elif shape.type_name in ("integer", "long") and isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            problems.append(f"{where}: expects an integer, got {node.value!r}")
    elif shape.type_name == "boolean" and isinstance(node, ast.Constant) and not isinstance(node.value, bool):
        problems.append(f"{where}: expects a boolean, got {node.value!r}")
    return problems


def problems_of(call: Call) -> list[str]:
    methods = operations(call.service)
    if call.method in CLIENT_METHODS and not call.paginated:
        return []
    if call.method not in methods:
        return [f"{call}: {call.service} has no operation {call.method!r}"]
    operation = model(call.service).operation_model(methods[call.method])
    problems = []
    if call.paginated:
        try:
            botocore.session.get_session().get_paginator_model(call.service).get_paginator(methods[call.method])
        except ValueError:
            problems.append(f"{call}: {methods[call.method]} cannot be paginated")
    shape = operation.input_shape
    members = dict(shape.members) if shape is not None else {}
    for name, value in call.keywords:
        if call.paginated and name == "PaginationConfig":
            continue
        if name not in members:
            problems.append(f"{call}: {name!r} is not a parameter of {operation.name} ({', '.join(members) or 'none'})")
            continue
        problems.extend(f"{call}: {p}" for p in _literal_problems(value, members[name], name))
    if not call.splat and shape is not None:
        missing = sorted(set(shape.required_members) - {name for name, _ in call.keywords})
        if missing:
            problems.append(f"{call}: {operation.name} requires {', '.join(missing)}")
    return problems


# -- the tests --------------------------------------------------------------------------------------


def test_every_boto3_call_in_the_source_matches_the_service_model():
    problems = [problem for call in all_calls() for problem in problems_of(call)]
    assert problems == []


def test_the_scan_finds_the_calls_it_must_check():
    """The scanner is not vacuous: these calls exist in the source and are found, with their services."""
    found = {(c.service, c.method) for c in all_calls()}
    expected = {
        ("iam", "create_user"), ("iam", "put_user_policy"), ("iam", "list_users"), ("iam", "delete_user"),
        ("sts", "assume_role"), ("s3", "put_object"), ("s3", "generate_presigned_post"),
        ("logs", "put_log_events"), ("organizations", "list_accounts_for_parent"),
        ("organizations", "describe_account"), ("organizations", "list_tags_for_resource"),
        ("athena", "start_query_execution"), ("stepfunctions", "start_execution"), ("kms", "schedule_key_deletion"),
        ("organizations", "tag_resource"), ("s3", "put_bucket_encryption"),
    }
    assert expected <= found, sorted(expected - found)
    assert len(all_calls()) >= 60


def test_every_client_is_created_for_a_real_service_with_validation_on():
    services = set(botocore.session.get_session().get_available_services())
    created = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if service := _client_service(node) if isinstance(node, ast.expr) else None:
                created.append((path.name, service))
                assert service in services, f"{path}: unknown service {service!r}"
    assert created
    for path in _sources():
        assert "parameter_validation=False" not in path.read_text(), f"{path} turns off botocore's parameter validation"


def test_every_dynamic_call_goes_through_a_known_helper():
    """`getattr(client, name)(...)` escapes the scan unless its helper is listed in DYNAMIC_CALLERS."""
    unknown = []
    for path in _sources():
        relative = path.relative_to(PROJECT_DIR).as_posix()
        tree = ast.parse(path.read_text())
        owner = _enclosing_functions(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and isinstance(node.func.func, ast.Name)
                    and node.func.func.id == "getattr"):
                if (relative, owner.get(node, "")) not in DYNAMIC_CALLERS:
                    unknown.append(f"{relative}:{node.lineno}")
    assert unknown == []


@pytest.mark.parametrize(
    "source, problem",
    [
        ("iam.create_user(UserNam='x')", "'UserNam' is not a parameter of CreateUser"),
        ("iam.create_users(UserName='x')", "iam has no operation 'create_users'"),
        ("iam.update_access_key(UserName='x', AccessKeyId='y', Status='inactive')", "'inactive' is not one of"),
        ("iam.tag_user(UserName='x', Tags=[{'Key': 'k', 'Val': 'v'}])", "'Val' is not a member of"),
        ("iam.tag_user(UserName='x')", "TagUser requires Tags"),
        ("iam.get_paginator('get_user').paginate(UserName='x')", "GetUser cannot be paginated"),
        ("sts = session.client('sts')\nsts.assume_role(RoleArn='a', RoleSessionName='b', DurationSeconds='3600')", "expects an integer"),
        ("_call(client, 'list_accounts', backoff, ParentId='ou')", "'ParentId' is not a parameter of ListAccounts"),
    ],
)
def test_the_check_fails_on_what_botocore_refuses(tmp_path, source, problem):
    path = tmp_path / "runner" / "discovery.py"
    path.parent.mkdir()
    path.write_text(source + "\n")
    calls = list(_calls_in(path, tmp_path))
    assert calls, source
    assert any(problem in p for c in calls for p in problems_of(c)), [problems_of(c) for c in calls]
