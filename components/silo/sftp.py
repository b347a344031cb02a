"""`SftpServer`: the dropzone's SFTP endpoint, AWS Transfer Family with a Lambda identity provider.

Partners log in with the credentials the credential-vending API gave them (partner name and
secret access key, or an SSH key uploaded to their IAM user). The identity provider
(`functions/sftp_auth`) checks them and maps each partner to `/<bucket>/dropzone/<partner>`, with
a session policy narrowed to that prefix, on top of a Transfer role that reaches only the dropzone
bucket and the silo key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .config import DropzoneConfig, SftpConfig
from .dropzone_site import DropzoneFunction, DropzoneSite, FunctionSpec, partner_users_arn
from ..shared.iam import AccountContext, service_trust_policy, statement
from ..shared.logs import encrypted_log_group
from ..shared.network import tcp_ingress
from ..shared.roles import role_with_policy


@dataclass(frozen=True)
class SftpServerArgs:
    """Arguments of `SftpServer`."""

    site: DropzoneSite
    """The silo (account, names, key, tags) and its dropzone bucket."""
    config: SftpConfig = field(default_factory=SftpConfig)
    """The `datalake:sftp` section: endpoint type, its VPC, subnets and client ranges, and the
    Transfer security policy (validated there; default a public endpoint with the current policy).
    `enabled` is the caller's to act on: this component always builds a server."""
    function_log_retention_days: int = DropzoneConfig.model_fields["function_log_retention_days"].default
    """Retention of the identity provider's logs (default the dropzone's, `dropzone.functionLogRetentionDays`)."""


def transfer_trust_policy(account: AccountContext) -> pulumi.Output[str]:
    """Transfer may assume the role, for this account's servers only (confused-deputy guard)."""
    return service_trust_policy(
        "transfer.amazonaws.com",
        {
            "StringEquals": {"aws:SourceAccount": account.account_id},
            "ArnLike": {"aws:SourceArn": account.arn("transfer", "server/*")},
        },
        sid="AllowTransferOfThisAccount",
    )


