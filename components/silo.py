"""`SiloAccount`: everything one project's data silo holds, deployed into its own account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from .config import SiloConfig
from .iam import AccountContext
from .naming import bucket_output_key
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
        }
        self.register_outputs(self.outputs)
