"""`SiloAccount`: everything one project's data silo holds, deployed into its own account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from .config import SiloConfig
from .console import Console, ConsoleArgs, console_decrypt_statement
from .dropzone import Dropzone, DropzoneArgs, DropzoneSite, audit_log_key_statement
from .iam import AccountContext
from .naming import bucket_output_key
from .sftp import SftpServer, SftpServerArgs
from .storage import SiloStorage, SiloStorageArgs

# Master outputs a silo reads; the master stack must keep exporting them.
MASTER_OUTPUTS = ("artifactBucketName", "artifactKeyArn", "organizationId", "siloOuPath", "analyticsOuPath")


@dataclass(frozen=True)
class SiloAccountArgs:
    """Arguments of `SiloAccount`."""

    config: SiloConfig
    """The validated silo stack configuration."""


class SiloAccount(pulumi.ComponentResource):
    """A silo stack's root component.

    Must be created with `providers={"aws": <assume-role provider into the silo account>}`: every
    child inherits it, so nothing of the silo lands in the master account by accident.
    """

    def __init__(self, name: str, args: SiloAccountArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:silo:SiloAccount", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        account = AccountContext(
            account_id=cfg.account_id,
            partition=aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition,
            region=cfg.region,
        )
        tags = {**cfg.tags, "datalake:silo": cfg.silo_name, "datalake:account": cfg.account_id}

        self.master = pulumi.StackReference(f"{name}-master", stack_name=cfg.master_stack, opts=child)
        self.master_outputs = {key: self.master.require_output(key) for key in MASTER_OUTPUTS}

        storage = cfg.storage
        self.storage = SiloStorage(
            f"{name}-storage",
            SiloStorageArgs(
                account=account,
                name_prefix=cfg.name_prefix,
                silo_name=cfg.silo_name,
                dropzone_expiration_days=storage.dropzone_expiration_days,
                raw_infrequent_access_days=storage.raw_infrequent_access_days,
                noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
                abort_incomplete_multipart_days=storage.abort_incomplete_multipart_days,
                key_policy_statements=[
                    audit_log_key_statement(account, cfg.silo_name),
                    *([console_decrypt_statement(account, cfg.name_prefix, cfg.silo_name)] if cfg.console.enabled else []),
                ],
                tags=tags,
            ),
            opts=child,
        )

        dropzone_bucket = self.storage.buckets["dropzone"]
        site = DropzoneSite(
            account=account,
            name_prefix=cfg.name_prefix,
            silo_name=cfg.silo_name,
            bucket_name=dropzone_bucket.name,
            bucket_arn=dropzone_bucket.arn,
            key_arn=self.storage.key.arn,
        )
        dz = cfg.dropzone
        self.dropzone = Dropzone(
            f"{name}-dropzone",
            DropzoneArgs(
                site=site,
                allowed_origin=dz.allowed_origin,
                audit_log_retention_days=dz.audit_log_retention_days,
                function_log_retention_days=dz.function_log_retention_days,
                upload_max_bytes=dz.upload_max_mb * 1024 * 1024,
                upload_url_seconds=dz.upload_url_seconds,
                janitor_schedule=dz.janitor_schedule,
                mfa=dz.mfa,
                throttle_rate_limit=dz.throttle_rate_limit,
                throttle_burst_limit=dz.throttle_burst_limit,
                tags=tags,
            ),
            opts=child,
        )
        self.sftp: Optional[SftpServer] = None
        if cfg.sftp.enabled:
            self.sftp = SftpServer(
                f"{name}-sftp",
                SftpServerArgs(
                    site=site,
                    security_policy=cfg.sftp.security_policy,
                    endpoint_type=cfg.sftp.endpoint_type,
                    vpc_id=cfg.sftp.vpc_id,
                    subnet_ids=cfg.sftp.subnet_ids,
                    allowed_cidrs=cfg.sftp.allowed_cidrs,
                    function_log_retention_days=dz.function_log_retention_days,
                    tags=tags,
                ),
                opts=child,
            )

        # After the dropzone (its API and user pool) and SFTP: the console only reads them.
        self.console: Optional[Console] = None
        if cfg.console.enabled:
            self.console = Console(
                f"{name}-console",
                ConsoleArgs(
                    account=account,
                    name_prefix=cfg.name_prefix,
                    silo_name=cfg.silo_name,
                    api_url=self.dropzone.api_url,
                    user_pool_id=self.dropzone.user_pool_id,
                    dropzone_bucket_name=dropzone_bucket.name,
                    kms_key_arn=self.storage.key.arn,
                    sftp_host=self.sftp.endpoint if self.sftp is not None else None,
                    access_log_bucket=self.storage.buckets["access-logs"].name,
                    noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
                    price_class=cfg.console.price_class,
                    session_minutes=cfg.console.session_minutes,
                    tags=tags,
                ),
                opts=child,
            )

        self.outputs = {
            "accountId": cfg.account_id,
            "siloName": cfg.silo_name,
            "keyArn": self.storage.key.arn,
            "masterArtifactBucket": self.master_outputs["artifactBucketName"],
            **{bucket_output_key(purpose): bucket.name for purpose, bucket in self.storage.buckets.items()},
            "dropzoneApiUrl": self.dropzone.api_url,
            "dropzoneUserPoolId": self.dropzone.user_pool_id,
            "dropzoneUserPoolClientId": self.dropzone.user_pool_client_id,
        }
        if self.sftp is not None:
            self.outputs["sftpEndpoint"] = self.sftp.endpoint
        if self.console is not None:
            self.outputs["consoleUrl"] = self.console.url
        self.register_outputs(self.outputs)