class SftpServer(pulumi.ComponentResource):
    """Transfer Family SFTP server, its identity-provider Lambda, access role and log group."""

    endpoint: pulumi.Output[str]
    server_id: pulumi.Output[str]

    def __init__(self, name: str, args: SftpServerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:sftp:SftpServer", name, None, opts)
        site = args.site
        tags = site.tags("sftp")
        self.access_role = self._access_role(name, site, tags)
        self.log_group = self._log_group(name, args, tags)
        self.identity_provider = self._identity_provider(name, args, tags)
        endpoint_details = self._vpc_endpoint(name, args, tags) if args.config.endpoint_type == "VPC" else None
        self.server = self._server(name, args, tags, endpoint_details)
        self._allow_server_login(name)

        self.endpoint = self.server.endpoint
        self.server_id = self.server.id
        self.register_outputs({"endpoint": self.endpoint, "serverId": self.server_id})

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _access_role(self, name: str, site: DropzoneSite, tags: dict[str, str]) -> aws.iam.Role:
        """What every SFTP session may reach at most; each login narrows it to the partner's prefix."""
        role, _ = role_with_policy(
            f"{name}-access",
            f"{site.base_name}-sftp-access",
            transfer_trust_policy(site.account),
            site.reach_statements("Dropzone", "dropzone/"),
            tags,
            self._child,
            description=f"Assumed by Transfer for {site.silo_name} dropzone SFTP sessions",
        )
        return role

    def _log_group(self, name: str, args: SftpServerArgs, tags: dict[str, str]) -> aws.cloudwatch.LogGroup:
        # Structured logs (JSON) into a group the stack owns, with retention and the silo key. A
        # logging role would make Transfer write to `/aws/transfer/<server id>`, a name known only
        # after the server exists, and create that group itself without a retention.
        # https://docs.aws.amazon.com/transfer/latest/userguide/log-server-manage.html
        site = args.site
        return encrypted_log_group(
            f"{name}-logs", f"/aws/transfer/{site.base_name}-dropzone", site.key_arn, args.function_log_retention_days, tags, self._child
        )

    def _identity_provider(self, name: str, args: SftpServerArgs, tags: dict[str, str]) -> DropzoneFunction:
        """The Lambda that checks a partner's credentials and maps the session to its prefix."""
        site = args.site
        return DropzoneFunction(
            f"{name}-auth",
            FunctionSpec(
                role="auth",
                package="sftp_auth",
                handler="sftp_auth.handler.handler",
                description=f"SFTP identity provider of the {site.silo_name} dropzone",
                timeout=10,
                environment={
                    "SILO_NAME": site.silo_name,
                    "DROPZONE_BUCKET": site.bucket_name,
                    "KMS_KEY_ARN": site.key_arn,
                    "TRANSFER_ROLE_ARN": self.access_role.arn,
                    **site.namespace_environment(),
                },
                statements=[
                    statement(
                        "ReadPartnerUsers",
                        ["iam:GetUser", "iam:ListUserTags", "iam:ListAccessKeys", "iam:ListSSHPublicKeys", "iam:GetSSHPublicKey"],
                        partner_users_arn(site.account, site.silo_name, site.namespace),
                    )
                ],
            ),
            physical_name=f"{site.base_name}-sftp-auth"[:64],
            account=site.account,
            log_retention_days=args.function_log_retention_days,
            kms_key_arn=site.key_arn,
            tags=tags,
            opts=self._child,
        )

    def _vpc_endpoint(
        self, name: str, args: SftpServerArgs, tags: dict[str, str]
    ) -> aws.transfer.ServerEndpointDetailsArgs:
        """With `endpointType: VPC`: the endpoint's subnets and a security group admitting `allowedCidrs`."""
        security_group = aws.ec2.SecurityGroup(
            f"{name}-security-group",
            name=f"{args.site.base_name}-sftp",
            description=f"SFTP clients allowed to reach the {args.site.silo_name} dropzone",
            vpc_id=args.config.vpc_id,
            ingress=[
                tcp_ingress(
                    "SFTP from allowed clients",
                    22,
                    cidr_blocks=[c for c in args.config.allowed_cidrs if ":" not in c],
                    ipv6_cidr_blocks=[c for c in args.config.allowed_cidrs if ":" in c],
                )
            ],
            egress=[],  # the endpoint only answers; an empty list removes the default allow-all
            tags=tags,
            opts=self._child,
        )
        return aws.transfer.ServerEndpointDetailsArgs(
            vpc_id=args.config.vpc_id, subnet_ids=list(args.config.subnet_ids), security_group_ids=[security_group.id]
        )

    def _server(
        self,
        name: str,
        args: SftpServerArgs,
        tags: dict[str, str],
        endpoint_details: Optional[aws.transfer.ServerEndpointDetailsArgs],
    ) -> aws.transfer.Server:
        return aws.transfer.Server(
            f"{name}-server",
            protocols=["SFTP"],
            identity_provider_type="AWS_LAMBDA",
            function=self.identity_provider.function.arn,
            security_policy_name=args.config.security_policy,
            structured_log_destinations=[pulumi.Output.concat(self.log_group.arn, ":*")],
            endpoint_type=args.config.endpoint_type,
            endpoint_details=endpoint_details,
            domain="S3",
            tags={**tags, "Name": f"{args.site.base_name}-dropzone"},
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(depends_on=[self.log_group])),
        )

    def _allow_server_login(self, name: str) -> None:
        """Only this server may call the identity provider."""
        aws.lambda_.Permission(
            f"{name}-auth-permission",
            action="lambda:InvokeFunction",
            function=self.identity_provider.function.name,
            principal="transfer.amazonaws.com",
            source_arn=self.server.arn,
            opts=self._child,
        )
