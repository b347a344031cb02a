"""`Warehouse`: Redshift Serverless in a private VPC, the Athena workgroup, optionally QuickSight.

Cost when idle is the design constraint (a silo nobody queries should cost next to nothing):
- Redshift Serverless bills RPU-seconds only while it runs queries; storage is billed per GB.
- The VPC has isolated subnets only: no NAT gateway (~$32/month each), no internet gateway.
- The Redshift `COPY` reads S3 through a *gateway* endpoint, which is free; enhanced VPC routing
  forces that traffic through the VPC, where the endpoint policy allows only the processed bucket.
- Nothing else needs the VPC: Step Functions calls the Redshift Data API (a public AWS endpoint), the
  admin password lives in Secrets Manager managed by Redshift itself, the Glue job runs outside the
  VPC. Interface endpoints (~$7/month per AZ each) are therefore opt-in (`interfaceEndpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_awsx as awsx

from ..shared.iam import AccountContext, Statement, kms_via_service, policy_json, principal_in_ou, service_trust_policy, statement
from ..shared.logs import encrypted_log_group
from ..shared.naming import bounded_name, catalog_name
from ..shared.network import tcp_egress, tcp_ingress
from ..shared.roles import role_with_policy
from ..shared.context import SiloContext
from .config import WarehouseConfig

REDSHIFT_PORT = 5439
# What the namespace exports to CloudWatch Logs: connections, user changes, each query.
LOG_EXPORTS = ("userlog", "connectionlog", "useractivitylog")


def redshift_log_group_name(namespace: str, log_type: str) -> str:
    """`/aws/redshift/<namespace>/<log type>`, where Redshift Serverless exports a log type; it uses
    an existing group of that name, and otherwise creates one that never expires
    (https://docs.aws.amazon.com/redshift/latest/mgmt/serverless-audit-logging.html)."""
    return f"/aws/redshift/{namespace}/{log_type}"
# Redshift Serverless requires subnets in at least three Availability Zones.
AVAILABILITY_ZONES = 3


def copy_role_statements(
    account: AccountContext, processed_bucket_arn: pulumi.Input[str], kms_key_arn: pulumi.Input[str]
) -> list[Statement]:
    """The `COPY` role: read the processed bucket, decrypt through S3. Nothing else."""
    return [
        statement("ListProcessedBucket", ["s3:ListBucket", "s3:GetBucketLocation"], processed_bucket_arn),
        statement("ReadProcessedObjects", "s3:GetObject", pulumi.Output.concat(processed_bucket_arn, "/*")),
        statement(
            "DecryptProcessedThroughS3",
            "kms:Decrypt",
            kms_key_arn,
            conditions={"StringEquals": {"kms:ViaService": kms_via_service("s3", account.region)}},
        ),
    ]


def s3_endpoint_statements(
    account: AccountContext, processed_bucket_arn: pulumi.Input[str], silo_ou_path: str
) -> list[Statement]:
    """Gateway endpoint policy: traffic from the warehouse VPC may only read the processed bucket,
    and only with credentials of this silo account (the COPY role)."""
    return [
        statement(
            "WarehouseReadsProcessedOnly",
            ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"],
            [processed_bucket_arn, pulumi.Output.concat(processed_bucket_arn, "/*")],
            principal={"AWS": "*"},
            conditions={
                **principal_in_ou(silo_ou_path),
                "StringEquals": {"aws:PrincipalAccount": account.account_id},
            },
        )
    ]


@dataclass(frozen=True)
class WarehouseArgs:
    """Arguments of `Warehouse`."""

    context: SiloContext
    """The silo: account, names, key and tags (`SiloAccount` passes its own)."""
    processed_bucket_arn: pulumi.Input[str]
    """Bucket `COPY` loads from."""
    silo_ou_path: str
    """OU path of the silo accounts (`o-…/r-…/ou-…/`): the S3 endpoint serves only their principals."""
    athena_results_bucket_name: pulumi.Input[str]
    """Bucket Athena writes results to."""
    config: WarehouseConfig = field(default_factory=WarehouseConfig)
    """The `datalake:warehouse` section: Redshift capacity, VPC CIDR, interface endpoints, the Athena
    scan limit, the QuickSight data source and the exported logs' retention (default: its defaults)."""


class Warehouse(pulumi.ComponentResource):
    """The silo's query side: Redshift Serverless (namespace, workgroup, COPY role) and Athena."""

    vpc: awsx.ec2.Vpc
    namespace: aws.redshiftserverless.Namespace
    workgroup: aws.redshiftserverless.Workgroup
    copy_role: aws.iam.Role
    athena_workgroup: aws.athena.Workgroup
    database_name: str

    def __init__(self, name: str, args: WarehouseArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:warehouse:Warehouse", name, None, opts)
        self.vpc = self._vpc(name, args)
        s3_endpoint = self._s3_endpoint(name, args)
        security_group = self._redshift_security_group(name, args, s3_endpoint)
        if args.config.interface_endpoints:
            self._interface_endpoints(name, args)
        self.copy_role, copy_policy = self._copy_role(name, args)
        self.database_name = catalog_name(args.context.silo_name)
        self.log_groups = self._log_groups(name, args)
        self.namespace = self._namespace(name, args, depends_on=[copy_policy, *self.log_groups.values()])
        self.workgroup = self._workgroup(name, args, security_group, s3_endpoint)
        self.athena_workgroup = self._athena_workgroup(name, args)

        outputs: dict[str, pulumi.Input[str]] = {
            "vpcId": self.vpc.vpc_id,
            "namespace": self.namespace.namespace_name,
            "workgroup": self.workgroup.workgroup_name,
            "database": self.database_name,
            "copyRoleArn": self.copy_role.arn,
            "athenaWorkgroup": self.athena_workgroup.name,
        }
        if args.config.quicksight.enabled:
            outputs["quicksightDataSourceArn"] = self._quicksight_source(name, args).arn
        self.register_outputs(outputs)

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _vpc(self, name: str, args: WarehouseArgs) -> awsx.ec2.Vpc:
        """Isolated subnets only: no NAT gateway, no internet gateway."""
        return awsx.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.config.vpc_cidr,
            number_of_availability_zones=AVAILABILITY_ZONES,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            nat_gateways=awsx.ec2.NatGatewayConfigurationArgs(strategy=awsx.ec2.NatGatewayStrategy.NONE),
            subnet_strategy=awsx.ec2.SubnetAllocationStrategy.AUTO,
            subnet_specs=[awsx.ec2.SubnetSpecArgs(type=awsx.ec2.SubnetType.ISOLATED, name="warehouse", cidr_mask=24)],
            tags={**args.context.tags, "Name": f"{args.context.base_name}-warehouse"},
            opts=self._child,
        )

    def _s3_endpoint(self, name: str, args: WarehouseArgs) -> aws.ec2.VpcEndpoint:
        """The free gateway endpoint `COPY` reads the processed bucket through (and nothing else)."""
        # awsx does not attach gateway endpoints to its route tables (pulumi-awsx#1627): look them up
        # once the VPC and everything in it exist.
        route_tables = aws.ec2.get_route_tables_output(
            vpc_id=self.vpc.vpc_id, opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[self.vpc])
        )
        return aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=self.vpc.vpc_id,
            service_name=self._endpoint_service_name("s3", "Gateway"),
            vpc_endpoint_type="Gateway",
            route_table_ids=route_tables.ids,
            policy=policy_json(s3_endpoint_statements(args.context.account, args.processed_bucket_arn, args.silo_ou_path)),
            tags={**args.context.tags, "Name": f"{args.context.base_name}-s3"},
            opts=self._child,
        )

    def _endpoint_service_name(self, service: str, service_type: str) -> pulumi.Output[str]:
        # Endpoint service names differ by partition (China mixes `com.amazonaws.` and
        # `cn.com.amazonaws.` prefixes): ask EC2 for the region's name instead of spelling it.
        return aws.ec2.get_vpc_endpoint_service_output(
            service=service, service_type=service_type, opts=pulumi.InvokeOutputOptions(parent=self)
        ).service_name

    def _redshift_security_group(
        self, name: str, args: WarehouseArgs, s3_endpoint: aws.ec2.VpcEndpoint
    ) -> aws.ec2.SecurityGroup:
        """Redshift clients from inside the VPC only; out to S3 (and the interface endpoints) only."""
        egress = [
            tcp_egress("COPY reads S3 through the gateway endpoint", 443, prefix_list_ids=[s3_endpoint.prefix_list_id])
        ]
        if args.config.interface_endpoints:
            egress.append(tcp_egress("Interface endpoints inside the VPC", 443, cidr_blocks=[args.config.vpc_cidr]))
        return aws.ec2.SecurityGroup(
            f"{name}-redshift-sg",
            name=f"{args.context.base_name}-redshift",
            description="Redshift Serverless: clients from inside the VPC only",
            vpc_id=self.vpc.vpc_id,
            ingress=[tcp_ingress("Redshift from inside the VPC", REDSHIFT_PORT, cidr_blocks=[args.config.vpc_cidr])],
            egress=egress,
            tags=args.context.tags,
            opts=self._child,
        )

    def _interface_endpoints(self, name: str, args: WarehouseArgs) -> None:
        """The opt-in `interfaceEndpoints`, with their own security group (HTTPS from the VPC)."""
        base, tags = args.context.base_name, args.context.tags
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            name=f"{base}-endpoints",
            description="Interface endpoints: HTTPS from inside the VPC",
            vpc_id=self.vpc.vpc_id,
            ingress=[tcp_ingress("HTTPS from the VPC", 443, cidr_blocks=[args.config.vpc_cidr])],
            tags=tags,
            opts=self._child,
        )
        for service in args.config.interface_endpoints:
            aws.ec2.VpcEndpoint(
                f"{name}-{service}-endpoint",
                vpc_id=self.vpc.vpc_id,
                service_name=self._endpoint_service_name(service, "Interface"),
                vpc_endpoint_type="Interface",
                subnet_ids=self.vpc.isolated_subnet_ids,
                security_group_ids=[endpoint_sg.id],
                private_dns_enabled=True,
                tags={**tags, "Name": f"{base}-{service}"},
                opts=self._child,
            )

    def _copy_role(self, name: str, args: WarehouseArgs) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        account = args.context.account
        return role_with_policy(
            f"{name}-copy",
            physical_name=bounded_name(args.context.base_name, "redshift-copy"),
            trust_policy=service_trust_policy(
                ["redshift.amazonaws.com", "redshift-serverless.amazonaws.com"],
                {"StringEquals": {"aws:SourceAccount": account.account_id}},
            ),
            statements=copy_role_statements(account, args.processed_bucket_arn, args.context.key),
            tags=args.context.tags,
            opts=self._child,
        )

    def _log_groups(self, name: str, args: WarehouseArgs) -> dict[str, aws.cloudwatch.LogGroup]:
        """The groups the namespace exports to (`LOG_EXPORTS`), made first so they get a retention."""
        context = args.context
        return {
            log_type: encrypted_log_group(
                f"{name}-{log_type}",
                redshift_log_group_name(context.base_name, log_type),
                context.key,
                args.config.log_retention_days,
                context.tags,
                self._child,
            )
            for log_type in LOG_EXPORTS
        }

    def _namespace(
        self, name: str, args: WarehouseArgs, depends_on: list[pulumi.Resource]
    ) -> aws.redshiftserverless.Namespace:
        context = args.context
        return aws.redshiftserverless.Namespace(
            f"{name}-namespace",
            namespace_name=context.base_name,
            db_name=self.database_name,
            admin_username="datalake_admin",
            # Redshift creates and rotates the password in Secrets Manager: never in config or state.
            manage_admin_password=True,
            admin_password_secret_kms_key_id=context.key,
            kms_key_id=context.key,
            iam_roles=[self.copy_role.arn],
            default_iam_role_arn=self.copy_role.arn,
            log_exports=list(LOG_EXPORTS),
            tags=context.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )

    def _workgroup(
        self,
        name: str,
        args: WarehouseArgs,
        security_group: aws.ec2.SecurityGroup,
        s3_endpoint: aws.ec2.VpcEndpoint,
    ) -> aws.redshiftserverless.Workgroup:
        """The namespace's compute in the isolated subnets, its S3 traffic forced through the endpoint."""
        return aws.redshiftserverless.Workgroup(
            f"{name}-workgroup",
            workgroup_name=args.context.base_name,
            namespace_name=self.namespace.namespace_name,
            base_capacity=args.config.base_capacity,
            max_capacity=args.config.max_capacity,
            subnet_ids=self.vpc.isolated_subnet_ids,
            security_group_ids=[security_group.id],
            publicly_accessible=False,
            enhanced_vpc_routing=True,
            tags=args.context.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[s3_endpoint]),
        )

    def _athena_workgroup(self, name: str, args: WarehouseArgs) -> aws.athena.Workgroup:
        context = args.context
        return aws.athena.Workgroup(
            f"{name}-athena",
            name=context.base_name,
            description=f"Silo {context.silo_name}: queries on the processed database; results encrypted",
            state="ENABLED",
            configuration=aws.athena.WorkgroupConfigurationArgs(
                enforce_workgroup_configuration=True,
                publish_cloudwatch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=args.config.athena_bytes_scanned_cutoff_gib * 1024**3,
                result_configuration=aws.athena.WorkgroupConfigurationResultConfigurationArgs(
                    output_location=pulumi.Output.concat("s3://", args.athena_results_bucket_name, "/"),
                    expected_bucket_owner=context.account.account_id,
                    encryption_configuration=aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                        encryption_option="SSE_KMS", kms_key_arn=context.key
                    ),
                    acl_configuration=aws.athena.WorkgroupConfigurationResultConfigurationAclConfigurationArgs(
                        s3_acl_option="BUCKET_OWNER_FULL_CONTROL"
                    ),
                ),
            ),
            tags=context.tags,
            opts=self._child,
        )

    def _quicksight_source(self, name: str, args: WarehouseArgs) -> aws.quicksight.DataSource:
        """A QuickSight data source on the Athena workgroup, owned by `quicksight.ownerArn` if given."""
        base = args.context.base_name
        owner_arn = args.config.quicksight.owner_arn
        permissions = (
            [
                aws.quicksight.DataSourcePermissionArgs(
                    principal=owner_arn,
                    actions=[
                        "quicksight:DescribeDataSource",
                        "quicksight:DescribeDataSourcePermissions",
                        "quicksight:PassDataSource",
                        "quicksight:UpdateDataSource",
                        "quicksight:DeleteDataSource",
                        "quicksight:UpdateDataSourcePermissions",
                    ],
                )
            ]
            if owner_arn
            else None
        )
        return aws.quicksight.DataSource(
            f"{name}-quicksight",
            data_source_id=f"{base}-athena",
            name=f"{base} (Athena)",
            aws_account_id=args.context.account.account_id,
            type="ATHENA",
            parameters=aws.quicksight.DataSourceParametersArgs(
                athena=aws.quicksight.DataSourceParametersAthenaArgs(work_group=self.athena_workgroup.name)
            ),
            ssl_properties=aws.quicksight.DataSourceSslPropertiesArgs(disable_ssl=False),
            permissions=permissions,
            tags=args.context.tags,
            opts=self._child,
        )
