"""Runs the project's Pulumi programs in-process under mocks and records what they ask for.

`run_program` sets fresh mocks for every call (module-level `set_mocks` in two files would make the
last import win for every test), feeds the stack config in, runs the program and returns a
`Recording`: every resource with its type, logical name, inputs, parent, provider and options, and
the values of the stack outputs. An invoke the mocks do not know raises, naming its token.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
from pulumi.runtime import mocks as runtime_mocks
from pulumi.runtime import rpc

from components.shared.config import decode_structured
from components.master.pulumi_cli import PULUMI_CLI_SHA256, PULUMI_CLI_VERSION
from components.shared.pulumi_names import (
    DIY_ORGANIZATION,
    PulumiNameError,
    backend_kind_of_organization,
    check_stack_name,
    parse_stack_reference,
)
from components.shared.iam import dns_suffix_of, partition_of

PROJECT = "datalake"
MASTER_ACCOUNT_ID = "111111111111"
# The shipped Pulumi.master.yaml's master is the organization's management account.
MANAGEMENT_ACCOUNT_ID = MASTER_ACCOUNT_ID
SILO_ACCOUNT_ID = "222222222222"
REGION = "eu-west-1"
# What Organizations reports under the silo OU unless a test says otherwise: the silo the shipped
# template is filled with, ACTIVE.
SILO_OU_ACCOUNTS = ({"id": SILO_ACCOUNT_ID, "name": "sales", "state": "ACTIVE"},)
DESCENDANT_ACCOUNTS = "aws:organizations/getOrganizationalUnitDescendantAccounts:getOrganizationalUnitDescendantAccounts"


def descendant_accounts(accounts, partition: str = "aws") -> InvokeHandler:
    """Handler of the Organizations invoke answering with `accounts` (dicts with id, name, state)."""

    def handler(args: Mapping[str, Any]) -> Mapping[str, Any]:
        return {
            "id": args["parentId"],
            "parentId": args["parentId"],
            "accounts": [
                {
                    "id": a["id"],
                    "name": a["name"],
                    "state": a["state"],
                    "status": a["state"],
                    "arn": f"arn:{partition}:organizations::{MANAGEMENT_ACCOUNT_ID}:account/o-a1b2c3d4e5/{a['id']}",
                    "email": f"aws+{a['id']}@example.com",
                }
                for a in accounts
            ],
        }

    return handler

InvokeHandler = Callable[[Mapping[str, Any]], Any]
"""Answers an invoke with its outputs, or with `(outputs, [(property, reason), ...])` when it fails."""


@dataclass
class RecordedResource:
    """One `RegisterResource` call, as the engine would have received it."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str
    provider: str
    custom: bool
    retain_on_delete: Optional[bool]
    dependencies: list[str]
    outputs: dict[str, Any] = field(default_factory=dict)
    import_id: str = ""
    """The `import_` option: the id of an existing resource the engine adopts instead of creating ('' = create)."""
    aliases: list[dict[str, Any]] = field(default_factory=list)
    """The `aliases` option as the engine receives it: `{"urn": ...}` or an alias spec (`name`, `type`,
    `stack`, `project`, `parentUrn`, `noParent`; empty means "as now"). `offline/urns.py` resolves them."""

    def policy(self, key: str = "policy") -> dict[str, Any]:
        """An input that holds policy JSON, parsed."""
        value = self.inputs[key]
        return json.loads(value) if isinstance(value, str) else value

    def statement(self, sid: str, key: str = "policy") -> dict[str, Any]:
        statements = self.policy(key)["Statement"]
        found = [s for s in statements if s.get("Sid") == sid]
        assert found, f"{self.urn}: no statement {sid!r}; Sids are {[s.get('Sid') for s in statements]}"
        return found[0]


