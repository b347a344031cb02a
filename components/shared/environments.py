"""Named environments: which files and stack names belong to which data lake.

One Pulumi project, one backend, several data lakes (`staging`, `prod`, ...). The default
environment (no `datalake:environment`) keeps today's names exactly; environment `<env>` gets its
own of everything:

| what | default environment | environment `<env>` |
| --- | --- | --- |
| master stack and its file | `master`, `Pulumi.master.yaml` | `master-<env>`, `Pulumi.master-<env>.yaml` |
| silo stacks | `silo-<account-id>` | `silo-<env>-<account-id>` |
| silo template | `Pulumi.silo-template.yaml` | `Pulumi.silo-template-<env>.yaml` |
| per-silo settings | `silos/` | `silos-<env>/` |
| physical-name prefix | `<namePrefix>` | `<namePrefix>-<env>` |
| log-group and IAM-path namespace | `datalake/…` | `datalake-<env>/…` |

Environment names are 2-10 lowercase letters and digits, no hyphen: a hyphen would make
`silo-<env>-<account-id>` ambiguous, and every stack name above stays within Pulumi's stack name
rules (components/shared/pulumi_names.py: `A-Za-z0-9_.-`, at most 100 characters).
"""

from __future__ import annotations

import re
from typing import Optional

NAMESPACE = "datalake"
ENVIRONMENT_PATTERN = re.compile(r"^[a-z][a-z0-9]{1,9}$")
MASTER = "master"
SILO_PREFIX = "silo-"
ACCOUNT_PATTERN = re.compile(r"^\d{12}$")
# `default` would read as the default environment while naming another one.
RESERVED_ENVIRONMENTS = frozenset({"default", "master", "silo", "template"})


def environment_problem(name: str) -> Optional[str]:
    """None when `name` can be an environment name, else what is wrong with it."""
    if not ENVIRONMENT_PATTERN.match(name):
        return f"got {name!r}, which is not 2-10 lowercase letters and digits starting with a letter (no hyphen)"
    if name in RESERVED_ENVIRONMENTS:
        return f"got {name!r}, a reserved word; leave the key out for the default environment, or pick another name"
    return None


def master_stack_name(environment: Optional[str] = None) -> str:
    """`master`, or `master-<env>`."""
    return f"{MASTER}-{environment}" if environment else MASTER


def master_stack_file(environment: Optional[str] = None) -> str:
    """`Pulumi.master.yaml`, or `Pulumi.master-<env>.yaml` (the file `pulumi up -s master-<env>` reads)."""
    return f"Pulumi.{master_stack_name(environment)}.yaml"


def silo_template_file(environment: Optional[str] = None) -> str:
    """`Pulumi.silo-template.yaml`, or `Pulumi.silo-template-<env>.yaml`."""
    return f"Pulumi.silo-template-{environment}.yaml" if environment else "Pulumi.silo-template.yaml"


def silo_settings_dir(environment: Optional[str] = None) -> str:
    """`silos`, or `silos-<env>`: the environment's profiles and per-account files."""
    return f"silos-{environment}" if environment else "silos"


def silo_stack_name(account_id: str, environment: Optional[str] = None) -> str:
    """`silo-<account-id>`, or `silo-<env>-<account-id>`."""
    return f"{SILO_PREFIX}{environment}-{account_id}" if environment else f"{SILO_PREFIX}{account_id}"


def account_of_silo_stack(name: str, environment: Optional[str] = None) -> Optional[str]:
    """The account of `name` when it is a silo stack *of this environment*, else None.

    `silo-123456789012` belongs to the default environment only, `silo-staging-123456789012` to
    `staging` only: a runner never sees another environment's stacks as its own.
    """
    short = name.rsplit("/", 1)[-1]
    prefix = f"{SILO_PREFIX}{environment}-" if environment else SILO_PREFIX
    account = short[len(prefix):] if short.startswith(prefix) else ""
    return account if ACCOUNT_PATTERN.match(account) else None


def resource_prefix(name_prefix: str, environment: Optional[str] = None) -> str:
    """The start of every physical name: `<namePrefix>`, or `<namePrefix>-<env>`."""
    return f"{name_prefix}-{environment}" if environment else name_prefix


def name_namespace(environment: Optional[str] = None) -> str:
    """The first part of log-group names and IAM paths that carry no prefix: `datalake`, or `datalake-<env>`."""
    return f"{NAMESPACE}-{environment}" if environment else NAMESPACE
