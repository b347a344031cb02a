"""The Pulumi program behind `__main__.py`: validated config in, one top-level component out.

Kept importable (``__main__`` is not) so tests and `bench/synth.py` run the very same code under mocks.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from pathlib import Path

import yaml

from components.master.config import MasterConfig
from components.silo.config import SiloConfig
from components.stack_config import StackConfig, load_stack_config
from components.shared.environments import environment_problem, master_stack_name, silo_settings_dir, silo_stack_name, silo_template_file
from components.shared.errors import ConfigError
from components.silo.settings import REGION_KEY, SiloSettings, silo_regions
from components.shared.iam import partition_of
from components.master.account import MasterAccount, MasterAccountArgs
from components.silo.account import SiloAccount, SiloAccountArgs

ORGANIZATIONS_EVENTS_REGION = "us-east-1"
PROJECT_DIR = Path(__file__).resolve().parent


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


def check_stack_of_environment(config: StackConfig, stack: str) -> None:
    """The stack's name and `datalake:environment` must agree, so that a stack file copied to another
    environment's name cannot deploy the default environment's names a second time (or the reverse)."""
    environment = config.environment
    expected = master_stack_name(environment) if isinstance(config, MasterConfig) else silo_stack_name(config.account_id, environment)
    claims = stack_environment(stack, config)
    if environment is None and claims is None:
        return  # a default-environment stack may have another name, as before environments existed
    if stack != expected:
        raise ConfigError(
            stack,
            [
                f"datalake:environment: is {environment or 'not set (the default environment)'!s}, so this stack must be "
                f"named {expected!r}; name the stack so, or set datalake:environment"
                + (f", for example: datalake:environment: {claims}" if claims else "")
            ],
        )


def stack_environment(stack: str, config: StackConfig) -> str | None:
    """The environment a stack's name claims (`master-stg`, `silo-stg-<id>` → `stg`), else None."""
    if isinstance(config, MasterConfig):
        claimed = stack[len("master-"):] if stack.startswith("master-") else ""
    else:
        middle = stack[len("silo-"):].rsplit("-", 1)
        claimed = middle[0] if stack.startswith("silo-") and len(middle) == 2 and middle[1] == config.account_id else ""
    return claimed if claimed and environment_problem(claimed) is None else None


def regional_providers(config: MasterConfig, regions: set[str], org_events: aws.Provider | None) -> dict[str, aws.Provider]:
    """One provider per region besides the master's where silo settings may put a silo."""
    providers = {}
    for region in sorted(regions - {config.region}):
        if region == ORGANIZATIONS_EVENTS_REGION and org_events is not None:
            providers[region] = org_events  # the same account and region: one provider, not two with one name
            continue
        providers[region] = aws.Provider(
            f"master-{region}",
            region=region,
            default_tags=aws.ProviderDefaultTagsArgs(tags=config.tags) if config.tags else None,
        )
    return providers


def silo_region_reader(config: MasterConfig, provider: aws.Provider, project_dir: Path | None = None):
    """(every region the environment's silo settings name, account id → its silo's region).

    The master reads the same files the runner renders silo configs from (template, profiles,
    account files); a profile is chosen by the account's tag, read from Organizations only when some
    profile moves silos to another region.
    """
    project_dir = project_dir or PROJECT_DIR
    template_path = project_dir / silo_template_file(config.environment)
    if not template_path.is_file():
        return set(), None
    template = (yaml.safe_load(template_path.read_text()) or {}).get("config") or {}
    settings = SiloSettings.load(project_dir / silo_settings_dir(config.environment))
    files = [template, *(f.config for f in settings.all_files())]
    regions = {str(layer[REGION_KEY]) for layer in files if REGION_KEY in layer}
    tag = config.runner.profile_tag

    def profile_of(account_id: str) -> str:
        result = aws.organizations.get_resource_tags(resource_id=account_id, opts=pulumi.InvokeOptions(provider=provider))
        return str((result.tags or {}).get(tag, "")).strip()

    return regions, lambda account_id: silo_regions(template, settings, [account_id], profile_of)[account_id]


def deploy(config: StackConfig | None = None) -> pulumi.ComponentResource:
    """Builds the stack's provider and its one top-level component, and exports its outputs."""
    config = config or load_stack_config()
    check_stack_of_environment(config, pulumi.get_stack())
    if isinstance(config, MasterConfig):
        provider = master_provider(config)
        org_events = org_events_provider(config)
        regions, region_of = silo_region_reader(config, provider)
        root: pulumi.ComponentResource = MasterAccount(
            "master",
            MasterAccountArgs(
                config=config,
                org_events_provider=org_events,
                regional_providers=regional_providers(config, regions, org_events),
                silo_region_of=region_of,
            ),
            opts=pulumi.ResourceOptions(providers={"aws": provider}),
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
