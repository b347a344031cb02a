"""Every silo's config, rendered and validated before any stack is touched.

The layers and merge rules are in `components/silo/settings.py` (the master program reads the same
files for the silos' regions). Here the runner checks them, in this order, and stops at the first
stage that fails, so one broken template is reported once rather than once per account:

1. the template itself, filled in for an example account;
2. every file of the settings directory (YAML, `config:` map, no forbidden or foreign key), and every
   profile over the template, used by an account or not;
3. every wanted account: template + its profile (tag) + its file, through `parse_stack_config`.

Any failure raises `SiloSettingsError` (a `ConfigError`: the runner exits 2), one line per problem
naming the file, the key and a right value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from components.silo.config import PREFIX_AND_SILO_BUDGET
from components.stack_config import parse_stack_config
from components.shared.environments import resource_prefix, silo_stack_name
from components.shared.errors import ConfigError
from components.silo.settings import PROFILE_TAG, Layered, SiloSettings, SiloSettingsError, annotate

from .model import Account

EXAMPLE_ACCOUNT = "123456789012"
EXAMPLE_SILO = "example"


def fill_placeholders(template: Mapping[str, Any], account_id: str, silo_name: str) -> dict[str, Any]:
    """The template with `__ACCOUNT_ID__` and `__SILO_NAME__` replaced."""
    from .planning import ACCOUNT_PLACEHOLDER, SILO_NAME_PLACEHOLDER

    values = {ACCOUNT_PLACEHOLDER: account_id, SILO_NAME_PLACEHOLDER: silo_name}
    return {key: values.get(value, value) if isinstance(value, str) else value for key, value in template.items()}


@dataclass(frozen=True)
class SiloLayers:
    """The template of an environment and its settings directory."""

    template: Mapping[str, Any]
    template_label: str = "Pulumi.silo-template.yaml"
    settings: SiloSettings = field(default_factory=SiloSettings)
    profile_tag: str = PROFILE_TAG

    @classmethod
    def load(cls, template: Mapping[str, Any], template_label: str, settings_dir: Path, settings_label: str,
             profile_tag: str = PROFILE_TAG) -> "SiloLayers":
        """Reads and checks everything but the accounts (stages 1 and 2 above)."""
        layers = cls(template, template_label, SiloSettings.load(settings_dir, settings_label), profile_tag)
        layers.check()
        return layers

    @property
    def silo_name_limit(self) -> int:
        """Longest silo name the runner derives: 20, less where `<namePrefix>-<env>` leaves less room in bucket names."""
        from .planning import MAX_SILO_NAME

        environment = self.template.get("datalake:environment")
        prefix = resource_prefix(str(self.template.get("datalake:namePrefix", "datalake")), environment if isinstance(environment, str) else None)
        return max(2, min(MAX_SILO_NAME, PREFIX_AND_SILO_BUDGET - len(prefix)))

    def check(self) -> None:
        """Stages 1 and 2: the template alone, then each profile over it."""
        base = fill_placeholders(self.template, EXAMPLE_ACCOUNT, EXAMPLE_SILO)
        try:
            parse_stack_config(f"silo-{EXAMPLE_ACCOUNT}", base)
        except ConfigError as error:
            raise SiloSettingsError([f"{problem} (set in {self.template_label})" for problem in error.problems]) from None
        problems = []
        for name, profile in sorted(self.settings.profiles.items()):
            layered = self.settings.layer(base, "", name, self.profile_tag)
            try:
                parse_stack_config(f"profile {name}", layered.config)
            except ConfigError as error:
                problems.extend(f"{profile.label} (over {self.template_label}): {p}" for p in annotate(error.problems, layered, self.template_label))
        if problems:
            raise SiloSettingsError(problems)

    def render(self, account: Account, silo_name: str, stack: str) -> Layered:
        """The account's validated config; `SiloSettingsError` naming the file and key otherwise."""
        base = fill_placeholders(self.template, account.id, silo_name)
        layered = self.settings.layer(base, account.id, account.profile, self.profile_tag)
        try:
            parse_stack_config(stack, layered.config)
        except ConfigError as error:
            who = f"{stack} ({account.name or account.id}{', profile ' + account.profile if account.profile else ''})"
            raise SiloSettingsError([f"{who}: {p}" for p in annotate(error.problems, layered, self.template_label)]) from None
        return layered


def check_accounts(layers: SiloLayers, accounts: Iterable[Account], environment: Optional[str] = None) -> None:
    """Stage 3 before the backend is even listed: every wanted account rendered with the silo name it
    would get if new (the plan renders again with the names existing stacks keep)."""
    from .planning import derive_silo_name

    problems: list[str] = []
    taken: set[str] = set()
    for account in accounts:
        if not account.wanted:
            continue
        silo = derive_silo_name(account.name, account.id, taken, layers.silo_name_limit)
        taken.add(silo)
        render_or_collect(layers, account, silo, silo_stack_name(account.id, environment), problems)
    if problems:
        raise SiloSettingsError(problems)


def render_or_collect(layers: SiloLayers, account: Account, silo_name: str, stack: str, problems: list[str]) -> Optional[Layered]:
    """`layers.render`, with its problems added to `problems` instead of raised (to report every account at once)."""
    try:
        return layers.render(account, silo_name, stack)
    except SiloSettingsError as error:
        problems.extend(error.problems)
        return None


def _label(path: Path, project_dir: Path) -> str:
    try:
        return path.resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def load_layers(args: Any, template: Mapping[str, Any], profile_tag: str = PROFILE_TAG) -> SiloLayers:
    """The run's layers: `--template` (or the environment's template) and `--silo-settings` (or `<project>/silos[-<env>]`)."""
    from .environments import settings_dir as settings_dir_of, template_path as template_path_of

    project_dir = Path(args.project_dir)
    template_path, settings_dir = template_path_of(args), settings_dir_of(args)
    return SiloLayers.load(template, _label(template_path, project_dir), settings_dir, _label(settings_dir, project_dir), profile_tag)
