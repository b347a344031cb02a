"""Planning: discovered accounts + existing stacks → one action per account, with safety rules.

| account | stack exists | action |
| --- | --- | --- |
| ACTIVE in the silo OU | no | create |
| ACTIVE in the silo OU | yes | update |
| SUSPENDED / closed / gone from the organization | yes | retire-forget (export, remove without destroy) |
| ACTIVE but moved out of the silo OU, or opted out by tag | yes | retire-destroy (destroy, data buckets retained) |
| in the deny-list / not in the allow-list | any | left alone |

A closed account cannot be reached any more, and `destroy` replays the `assumeRole` stored in the
stack's state (pulumi/pulumi-aws#1543), so it would only fail: its stack is forgotten instead,
after its state is exported for the record.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from components.silo.config import SILO_NAME_PATTERN
from components.stack_config import parse_stack_config
from components.shared.errors import UsageError
from components.silo.settings import SiloSettingsError

from .model import Account, Action, Discovery, Plan, PlannedOperation, StackInfo, exclusion, stack_name
from .silo_config import SiloLayers, render_or_collect

ACCOUNT_PLACEHOLDER = "__ACCOUNT_ID__"
SILO_NAME_PLACEHOLDER = "__SILO_NAME__"
MAX_SILO_NAME = 20


@dataclass(frozen=True)
class PlanSettings:
    """Safety settings of a plan."""

    max_retire_share: float = 0.2
    """Largest share of existing stacks one run may retire (default 0.2) without `--allow-mass-retire`."""
    allow_mass_retire: bool = False
    """Lift the mass-retire protection for this run (default False)."""
    allow_accounts: frozenset[str] = frozenset()
    """When not empty, only these accounts' stacks are touched (default empty)."""
    deny_accounts: frozenset[str] = frozenset()
    """Accounts whose stacks are never touched (default empty)."""
    environment: Optional[str] = None
    """The environment planned (default None: the default one): only its silo stacks are seen, and new
    stacks get its names (`silo-<env>-<account-id>`)."""

    def exclusion(self, account_id: str) -> str:
        """Why the allow/deny lists leave this account's stack alone ('' when they do not)."""
        return exclusion(account_id, self.allow_accounts, self.deny_accounts)


