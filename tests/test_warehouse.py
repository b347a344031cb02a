"""Warehouse: Redshift Serverless in a NAT-less VPC, Athena workgroup, optional QuickSight."""

from __future__ import annotations

import pytest

from offline.harness import SILO_ACCOUNT_ID, Recording
from offline.stacks import run_silo, silo_config

PROCESSED_ARN = f"arn:aws:s3:::acme-dl-sales-processed-{SILO_ACCOUNT_ID}"


@pytest.fixture(scope="module")
def silo(evaluations) -> Recording:
    return evaluations.silo()


def with_warehouse(**settings) -> Recording:
    config = silo_config()
    config["datalake:warehouse"] = {**config["datalake:warehouse"], **settings}
    return run_silo(config)


def test_vpc_has_isolated_subnets_in_three_zones_and_no_nat(silo):
    vpc = silo.one("awsx:ec2:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.20.0.0/16"
    assert vpc.inputs["numberOfAvailabilityZones"] == 3
    assert vpc.inputs["natGateways"] == {"strategy": "None"}
    assert [spec["type"] for spec in vpc.inputs["subnetSpecs"]] == ["Isolated"]
    assert silo.of_type("aws:ec2/natGateway:NatGateway") == []


def test_s3_gateway_endpoint_is_on_the_vpc_route_tables_and_reads_only_processed(silo):
    (endpoint,) = silo.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    vpc = silo.one("awsx:ec2:Vpc")
    assert (endpoint.inputs["vpcEndpointType"], endpoint.inputs["serviceName"]) == ("Gateway", "com.amazonaws.eu-west-1.s3")
    assert endpoint.inputs["vpcId"] == vpc.outputs["vpcId"]
    assert endpoint.inputs["routeTableIds"] == [f"rtb-{vpc.outputs['vpcId']}-{i}" for i in range(3)]
    (statement,) = endpoint.policy()["Statement"]
    assert statement["Resource"] == [PROCESSED_ARN, f"{PROCESSED_ARN}/*"]
    assert all(action.startswith(("s3:Get", "s3:List")) for action in statement["Action"])


def test_interface_endpoints_only_when_configured():
    silo = with_warehouse(interfaceEndpoints=["secretsmanager", "glue"])
    interface = [e for e in silo.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs["vpcEndpointType"] == "Interface"]
    assert sorted(e.inputs["serviceName"] for e in interface) == [
        "com.amazonaws.eu-west-1.glue",
        "com.amazonaws.eu-west-1.secretsmanager",
    ]
    vpc = silo.one("awsx:ec2:Vpc")
    for endpoint in interface:
        assert endpoint.inputs["subnetIds"] == vpc.outputs["isolatedSubnetIds"]
        assert endpoint.inputs["privateDnsEnabled"] is True


def test_redshift_password_is_managed_by_secrets_manager_never_in_config(silo):
    namespace = silo.one("aws:redshiftserverless/namespace:Namespace")
    key = silo.one("aws:kms/key:Key").outputs["arn"]
    assert namespace.inputs["manageAdminPassword"] is True
    assert "adminUserPassword" not in namespace.inputs
    assert namespace.inputs["adminPasswordSecretKmsKeyId"] == key
    assert namespace.inputs["kmsKeyId"] == key
    copy_role = silo.one("aws:iam/role:Role", "silo-sales-warehouse-copy-role").outputs["arn"]
    assert namespace.inputs["iamRoles"] == [copy_role]


def test_workgroup_is_private_in_the_isolated_subnets_with_configured_capacity(silo):
    workgroup = silo.one("aws:redshiftserverless/workgroup:Workgroup")
    vpc = silo.one("awsx:ec2:Vpc")
    assert workgroup.inputs["subnetIds"] == vpc.outputs["isolatedSubnetIds"]
    assert len(workgroup.inputs["subnetIds"]) == 3
    assert workgroup.inputs["publiclyAccessible"] is False
    assert workgroup.inputs["enhancedVpcRouting"] is True
    assert (workgroup.inputs["baseCapacity"], workgroup.inputs["maxCapacity"]) == (8, 64)
    assert with_warehouse(baseCapacity=32, maxCapacity=128).one(
        "aws:redshiftserverless/workgroup:Workgroup"
    ).inputs["baseCapacity"] == 32


def test_redshift_accepts_connections_from_inside_the_vpc_only(silo):
    group = silo.one("aws:ec2/securityGroup:SecurityGroup")
    (ingress,) = group.inputs["ingress"]
    assert (ingress["fromPort"], ingress["toPort"], ingress["cidrBlocks"]) == (5439, 5439, ["10.20.0.0/16"])
    (egress,) = group.inputs["egress"]
    assert egress["toPort"] == 443 and "cidrBlocks" not in egress  # only the S3 prefix list


def test_copy_role_reads_only_the_processed_bucket(silo):
    role = silo.one("aws:iam/role:Role", "silo-sales-warehouse-copy-role")
    trust = role.policy("assumeRolePolicy")["Statement"][0]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": SILO_ACCOUNT_ID}}
    policy = silo.one("aws:iam/rolePolicy:RolePolicy", "silo-sales-warehouse-copy-policy")
    resources = {r for s in policy.policy()["Statement"] for r in s["Resource"]}
    assert resources == {PROCESSED_ARN, f"{PROCESSED_ARN}/*", silo.one("aws:kms/key:Key").outputs["arn"]}
    assert "s3:PutObject" not in {a for s in policy.policy()["Statement"] for a in s["Action"]}


def test_athena_workgroup_enforces_encrypted_results_in_the_results_bucket(silo):
    config = silo.one("aws:athena/workgroup:Workgroup").inputs["configuration"]
    assert config["enforceWorkgroupConfiguration"] is True
    assert config["bytesScannedCutoffPerQuery"] == 10 * 1024**3
    results = config["resultConfiguration"]
    assert results["outputLocation"] == f"s3://acme-dl-sales-athena-results-{SILO_ACCOUNT_ID}/"
    assert results["encryptionConfiguration"] == {
        "encryptionOption": "SSE_KMS",
        "kmsKeyArn": silo.one("aws:kms/key:Key").outputs["arn"],
    }
    assert results["expectedBucketOwner"] == SILO_ACCOUNT_ID


def test_quicksight_is_off_by_default_and_uses_the_athena_workgroup_when_on(silo):
    assert silo.of_type("aws:quicksight/dataSource:DataSource") == []
    owner = f"arn:aws:quicksight:eu-west-1:{SILO_ACCOUNT_ID}:group/default/analysts"
    on = with_warehouse(quicksight={"enabled": True, "ownerArn": owner})
    source = on.one("aws:quicksight/dataSource:DataSource")
    assert source.inputs["type"] == "ATHENA"
    assert source.inputs["parameters"]["athena"]["workGroup"] == on.one("aws:athena/workgroup:Workgroup").outputs["name"]
    assert source.inputs["permissions"][0]["principal"] == owner