@dataclass
class Recording:
    """What a program registered, with small queries for tests."""

    resources: list[RecordedResource]
    outputs: dict[str, Any]
    registered_outputs: list[str] = field(default_factory=list)
    """URNs of the components that called `register_outputs`, once per call."""
    generic_arn_types: set[str] = field(default_factory=set)
    """Resource types the mocks gave a made-up ARN (no real format known in `_ARN_FORMATS`)."""

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: Optional[str] = None) -> RecordedResource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} named {name!r}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        return next(r for r in self.resources if r.urn == urn)

    def children(self, parent: RecordedResource, type_: Optional[str] = None) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == parent.urn and (type_ is None or r.type == type_)]

    def ancestors(self, resource: RecordedResource) -> list[RecordedResource]:
        chain, urns = [], {r.urn: r for r in self.resources}
        while resource.parent in urns:
            resource = urns[resource.parent]
            chain.append(resource)
        return chain

    def bucket_part(self, bucket: RecordedResource, type_: str) -> RecordedResource:
        """The resource of `type_` (versioning, policy, ...) that configures `bucket`."""
        found = [r for r in self.of_type(type_) if r.inputs.get("bucket") == bucket.outputs["id"]]
        assert len(found) == 1, f"{bucket.urn}: expected one {type_}, found {[r.urn for r in found]}"
        return found[0]

    def policies(self) -> list[tuple[RecordedResource, str, dict[str, Any]]]:
        """Every policy document any resource carries: (resource, input key, parsed document)."""
        found = []
        for resource in self.resources:
            for key in ("policy", "assumeRolePolicy", "inlinePolicy"):
                value = resource.inputs.get(key)
                if isinstance(value, str) and value.lstrip().startswith("{"):
                    document = json.loads(value)
                    if "Statement" in document:
                        found.append((resource, key, document))
        return found


def _arn(service: str, region: str, account: str, resource: str, partition: str = "aws") -> str:
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def _short_id(prefix: str, name: str, length: int = 17) -> str:
    return prefix + hashlib.sha256(name.encode()).hexdigest()[:length]


def _ssm_parameter(inputs: Mapping[str, Any], name: str) -> str:
    physical = str(inputs.get("name") or name)
    return f"parameter{physical}" if physical.startswith("/") else f"parameter/{physical}"


def _named(prefix: str) -> Callable[[str, Mapping[str, Any]], str]:
    """The ARN resource part `<prefix><physical name>`, the logical name when no `name` input is set."""
    return lambda name, inputs: f"{prefix}{inputs.get('name') or name}"


