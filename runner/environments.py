"""`python -m runner --env <env>`: which files a run reads, and the checks that keep environments apart.

The names are in `components/shared/environments.py`. A run of environment `<env>` reads
`Pulumi.master-<env>.yaml`, `Pulumi.silo-template-<env>.yaml` and `silos-<env>/`, sees only the
stacks `silo-<env>-<account-id>` and creates only those. Without `--env` (and without
`$DATALAKE_ENVIRONMENT`, which the runner's CodeBuild project of a named environment sets) it is
the default environment, exactly as before environments existed.

Before anything is listed, a run refuses:
- a master file or template whose `datalake:environment` is not the run's (a copied file would
  otherwise deploy one environment's names under another's stacks);
- another environment whose silo OU is the same as this one's, or nested in it (or the reverse):
  discovery walks the OU recursively, so one runner would adopt the other environment's accounts.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import yaml

from components.shared.environments import environment_problem, master_stack_file, silo_settings_dir, silo_template_file
from components.shared.errors import UsageError

ENVIRONMENT_VARIABLE = "DATALAKE_ENVIRONMENT"
ENVIRONMENT_KEY = "datalake:environment"


def add_environment_argument(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """`--env NAME` before the command (`python -m runner --env staging plan`) or after it."""
    help_text = f"environment to act on (default ${ENVIRONMENT_VARIABLE}, else the default environment)"
    parser.add_argument("--env", default=os.environ.get(ENVIRONMENT_VARIABLE) or None, help=help_text)
    common.add_argument("--env", default=argparse.SUPPRESS, help=help_text)


def environment_of(args: argparse.Namespace) -> Optional[str]:
    """The run's environment (None: the default one), or a `UsageError` naming a right value."""
    name = getattr(args, "env", None) or None
    if name is None:
        return None
    problem = environment_problem(name)
    if problem:
        raise UsageError(f"--env {name!r}: {problem.removeprefix(f'got {name!r}, which is ')}; for example: --env staging")
    return name


def master_config_path(args: argparse.Namespace) -> Path:
    return args.master_config or Path(args.project_dir) / master_stack_file(environment_of(args))


def template_path(args: argparse.Namespace) -> Path:
    return getattr(args, "template", None) or Path(args.project_dir) / silo_template_file(environment_of(args))


def settings_dir(args: argparse.Namespace) -> Path:
    return getattr(args, "silo_settings", None) or Path(args.project_dir) / silo_settings_dir(environment_of(args))


def _describe(environment: Optional[str]) -> str:
    return f"environment {environment!r}" if environment else "the default environment"


def check_file_environment(path: Path, config: Mapping[str, Any], environment: Optional[str]) -> None:
    """The stack file's `datalake:environment` is the run's."""
    found = config.get(ENVIRONMENT_KEY) or None
    if found != environment:
        fix = f"set {ENVIRONMENT_KEY}: {environment}" if environment else f"remove {ENVIRONMENT_KEY}"
        run = f"--env {found}" if found else "no --env"
        raise UsageError(
            f"{path} belongs to {_describe(found)}, but this run is for {_describe(environment)}; "
            f"{fix} in it, or run with {run}"
        )


def _master_files(project_dir: Path) -> dict[Optional[str], tuple[Path, Mapping[str, Any]]]:
    found: dict[Optional[str], tuple[Path, Mapping[str, Any]]] = {}
    for path in sorted(project_dir.glob("Pulumi.master*.yaml")):
        stem = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        environment = None if stem == "master" else stem.removeprefix("master-")
        if environment is not None and (not stem.startswith("master-") or environment_problem(environment)):
            continue
        try:
            config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        except yaml.YAMLError:
            continue  # its own run reports it
        found[environment] = (path, config)
    return found


def check_other_environments(project_dir: Path, environment: Optional[str], silo_ou_path: str) -> None:
    """No other environment's silo OU is this one's, or inside it, or around it."""
    for other, (path, config) in _master_files(project_dir).items():
        if other == environment:
            continue
        theirs = str(config.get("datalake:siloOuPath") or "")
        if not theirs:
            continue
        if theirs == silo_ou_path or theirs.startswith(silo_ou_path) or silo_ou_path.startswith(theirs):
            relation = "is the same OU as" if theirs == silo_ou_path else "is nested with"
            raise UsageError(
                f"datalake:siloOuPath {silo_ou_path!r} of {_describe(environment)} {relation} {theirs!r} of "
                f"{_describe(other)} ({path.name}): discovery walks an OU and every OU below it, so one runner would "
                "take the other environment's accounts; give each environment an OU of its own, side by side, "
                "for example o-a1b2c3d4e5/r-ab12/ou-ab12-33333333/ for staging"
            )
