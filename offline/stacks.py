"""The shipped stack files as config, and the two programs run against them under mocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.shared.environments import master_stack_file, master_stack_name, resource_prefix, silo_stack_name, silo_template_file
from components.shared.iam import partition_of

from .harness import MASTER_ACCOUNT_ID, REGION, SILO_ACCOUNT_ID, Recording, run_program

PROJECT_DIR = Path(__file__).resolve().parent.parent
SILO_STACK = f"silo-{SILO_ACCOUNT_ID}"


def stack_file_config(name: str, **placeholders: str) -> dict[str, Any]:
    """The `config:` map of a shipped stack file, with `__PLACEHOLDER__` values replaced."""
    data = yaml.safe_load((PROJECT_DIR / name).read_text())["config"]
    result = {}
    for key, value in data.items():
        if isinstance(value, str) and value.startswith("__") and value.endswith("__"):
            value = placeholders[value.strip("_").lower()]
        result[key] = value
    return result


def master_config(environment: str | None = None) -> dict[str, Any]:
    """`Pulumi.master.yaml`, or `Pulumi.master-<env>.yaml` of environment `<env>`."""
    return stack_file_config(master_stack_file(environment))


def silo_config(environment: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The silo template (of `environment`) filled in for `SILO_ACCOUNT_ID` / `sales`, plus `overrides`."""
    config = stack_file_config(silo_template_file(environment), account_id=SILO_ACCOUNT_ID, silo_name="sales")
    config.update(overrides)
    return config


def master_stack_outputs(region: str = REGION, environment: str | None = None) -> dict[str, Any]:
    """What the master stack exports, as a silo's StackReference sees it (a master in `region`: an
    organization and its stacks live in one partition)."""
    cfg = master_config(environment)
    prefix = resource_prefix(cfg["datalake:namePrefix"], environment)
    bucket = f"{prefix}-master-artifacts-{MASTER_ACCOUNT_ID}"
    partition = partition_of(region)
    return {
        "accountId": MASTER_ACCOUNT_ID,
        "artifactBucketName": bucket,
        "artifactBucketArn": f"arn:{partition}:s3:::{bucket}",
        "artifactKeyArn": f"arn:{partition}:kms:{region}:{MASTER_ACCOUNT_ID}:key/master",
        "accessLogBucketName": f"{prefix}-master-access-logs-{MASTER_ACCOUNT_ID}",
        "organizationId": cfg["datalake:organizationId"],
        "siloOuPath": cfg["datalake:siloOuPath"],
        "analyticsOuPath": cfg["datalake:analyticsOuPath"],
        "deployRoleName": cfg["datalake:deployRoleName"],
    }


def run_master(config: dict[str, Any] | None = None, **kwargs: Any) -> Recording:
    config = config or master_config()
    stack = master_stack_name(config.get("datalake:environment"))
    return run_program(config, stack=stack, account_id=MASTER_ACCOUNT_ID, **kwargs)


def run_silo(config: dict[str, Any] | None = None, **kwargs: Any) -> Recording:
    config = config or silo_config()
    environment = config.get("datalake:environment")
    return run_program(
        config,
        stack=silo_stack_name(str(config["datalake:accountId"]), environment),
        account_id=str(config["datalake:accountId"]),
        stack_outputs={config["datalake:masterStack"]: master_stack_outputs(str(config.get("aws:region", REGION)), environment)},
        **kwargs,
    )


# Components of the silo data flow (issue 3). Tests of other silo capabilities (dropzone, SFTP,
# console) look at the silo without them: the data flow has its own REST API, stage, log groups,
# event rules and S3 objects, which would make "the one stage" or "every S3 object" ambiguous there.
DATA_FLOW_COMPONENTS = frozenset(
    {
        "datalake:ingestion:Ingestion",
        "datalake:etl:Etl",
        "datalake:orchestration:Pipeline",
        "datalake:warehouse:Warehouse",
        "datalake:catalog:SiloCatalog",
    }
)


def without_data_flow(recording: Recording) -> Recording:
    """The recording minus the data-flow components, their children and the ETL alert topic."""
    import dataclasses

    def in_data_flow(resource) -> bool:
        chain = [resource, *recording.ancestors(resource)]
        return any(r.type in DATA_FLOW_COMPONENTS or r.name.endswith("-etl-alerts") for r in chain)

    return dataclasses.replace(recording, resources=[r for r in recording.resources if not in_data_flow(r)])
