"""The programs in the aws-cn and aws-us-gov partitions: every ARN, endpoint and Step Functions
integration follows the region's partition, and what cannot exist there is refused in config.

Under mocks the partition invoke answers as AWS does for the configured region, so a hard-coded
`arn:aws:` or `.amazonaws.com` endpoint shows up in the recorded inputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError
from components.shared.iam import dns_suffix_of
from functions.dropzone_partners.partners import Dropzone
from offline.harness import SILO_ACCOUNT_ID, Recording, default_invokes
from offline.sdk_contract import check_definition, definitions_of
from offline.stacks import SILO_STACK, master_config, run_master, run_silo, silo_config

PARTITIONS = {"cn-north-1": "aws-cn", "us-gov-west-1": "aws-us-gov"}

# Keys whose values are service principals or KMS ViaService names: `<service>.amazonaws.com` in every
# partition (AWS KMS guide: "Use the .amazonaws.com suffix ... in all AWS partitions"; service
# principals are standardized to `<service>.amazonaws.com`), unlike endpoints and URLs.
PRINCIPAL_KEYS = frozenset({"Service", "principal", "kms:ViaService", "eventSource"})


def strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(nearest key, text) of every string in `value`, JSON documents (policies, definitions) opened."""
    if isinstance(value, str):
        if value.lstrip()[:1] in ("{", "["):
            try:
                yield from strings(json.loads(value), key)
                return
            except ValueError:
                pass
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v, key)


def recorded_strings(recording: Recording) -> Iterator[tuple[str, str, str]]:
    for resource in recording.resources:
        for key, text in strings(resource.inputs):
            yield resource.urn, key, text
    for key, text in strings(recording.outputs):
        yield "stack outputs", key, text


def partition_problems(recording: Recording, partition: str) -> list[str]:
    problems = []
    for urn, key, text in recorded_strings(recording):
        if re.search(r"\barn:aws:", text):
            problems.append(f"{urn} {key}: {text!r} names partition aws")
        if key in PRINCIPAL_KEYS:
            if re.search(r"amazonaws\.com\.cn\b", text):
                problems.append(f"{urn} {key}: {text!r}: principals and ViaService names end in .amazonaws.com")
        elif dns_suffix_of(partition) == "amazonaws.com.cn" and re.search(r"amazonaws\.com(?!\.cn)", text):
            problems.append(f"{urn} {key}: {text!r} uses the endpoint domain of another partition")
    return problems


def silo_in(region: str) -> dict[str, Any]:
    # SFTP on (opt-in) so its server, role and endpoint are covered too; the console cannot exist here.
    return silo_config(**{
        "aws:region": region,
        "datalake:console": {"enabled": False},
        "datalake:sftp": {"enabled": True, "endpointType": "PUBLIC"},
    })


def master_in(region: str) -> dict[str, Any]:
    return {**master_config(), "aws:region": region}


@pytest.fixture(scope="module", params=sorted(PARTITIONS))
def region(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def silo(region) -> Recording:
    return run_silo(silo_in(region))


@pytest.fixture(scope="module")
def master(region) -> Recording:
    return run_master(master_in(region))


def test_no_silo_input_names_another_partition(silo, region):
    assert partition_problems(silo, PARTITIONS[region]) == []


def test_no_master_input_names_another_partition(master, region):
    assert partition_problems(master, PARTITIONS[region]) == []


def test_the_scan_would_see_a_hard_coded_partition(silo, region):
    # The scan reads every input; a commercial ARN or endpoint among them is reported.
    resource = silo.resources[-1]
    resource.inputs["probe"] = {"Resource": "arn:aws:states:::sns:publish", "Url": "https://x.execute-api.cn-north-1.amazonaws.com/p"}
    try:
        problems = partition_problems(silo, PARTITIONS[region])
    finally:
        del resource.inputs["probe"]
    assert any("names partition aws" in p for p in problems)
    assert any("endpoint domain" in p for p in problems) == (region == "cn-north-1")


def test_the_pipelines_integrations_use_the_partition(silo, region):
    ((_, definition),) = definitions_of(silo)
    resources = {s["Resource"] for s in definition["States"].values() if s["Type"] == "Task"}
    assert resources and all(r.startswith(f"arn:{PARTITIONS[region]}:states:::") for r in resources)
    assert check_definition(definition, partition=PARTITIONS[region]) == []


def test_kms_via_service_keeps_the_amazonaws_com_suffix_in_every_partition(silo, region):
    grants = [
        s for _, _, d in silo.policies() for s in d["Statement"]
        if "kms:ViaService" in json.dumps(s.get("Condition", {}))
    ]
    assert grants
    assert {s["Condition"]["StringEquals"]["kms:ViaService"] for s in grants} == {f"s3.{region}.amazonaws.com"}


def test_the_ingestion_endpoint_uses_the_partitions_domain(silo, region):
    api = silo.one("aws:apigateway/restApi:RestApi", "silo-sales-ingestion-api")
    expected = f"https://{api.outputs['id']}.execute-api.{region}.{dns_suffix_of(PARTITIONS[region])}/v1"
    assert silo.outputs["ingestionEndpoint"] == expected


def test_vpc_endpoint_service_names_are_ec2s_answer_not_spelt(silo, region):
    # China mixes `com.amazonaws.` and `cn.com.amazonaws.` service names; the program asks EC2.
    ask = default_invokes(SILO_ACCOUNT_ID, region)["aws:ec2/getVpcEndpointService:getVpcEndpointService"]
    (endpoint,) = [e for e in silo.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs["vpcEndpointType"] == "Gateway"]
    assert endpoint.inputs["serviceName"] == ask({"service": "s3", "serviceType": "Gateway"})["serviceName"]
    assert endpoint.inputs["serviceName"].startswith("cn.com.amazonaws." if region.startswith("cn-") else "com.amazonaws.")


def test_the_partner_policy_lambda_side_uses_the_same_via_service_rule(region):
    # functions/ ship without components/: the handler spells the rule, this pins it to the helper.
    zone = Dropzone(silo="sales", bucket="b", key_arn=f"arn:{PARTITIONS[region]}:kms:{region}:{SILO_ACCOUNT_ID}:key/k")
    statement = next(s for s in zone.access_policy("acme")["Statement"] if s["Sid"] == "UseSiloKeyThroughS3")
    via = statement["Condition"]["StringEquals"]["kms:ViaService"]
    assert via == f"s3.{region}.amazonaws.com"
    assert statement["Resource"] == [zone.key_arn]


# --- what cannot exist in a partition is refused, naming the key and the fix -------------------


@pytest.mark.parametrize("region, reason", [("cn-north-1", "ICP recordal"), ("us-gov-west-1", "outside the AWS GovCloud (US)")])
def test_the_console_is_refused_where_cloudfront_cannot_serve_it(region, reason):
    config = silo_config(**{"aws:region": region})
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(SILO_STACK, config)
    message = str(raised.value)
    assert "datalake:console.enabled is true" in message and reason in message
    assert "Set datalake:console.enabled to false" in message
    parse_stack_config(SILO_STACK, silo_in(region))  # and accepted without it


def test_isolated_partitions_are_refused():
    with pytest.raises(ConfigError) as raised:
        parse_stack_config("master", master_in("us-iso-east-1"))
    assert "aws:region: got 'us-iso-east-1', a region of an isolated partition" in str(raised.value)