def load_template(path: Path) -> dict[str, Any]:
    """The `config:` map of `Pulumi.silo-template.yaml`."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"silo template {path} does not exist; pass --template or run from the project directory") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"silo template {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise UsageError(f"silo template {path} has no 'config:' map; see Pulumi.silo-template.yaml in the project")
    missing = [p for p in (ACCOUNT_PLACEHOLDER, SILO_NAME_PLACEHOLDER) if p not in data["config"].values()]
    if missing:
        raise UsageError(
            f"silo template {path} lacks the placeholder(s) {', '.join(missing)}; "
            f"set datalake:accountId: {ACCOUNT_PLACEHOLDER} and datalake:siloName: {SILO_NAME_PLACEHOLDER}"
        )
    return data["config"]


def seed_config(template: Mapping[str, Any], account_id: str, silo_name: str) -> dict[str, Any]:
    """The template with the account's id and silo name in place of the placeholders, validated.

    Raises `ConfigError` (naming each bad key) when the template yields an invalid silo config, so
    a broken template stops the run before any stack is touched.
    """
    values = {ACCOUNT_PLACEHOLDER: account_id, SILO_NAME_PLACEHOLDER: silo_name}
    config = {key: values.get(value, value) if isinstance(value, str) else value for key, value in template.items()}
    parse_stack_config(stack_name(account_id), config)
    return config


def _ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def derive_silo_name(account_name: str, account_id: str, taken: Iterable[str] = (), max_length: int = MAX_SILO_NAME) -> str:
    """A silo name from an account name: lowercase, plain, 2-20 characters (`max_length`), unique among `taken`.

    `Sales EMEA (prod)` → `sales-emea-prod`; a name that starts with a digit gets an `s-` prefix; a
    collision gets the account id's last digits appended (`sales-9012`), which are stable across runs.
    """
    taken = set(taken)
    slug = _ascii_slug(account_name)
    if slug and not slug[0].isalpha():
        slug = f"s-{slug}"
    if len(slug) < 2:
        slug = f"silo-{account_id[-6:]}"

    def fit(base: str, suffix: str = "") -> str:
        room = max_length - len(suffix)
        return base[:room].rstrip("-") + suffix

    candidates = [fit(slug)] + [fit(slug, f"-{account_id[-n:]}") for n in (4, 6, 8, 12)]
    for candidate in candidates:
        if candidate not in taken and SILO_NAME_PATTERN.match(candidate):
            return candidate
    return fit("silo", f"-{account_id}")[:max_length]


def _retire(account_id: str, name: str, action: Action, reason: str, stack: StackInfo) -> PlannedOperation:
    return PlannedOperation(account_id, name, stack.name, action, reason, silo_name=stack.silo_name, environment=stack.environment)


def _retirement(account: Optional[Account], account_id: str, stack: StackInfo, in_ou: bool, settings_tag: str) -> Optional[PlannedOperation]:
    if account is None:
        return _retire(account_id, "", Action.RETIRE_FORGET, "account is no longer in the organization", stack)
    if account.excluded:
        return None
    if account.closed:
        return _retire(account.id, account.name, Action.RETIRE_FORGET, f"account is {account.status}", stack)
    if not account.active:
        return None  # e.g. PENDING_ACTIVATION: neither reachable for an update nor gone; wait for the next run
    if not in_ou:
        return _retire(account.id, account.name, Action.RETIRE_DESTROY, "account moved out of the silo OU", stack)
    if account.opted_out:
        return _retire(account.id, account.name, Action.RETIRE_DESTROY, f"account opted out ({settings_tag})", stack)
    return None


def build_plan(
    discovery: Discovery,
    stacks: Iterable[StackInfo],
    template: Union[Mapping[str, Any], SiloLayers],
    settings: PlanSettings = PlanSettings(),
    opt_out_label: str = "datalake:silo=false",
) -> Plan:
    """One operation per account that needs one, sorted create, update, retire; then the safety rules.

    The allow/deny lists are applied here to every account, including stacks whose account the
    organization no longer knows (discovery has no record of those to mark).

    `template` is the silo template's config, or `SiloLayers` (template, profiles, account files):
    every wanted account's config is rendered and validated first, and any problem, for any
    account, raises `SiloSettingsError` before a single operation exists.
    """
    layers = template if isinstance(template, SiloLayers) else None
    limit = layers.silo_name_limit if layers is not None else MAX_SILO_NAME
    environment = settings.environment
    # Another environment's silo stacks have no account here: they are neither updated nor retired.
    stacks = [replace(s, environment=environment) for s in stacks]
    silo_stacks = {s.account_id: s for s in stacks if s.account_id}
    in_ou = {a.id: a for a in discovery.accounts}
    taken = {s.silo_name for s in silo_stacks.values() if s.silo_name}
    operations: list[PlannedOperation] = []
    problems: list[str] = []

    for account in discovery.accounts:
        stack = silo_stacks.get(account.id)
        if settings.exclusion(account.id):
            continue
        if account.wanted:
            if stack is not None:
                silo = stack.silo_name or derive_silo_name(account.name, account.id, taken, limit)
                action, reason = Action.UPDATE, "ACTIVE account with a stack"
            else:
                silo = derive_silo_name(account.name, account.id, taken, limit)
                action, reason = Action.CREATE, "new ACTIVE account in the silo OU"
            taken.add(silo)
            if layers is None:
                config = seed_config(template, account.id, silo)
                operations.append(
                    PlannedOperation(account.id, account.name, stack_name(account.id, environment), action, reason, silo, config,
                                     environment=environment)
                )
                continue
            layered = render_or_collect(layers, account, silo, stack_name(account.id, environment), problems)
            if layered is not None:
                operations.append(
                    PlannedOperation(
                        account.id, account.name, stack_name(account.id, environment), action, reason, silo, layered.config,
                        profile=layered.profile, overrides=layered.overrides, environment=environment,
                    )
                )
        elif stack is not None:
            op = _retirement(account, account.id, stack, True, opt_out_label)
            if op:
                operations.append(op)

    for account_id, stack in sorted(silo_stacks.items()):
        if account_id in in_ou or settings.exclusion(account_id):
            continue
        if account_id not in discovery.outside:
            raise UsageError(f"stack {stack.name}: account {account_id} was neither discovered nor looked up")
        op = _retirement(discovery.outside[account_id], account_id, stack, False, opt_out_label)
        if op:
            operations.append(op)

    if problems:
        raise SiloSettingsError(problems)
    order = {Action.CREATE: 0, Action.UPDATE: 1, Action.RETIRE_DESTROY: 2, Action.RETIRE_FORGET: 3}
    operations.sort(key=lambda op: (order[op.action], op.account_id))
    held = _mass_retire_reason(discovery, operations, len(silo_stacks), settings)
    if held:
        operations = [
            PlannedOperation(**{**op.__dict__, "held": held}) if op.action.retires else op for op in operations
        ]
    return Plan(tuple(operations), existing_stacks=len(silo_stacks), discovered_accounts=len(discovery.accounts), held_reason=held)


def _mass_retire_reason(discovery: Discovery, operations: list[PlannedOperation], existing: int, settings: PlanSettings) -> str:
    retiring = sum(1 for op in operations if op.action.retires)
    if not retiring or settings.allow_mass_retire:
        return ""
    if not discovery.accounts:
        return (
            f"discovery found zero accounts under {discovery.silo_ou_id}, which looks like a wrong OU or missing "
            f"permissions; {retiring} retirement(s) held. Check the OU, or pass --allow-mass-retire"
        )
    share = retiring / existing
    if share > settings.max_retire_share:
        return (
            f"the plan retires {retiring} of {existing} stacks ({share:.0%}), more than the allowed "
            f"{settings.max_retire_share:.0%}; retirements held. Check the plan, then pass --allow-mass-retire"
        )
    return ""


def restrict_to_accounts(plan: Plan, accounts: Iterable[str]) -> Plan:
    """The plan's operations on `accounts` only (`apply --account`), with the whole plan's safety verdict.

    The mass-retire guard was judged on every account, so a retirement it held stays held here,
    even when it is the only operation of a targeted run.
    """
    wanted = set(accounts)
    return replace(plan, operations=tuple(op for op in plan.operations if op.account_id in wanted))