# The ARN every resource type the programs create has on AWS (the resource part, after
# `arn:aws:<service>:<region>:<account>:`): type -> (service, regional, with account, resource
# part from (logical name, inputs)). Policies are linted against AWS's ARN formats
# (offline/iam_lint.py), so a made-up ARN here would hide a real mismatch or invent one.
_ARN_FORMATS: dict[str, tuple[str, bool, bool, Callable[[str, Mapping[str, Any]], str]]] = {
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": ("firehose", True, True, _named("deliverystream/")),
    "aws:sfn/stateMachine:StateMachine": ("states", True, True, _named("stateMachine:")),
    "aws:redshiftserverless/workgroup:Workgroup": ("redshift-serverless", True, True, lambda n, i: f"workgroup/{uuid.uuid5(uuid.NAMESPACE_URL, n)}"),
    "aws:redshiftserverless/namespace:Namespace": ("redshift-serverless", True, True, lambda n, i: f"namespace/{uuid.uuid5(uuid.NAMESPACE_URL, n)}"),
    "aws:sns/topic:Topic": ("sns", True, True, _named("")),
    "aws:glue/crawler:Crawler": ("glue", True, True, _named("crawler/")),
    "aws:glue/job:Job": ("glue", True, True, _named("job/")),
    "aws:glue/catalogDatabase:CatalogDatabase": ("glue", True, True, _named("database/")),
    "aws:glue/catalogTable:CatalogTable": ("glue", True, True, lambda n, i: f"table/{i.get('databaseName')}/{i.get('name') or n}"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch", True, True, _named("alarm:")),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", True, True, _named("log-group:")),
    "aws:cloudwatch/logStream:LogStream": ("logs", True, True, lambda n, i: f"log-group:{i.get('logGroupName')}:log-stream:{i.get('name') or n}"),
    "aws:cloudwatch/eventRule:EventRule": ("events", True, True, lambda n, i: (
        f"rule/{i['eventBusName']}/{i.get('name') or n}" if i.get("eventBusName") not in (None, "default") else f"rule/{i.get('name') or n}"
    )),
    "aws:athena/workgroup:Workgroup": ("athena", True, True, _named("workgroup/")),
    "aws:athena/dataCatalog:DataCatalog": ("athena", True, True, _named("datacatalog/")),
    "aws:lambda/function:Function": ("lambda", True, True, _named("function:")),
    "aws:iam/policy:Policy": ("iam", False, True, lambda n, i: f"policy{i.get('path') or '/'}{i.get('name') or n}"),
    "aws:iam/role:Role": ("iam", False, True, lambda n, i: f"role{i.get('path') or '/'}{i.get('name') or n}"),
    "aws:ssm/parameter:Parameter": ("ssm", True, True, lambda n, i: _ssm_parameter(i, n)),
    "aws:ec2/securityGroup:SecurityGroup": ("ec2", True, True, lambda n, i: f"security-group/{_short_id('sg-', n)}"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("ec2", True, True, lambda n, i: f"vpc-endpoint/{_short_id('vpce-', n)}"),
    "aws:cognito/userPool:UserPool": ("cognito-idp", True, True, lambda n, i: f"userpool/{REGION}_{_short_id('', n, 9)}"),
    "aws:cloudfront/function:Function": ("cloudfront", False, True, _named("function/")),
    "aws:cloudfront/originAccessControl:OriginAccessControl": ("cloudfront", False, True, lambda n, i: f"origin-access-control/{_short_id('E', n, 13).upper()}"),
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": ("cloudfront", False, True, lambda n, i: f"response-headers-policy/{uuid.uuid5(uuid.NAMESPACE_URL, n)}"),
    "aws:codebuild/project:Project": ("codebuild", True, True, _named("project/")),
    "aws:codepipeline/pipeline:Pipeline": ("codepipeline", True, True, _named("")),
    "aws:codestarconnections/connection:Connection": ("codestar-connections", True, True, lambda n, i: f"connection/{uuid.uuid5(uuid.NAMESPACE_URL, n)}"),
    "aws:codestarnotifications/notificationRule:NotificationRule": ("codestar-notifications", True, True, lambda n, i: f"notificationrule/{_short_id('', n, 40)}"),
    "aws:apigateway/authorizer:Authorizer": ("apigateway", True, False, lambda n, i: f"/restapis/{i.get('restApi')}/authorizers/{n}-id"),
    "aws:apigateway/apiKey:ApiKey": ("apigateway", True, False, lambda n, i: f"/apikeys/{n}-id"),
    "aws:apigateway/usagePlan:UsagePlan": ("apigateway", True, False, lambda n, i: f"/usageplans/{n}-id"),
    "aws:quicksight/dataSource:DataSource": ("quicksight", True, True, lambda n, i: f"datasource/{i.get('dataSourceId') or n}"),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("s3", False, False, lambda n, i: f"{i.get('bucket')}/{i.get('key')}"),
}


def _has_arn_output(typ: str) -> bool:
    """Whether pulumi-aws gives resources of `typ` an `arn` output (an Integration, a BucketPolicy... have none)."""
    import importlib

    if not typ.startswith("aws:"):
        return False  # components (datalake:*, awsx) get their outputs from Python, not from AWS
    _, module, class_name = typ.split(":")
    module = module.split("/")[0]
    module = {"lambda": "lambda_", "index": ""}.get(module, module)
    try:
        cls = getattr(importlib.import_module("pulumi_aws" + (f".{module}" if module else "")), class_name)
    except (ImportError, AttributeError):
        return True
    return isinstance(getattr(cls, "arn", None), property)


class DatalakeMocks(pulumi.runtime.Mocks):
    """Answers the engine like AWS would, enough for the programs to evaluate.

    Custom resources echo their inputs plus the outputs the programs read (ids, ARNs). Component
    resources that reach the mocks as one opaque resource (awsx) get only the outputs registered in
    `component_outputs`: echoing a component's inputs back would hide missing wiring.

    A StackReference resolves as the backend of the running stack would (`organization`: DIY when it
    is `organization`, Pulumi Cloud otherwise): a name that backend refuses fails with the CLI's own
    message, and a stack it does not hold fails with `unknown stack`. `stack_outputs` is keyed by
    any name of a stack; `<stack>` and `<org>/<stack>` mean the current project, as in the CLI. ARNs, endpoints
    and the partition invoke follow `region`'s partition (`arn:aws-cn:...`, `*.amazonaws.com.cn`).
    """

    def __init__(
        self,
        account_id: str,
        stack_outputs: Mapping[str, Mapping[str, Any]],
        invokes: Mapping[str, InvokeHandler],
        component_outputs: Mapping[str, Callable[[str, Mapping[str, Any]], Mapping[str, Any]]],
        organization: str = DIY_ORGANIZATION,
        project: str = PROJECT,
        region: str = REGION,
    ):
        self.region = region
        self.provider_regions: dict[str, str] = {}
        self.partition = partition_of(region)
        self.account_id = account_id
        self.organization = organization
        self.project = project
        self.backend = backend_kind_of_organization(organization)
        self.stack_outputs = {self._qualified(name): dict(outputs) for name, outputs in stack_outputs.items()}
        self.invokes = dict(invokes)
        self.component_outputs = component_outputs
        self.generic_arn_types: set[str] = set()
        """Types answered with a made-up `arn:<partition>:<module>:...` because `_ARN_FORMATS` lacks them."""

    def _qualified(self, reference: str) -> str:
        """The stack `reference` names, fully qualified, or the backend's refusal."""
        try:
            return parse_stack_reference(reference, self.backend).qualified(self.project, self.organization)
        except PulumiNameError as error:
            raise PulumiNameError(f"StackReference {reference!r}: {error}") from None

    def stack_reference_outputs(self, reference: str) -> dict[str, Any]:
        """What `GetStackOutputs` returns for `reference` (pkg/backend/backend.go)."""
        qualified = self._qualified(reference)
        if qualified not in self.stack_outputs:
            raise KeyError(f"unknown stack {reference!r}; the backend holds {sorted(self.stack_outputs)}")
        return self.stack_outputs[qualified]

    def new_resource(self, args: runtime_mocks.MockResourceArgs):
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        if typ == "pulumi:pulumi:StackReference":
            stack = inputs.get("name", name)
            outputs = self.stack_reference_outputs(stack)
            return f"{name}", {"name": stack, "outputs": dict(outputs), "secretOutputNames": []}
        if typ in self.component_outputs:
            return f"{name}-id", dict(self.component_outputs[typ](name, inputs))
        if typ.startswith("pulumi:providers:"):
            if inputs.get("region"):
                self.provider_regions[f"{name}-provider-id"] = str(inputs["region"])
            return f"{name}-provider-id", inputs
        # AWS answers in the region of the provider a resource is created with (`<urn>::<id>`).
        provider_region = self.provider_regions.get((args.provider or "").rsplit("::", 1)[-1])
        region = inputs.get("region", provider_region or self.region)
        partition, suffix = self.partition, dns_suffix_of(self.partition)
        account = self.account_id

        def arn(service: str, region: str, account: str, resource: str) -> str:
            return _arn(service, region, account, resource, partition)

        state = dict(inputs)
        resource_id = f"{name}-id"
        if typ == "aws:s3/bucket:Bucket":
            resource_id = inputs.get("bucket", name)
            state.update(bucket=resource_id, arn=f"arn:{partition}:s3:::{resource_id}")
        elif typ == "aws:kms/key:Key":
            resource_id = f"key-{name}"
            state.update(keyId=resource_id, arn=arn("kms", region, account, f"key/{resource_id}"))
        elif typ == "aws:kms/alias:Alias":
            state.setdefault("arn", arn("kms", region, account, inputs.get("name", name)))
        elif typ == "aws:cloudfront/distribution:Distribution":
            resource_id = "E" + hashlib.sha256(name.encode()).hexdigest()[:12].upper()
            state.update(
                domainName=f"d{resource_id.lower()[1:]}.cloudfront.net",
                arn=f"arn:{partition}:cloudfront::{account}:distribution/{resource_id}",
            )
        elif typ == "aws:apigateway/stage:Stage":
            stage = inputs.get("stageName", name)
            api = inputs.get("restApi", "api")
            state.update(
                invokeUrl=f"https://{api}.execute-api.{region}.{suffix}/{stage}",
                arn=arn("apigateway", region, "", f"/restapis/{api}/stages/{stage}"),
                executionArn=arn("execute-api", region, account, f"{api}/{stage}"),
            )
        elif typ == "aws:transfer/server:Server":
            resource_id = "s-" + hashlib.sha256(name.encode()).hexdigest()[:17]
            state.update(
                endpoint=f"{resource_id}.server.transfer.{region}.{suffix}",
                arn=arn("transfer", region, account, f"server/{resource_id}"),
            )
        elif typ == "aws:apigateway/restApi:RestApi":
            state.update(
                rootResourceId=f"{name}-root",
                arn=arn("apigateway", region, "", f"/restapis/{resource_id}"),
                executionArn=arn("execute-api", region, account, resource_id),
            )
        elif typ in _ARN_FORMATS:
            service, regional, with_account, resource_part = _ARN_FORMATS[typ]
            arn_value = arn(service, region if regional else "", account if with_account else "", resource_part(name, inputs))
            state.setdefault("arn", arn_value)
            if typ == "aws:iam/role:Role":
                state["name"] = inputs.get("name", name)
            elif typ == "aws:iam/policy:Policy":
                resource_id = arn_value  # IAM identifies managed policies by ARN
            elif typ == "aws:lambda/function:Function":
                state.setdefault("name", inputs.get("name", name))
                state["invokeArn"] = f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{arn_value}/invocations"
                state["qualifiedArn"] = f"{arn_value}:$LATEST"
            elif typ == "aws:codestarconnections/connection:Connection":
                state["connectionStatus"] = "PENDING"
        elif _has_arn_output(typ):
            # Not in the table: the generic `arn:<partition>:<module>:<region>:<account>:<name>`, which
            # tests/test_iam_lint.py reports (`Recording.generic_arn_types`), so every type gets its real format.
            service = typ.split(":")[1].split("/")[0]
            physical = inputs.get("name") if isinstance(inputs.get("name"), str) else name
            if "arn" not in state:
                self.generic_arn_types.add(typ)
                state["arn"] = arn(service, region, account, physical)
        state.setdefault("id", resource_id)
        return resource_id, state

    def call(self, args: runtime_mocks.MockCallArgs):
        handler = self.invokes.get(args.token)
        if handler is None:
            raise NotImplementedError(
                f"invoke {args.token} is not mocked; add a handler to the harness (args: {dict(args.args)})"
            )
        answer = handler(args.args)
        if isinstance(answer, tuple):  # (outputs, failures): how a provider reports a failed read
            return dict(answer[0]), list(answer[1])
        return dict(answer), []


class RecordingMonitor(runtime_mocks.MockMonitor):
    """A mock monitor that also keeps what `MockResourceArgs` drops: parent, provider, options."""

    def __init__(self, mocks: DatalakeMocks):
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self.registered_outputs: list[str] = []

    def RegisterResourceOutputs(self, request):
        self.registered_outputs.append(request.urn)
        return super().RegisterResourceOutputs(request)

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self._record(request, response.urn, request.object, custom=request.custom)
            self.recorded[-1].retain_on_delete = (
                request.retainOnDelete if request.HasField("retainOnDelete") else None
            )
            self.recorded[-1].dependencies = list(request.dependencies)
            self.recorded[-1].import_id = request.importId
            self.recorded[-1].aliases = [_alias_of(alias) for alias in request.aliases] + [
                {"urn": urn} for urn in request.aliasURNs
            ]
        return response

    def ReadResource(self, request):
        """Reads (`StackReference`, `get` of existing resources) are recorded like registrations."""
        response = super().ReadResource(request)
        self._record(request, response.urn, request.properties, custom=True)
        return response

    def _record(self, request, urn: str, properties, *, custom: bool) -> None:
        registration = self.resources[urn]
        inputs = rpc.deserialize_properties(properties)
        if request.type.startswith("pulumi:providers:"):
            # Providers receive nested config as JSON text; decode it so tests read structures.
            inputs = {key: decode_structured(value) for key, value in inputs.items()}
        self.recorded.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=urn,
                inputs=inputs,
                parent=request.parent,
                provider=request.provider,
                custom=custom,
                retain_on_delete=None,
                dependencies=[],
                outputs={**registration.state, "id": registration.id},
            )
        )


