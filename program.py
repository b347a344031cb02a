"""The Pulumi program behind `__main__.py`: validated config in, one top-level component out.

Kept importable (``__main__`` is not) so tests and `bench/synth.py` run the very same code under mocks.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.config import MasterConfig, SiloConfig, StackConfig, load_stack_config
from components.iam import partition_of
from components.master import MasterAccount, MasterAccountArgs
from components.silo import SiloAccount, SiloAccountArgs

ORGANIZATIONS_EVENTS_REGION = "us-east-1"


def deploy_role_arn(config: SiloConfig) -> str:
    """ARN of the role the master's credentials assume to deploy into the silo account."""
    return f"arn:{partition_of(config.region)}:iam::{config.account_id}:role/{config.deploy_role_name}"


def silo_provider(config: SiloConfig) -> aws.Provider:
    """The explicit provider every silo resource is created with.

    It assumes the deploy role in the silo account and refuses to act in any other account, so a
    wrong credential can never create silo resources in the master.
    """
    return aws.Provider(
        f"silo-{config.account_id}",
        region=config.region,
        assume_roles=[
            aws.ProviderAssumeRoleArgs(
                role_arn=deploy_role_arn(config),
                session_name=f"pulumi-{pulumi.get_stack()}"[:64],
            )
        ],
        allowed_account_ids=[config.account_id],
        default_tags=aws.ProviderDefaultTagsArgs(tags=config.tags) if config.tags else None,
    )


def master_provider(config: MasterConfig) -> aws.Provider:
    """The master's provider: the caller's own credentials, pinned to the configured region."""
    return aws.Provider(
        "master",
        region=config.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=config.tags) if config.tags else None,
    )


def org_events_provider(config: MasterConfig) -> aws.Provider | None:
    """A us-east-1 provider for the rule that catches Organizations events, which arrive only there."""
    if config.region == ORGANIZATIONS_EVENTS_REGION:
        return None
    return aws.Provider(
        f"master-{ORGANIZATIONS_EVENTS_REGION}",
        region=ORGANIZATIONS_EVENTS_REGION,
        default_tags=aws.ProviderDefaultTagsArgs(tags=config.tags) if config.tags else None,
    )


def deploy(config: StackConfig | None = None) -> pulumi.ComponentResource:
    """Builds the stack's provider and its one top-level component, and exports its outputs."""
    config = config or load_stack_config()
    if isinstance(config, MasterConfig):
        root: pulumi.ComponentResource = MasterAccount(
            "master",
            MasterAccountArgs(config=config, org_events_provider=org_events_provider(config)),
            opts=pulumi.ResourceOptions(providers={"aws": master_provider(config)}),
        )
    else:
        root = SiloAccount(
            f"silo-{config.silo_name}",
            SiloAccountArgs(config=config),
            opts=pulumi.ResourceOptions(providers={"aws": silo_provider(config)}),
        )
    for key, value in root.outputs.items():
        pulumi.export(key, value)
    return root