def _alias_of(alias) -> dict[str, Any]:
    if alias.HasField("spec"):
        spec = alias.spec
        return {
            "name": spec.name,
            "type": spec.type,
            "stack": spec.stack,
            "project": spec.project,
            "parentUrn": spec.parentUrn,
            "noParent": spec.noParent,
        }
    return {"urn": alias.urn}


def default_invokes(account_id: str, region: str = REGION) -> dict[str, InvokeHandler]:
    partition = partition_of(region)
    suffix = dns_suffix_of(partition)
    return {
        "aws:index/getCallerIdentity:getCallerIdentity": lambda _: {
            "accountId": account_id,
            "arn": f"arn:{partition}:iam::{account_id}:role/deployer",
            "userId": "AROAEXAMPLE:deployer",
            "id": account_id,
        },
        "aws:index/getPartition:getPartition": lambda _: {
            "partition": partition,
            "dnsSuffix": suffix,
            "reverseDnsPrefix": ".".join(reversed(suffix.split("."))),
            "id": partition,
        },
        "aws:ec2/getRouteTables:getRouteTables": lambda args: {
            "ids": [f"rtb-{args.get('vpcId', 'vpc')}-{i}" for i in range(3)],
            "id": "route-tables",
        },
        # EC2's answer for the region's endpoint services (the program does not spell their names).
        "aws:ec2/getVpcEndpointService:getVpcEndpointService": lambda args: {
            "service": args["service"],
            "serviceType": args.get("serviceType", "Interface"),
            "serviceName": f"{'.'.join(reversed(suffix.split('.')))}.{region}.{args['service']}",
            "id": f"{region}-{args['service']}",
        },
        "aws:index/getRegion:getRegion": lambda args: {
            "name": region,
            "region": region,
            "id": region,
            "description": region,
            "endpoint": f"ec2.{region}.{suffix}",
        },
        DESCENDANT_ACCOUNTS: descendant_accounts(SILO_OU_ACCOUNTS, partition),
        # A new stack: no raw table is deployed yet (`deployed_raw_tables` answers with old ones).
        GET_CATALOG_TABLE: deployed_raw_tables({}),
    }


GET_CATALOG_TABLE = "aws:glue/getCatalogTable:getCatalogTable"


def deployed_raw_tables(tables: Mapping[str, Mapping[str, Any]]) -> InvokeHandler:
    """Handler of the Glue table data source: `tables` maps table names to `{columns, parameters}`;
    any other table is missing, reported as the AWS provider reports it."""

    def handler(args: Mapping[str, Any]):
        table = tables.get(args["name"])
        if table is None:
            return {}, [("name", f"EntityNotFoundException: Table {args['name']} not found in {args['databaseName']}")]
        return {
            "name": args["name"],
            "databaseName": args["databaseName"],
            "parameters": dict(table.get("parameters", {})),
            "storageDescriptors": [{"columns": [dict(c) for c in table["columns"]]}],
            "id": f"{args['databaseName']}:{args['name']}",
        }

    return handler


def awsx_vpc_outputs(name: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """What an `awsx:ec2:Vpc` resolves to: ids only, one subnet per AZ of each requested type."""
    zones = int(inputs.get("numberOfAvailabilityZones", 3))
    kinds = {str(spec.get("type", "")).lower() for spec in inputs.get("subnetSpecs", [])} or {"public", "private"}
    subnets = {kind: [f"subnet-{name}-{kind}-{i}" for i in range(zones)] for kind in ("public", "private", "isolated")}
    return {
        "vpcId": f"vpc-{name}",
        **{f"{kind}SubnetIds": subnets[kind] if kind in kinds else [] for kind in subnets},
    }


def default_component_outputs() -> dict[str, Callable[[str, Mapping[str, Any]], Mapping[str, Any]]]:
    return {"awsx:ec2:Vpc": awsx_vpc_outputs}


# Offline runs only: a stand-in for CLI checksums components/master/pulumi_cli.py does not pin yet (see its
# TO BE FILLED note), so the master evaluates offline. A real build would refuse this value.
CLI_SHA256_STAND_IN = "0" * 64


def _cli_versions(config: Mapping[str, Any]) -> set[str]:
    versions = {PULUMI_CLI_VERSION}
    for key in ("datalake:runner", "datalake:delivery"):
        section = decode_structured(config.get(key))
        if isinstance(section, Mapping) and section.get("pulumiVersion"):
            versions.add(str(section["pulumiVersion"]))
    return versions


def _drain_failed_run() -> None:
    """Lets the tasks a failed program left behind finish before the next run.

    A program that fails inside an `apply` leaves other registrations waiting on the same Output;
    left pending they would fail into the next run's fresh runtime state.
    """
    import asyncio

    loop = asyncio.get_event_loop()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if pending:
        done, not_done = loop.run_until_complete(asyncio.wait(pending, timeout=10))
        for task in not_done:
            task.cancel()
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: no "exception was never retrieved" noise


def run_program(
    config: Mapping[str, Any],
    *,
    stack: str,
    program: Optional[Callable[[], Any]] = None,
    account_id: str = MASTER_ACCOUNT_ID,
    stack_outputs: Optional[Mapping[str, Mapping[str, Any]]] = None,
    invokes: Optional[Mapping[str, InvokeHandler]] = None,
    component_outputs: Optional[Mapping[str, Callable[[str, Mapping[str, Any]], Mapping[str, Any]]]] = None,
    organization: str = DIY_ORGANIZATION,
    cli_checksum_stand_in: bool = True,
) -> Recording:
    """Runs `program` (default: the project's `program.deploy`) for `stack` with `config`.

    `config` uses full keys (`datalake:kind`, `aws:region`); structured values may be dicts or lists.
    `program` may return a component with an `outputs` dict, whose values end up in `Recording.outputs`.
    `organization` is what `pulumi.get_organization()` returns: `organization` (default) on a DIY
    backend, the stack's owner on Pulumi Cloud; stack names and references follow that backend's rules.
    `cli_checksum_stand_in` lends CLI versions without a pinned SHA-256 the `CLI_SHA256_STAND_IN`
    for this run (False: the program sees the repository's table as it is).
    """
    if program is None:
        from program import deploy as program

    region = str(config.get("aws:region", REGION))
    mocks = DatalakeMocks(
        account_id,
        stack_outputs or {},
        {**default_invokes(account_id, region), **(invokes or {})},
        {**default_component_outputs(), **(component_outputs or {})},
        organization=organization,
        region=region,
    )
    check_stack_name(stack)  # `pulumi stack init` refuses any other name
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor, organization=organization
    )
    pulumi.runtime.set_all_config(
        {key: json.dumps(value) if isinstance(value, (dict, list)) else str(value) for key, value in config.items()}
    )
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def evaluate():
        root = program()
        exported = getattr(root, "outputs", None) or {}
        return pulumi.Output.all(**exported).apply(outputs.update)

    from unittest import mock

    stand_ins = {v: CLI_SHA256_STAND_IN for v in _cli_versions(config) if v not in PULUMI_CLI_SHA256} if cli_checksum_stand_in else {}
    with mock.patch.dict(PULUMI_CLI_SHA256, stand_ins):
        try:
            evaluate()
        except BaseException:
            _drain_failed_run()
            raise
    return Recording(
        resources=monitor.recorded,
        outputs=outputs,
        registered_outputs=monitor.registered_outputs,
        generic_arn_types=set(mocks.generic_arn_types),
    )
