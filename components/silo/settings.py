"""Per-silo settings: the silo template, then a profile chosen by account tag, then the account's file.

A silo stack's config is built in three layers, each a YAML file with a `config:` map of full keys
(`datalake:warehouse`, `aws:region`), the format of the Pulumi stack files:

1. the silo template, `Pulumi.silo-template.yaml` (an environment's: `Pulumi.silo-template-<env>.yaml`);
2. the profile the account's tag names: `datalake:profile=<name>` selects `<settings>/profiles/<name>.yaml`,
   so an account vended with the tag gets its kind of silo without a commit;
3. the account's own file, `<settings>/<account-id>.yaml`.

`<settings>` is `silos/` for the default environment and `silos-<env>/` for environment `<env>`.

Merge rules (`deep_merge`): mappings merge key by key, at any depth; everything else - lists,
scalars, null - replaces what the layer below set. So a profile that sets
`datalake:warehouse: {maxCapacity: 128}` keeps the template's other warehouse keys, while one that
sets `datalake:datasets: [...]` replaces the whole list of datasets.

Keys that tie a stack to its account, organization and master (`FORBIDDEN_KEYS`) cannot be set in
a profile or an account file. This module has no Pulumi import: the runner renders every account's
config with it, and the master program reads the silos' regions with it (`silo_regions`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..shared.errors import ConfigError, DatalakeError

PROFILE_TAG = "datalake:profile"
PROFILES_DIR = "profiles"
DEFAULT_SETTINGS_DIR = "silos"
REGION_KEY = "aws:region"
PROFILE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ACCOUNT_FILE_PATTERN = re.compile(r"^\d{12}$")
ERROR_KEY_PATTERN = re.compile(r"^((?:aws|datalake):[A-Za-z0-9_.\[\]]+)")

# Keys a profile or an account file may not set, and why.
FORBIDDEN_KEYS = {
    "datalake:kind": "every stack the runner manages is a silo",
    "datalake:accountId": "the runner sets it to the account the stack belongs to",
    "datalake:siloName": (
        "the runner derives it from the account name and keeps it for the life of the stack "
        "(a new silo name would rename, and so replace, every bucket)"
    ),
    "datalake:organizationId": "it is the organization's, the same for every silo: set it in the silo template",
    "datalake:siloOuPath": "it is the organization's, the same for every silo: set it in the silo template",
    "datalake:analyticsOuPath": "it is the organization's, the same for every silo: set it in the silo template",
    "datalake:masterStack": "every silo of an environment reads the same master stack: set it in the silo template",
    "datalake:deployRoleName": (
        "the master grants artifact reads to, and the runner revokes partners through, the template's "
        "deploy role: set it in the silo template"
    ),
    "datalake:environment": "a silo belongs to the environment of its runner: set it in the silo template",
}


class SiloSettingsError(ConfigError):
    """Silo settings files that cannot be used: one line per problem, each naming the file and the key."""

    def __init__(self, problems: list[str]):
        self.stack = "silo settings"
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        DatalakeError.__init__(self, f"Invalid silo settings ({count} problem{'s' if count != 1 else ''}):\n{lines}")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`: mappings merge key by key at any depth; lists, scalars and null replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def leaf_keys(config: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the values a layer sets: into mappings, stopping at lists and scalars."""
    found: list[tuple[str, ...]] = []
    for key, value in config.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            found.extend(leaf_keys(value, path))
        else:
            found.append(path)
    return found


def dotted(path: tuple[str, ...]) -> str:
    """`("datalake:warehouse", "maxCapacity")` → `datalake:warehouse.maxCapacity`."""
    return ".".join(path)


@dataclass(frozen=True)
class SettingsFile:
    """One profile or account file."""

    label: str
    """The file as messages name it, relative to the project: `silos/profiles/big.yaml`."""
    config: dict[str, Any]


@dataclass(frozen=True)
class Override:
    """One key a profile or account file sets for a silo."""

    key: str
    """Full dotted key, e.g. `datalake:warehouse.maxCapacity`."""
    source: str
    """The file that sets it (the last one, when both the profile and the account file do)."""


@dataclass(frozen=True)
class Layered:
    """A silo's config after the three layers, and where each overridden key came from."""

    config: dict[str, Any]
    profile: str = ""
    overrides: tuple[Override, ...] = ()
    sources: tuple[str, ...] = ()
    """The files applied over the template, in order."""

    def source_of(self, key: str) -> Optional[str]:
        """The file that set `key` (or the mapping that holds it), None when the template did."""
        parts = tuple(_split_key(key))
        best, best_len = None, -1
        for override in self.overrides:
            opath = tuple(_split_key(override.key))
            n = min(len(opath), len(parts))
            if opath[:n] == parts[:n] and n > best_len:
                best, best_len = override.source, n
        return best


def _split_key(key: str) -> list[str]:
    # `datalake:datasets[0].name` → ["datalake:datasets", "0", "name"]
    return [part for part in re.split(r"[.\[\]]+", key) if part]


@dataclass(frozen=True)
class SiloSettings:
    """The profiles and account files of one environment's settings directory."""

    directory_label: str = DEFAULT_SETTINGS_DIR
    profiles: Mapping[str, SettingsFile] = field(default_factory=dict)
    accounts: Mapping[str, SettingsFile] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path, label: Optional[str] = None) -> "SiloSettings":
        """Reads `<directory>/profiles/*.yaml` and `<directory>/<account-id>.yaml`; a missing directory is empty.

        Raises `SiloSettingsError` listing every file that cannot be used (bad YAML, no `config:` map,
        a key outside `datalake:`/`aws:region`, a forbidden key, a file name that is neither).
        """
        label = label or directory.name
        problems: list[str] = []
        profiles: dict[str, SettingsFile] = {}
        accounts: dict[str, SettingsFile] = {}
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.suffix not in (".yaml", ".yml") or not path.is_file():
                    continue  # README.md and the like
                file_label = f"{label}/{path.name}"
                if not ACCOUNT_FILE_PATTERN.match(path.stem):
                    problems.append(
                        f"{file_label}: is neither an account file nor a profile; name an account's file after its "
                        f"12-digit id (for example {label}/123456789012.yaml) and put profiles under {label}/{PROFILES_DIR}/"
                    )
                    continue
                loaded = _read(path, file_label, problems)
                if loaded is not None:
                    accounts[path.stem] = loaded
            profile_dir = directory / PROFILES_DIR
            if profile_dir.is_dir():
                for path in sorted(profile_dir.iterdir()):
                    if path.suffix not in (".yaml", ".yml") or not path.is_file():
                        continue
                    file_label = f"{label}/{PROFILES_DIR}/{path.name}"
                    if not PROFILE_NAME_PATTERN.match(path.stem):
                        problems.append(
                            f"{file_label}: {path.stem!r} cannot be a profile name (a tag value of lowercase letters, digits, "
                            "'-' and '_', starting with a letter or digit); rename the file, for example big-warehouse.yaml"
                        )
                        continue
                    loaded = _read(path, file_label, problems)
                    if loaded is not None:
                        profiles[path.stem] = loaded
        if problems:
            raise SiloSettingsError(problems)
        return cls(label, profiles, accounts)

    def profile_file(self, name: str, account_id: str, tag: str = PROFILE_TAG) -> SettingsFile:
        """The profile file the tag value `name` selects, or a `SiloSettingsError` listing the known ones."""
        if name in self.profiles:
            return self.profiles[name]
        known = ", ".join(sorted(self.profiles)) or f"none: {self.directory_label}/{PROFILES_DIR}/ holds no profile"
        raise SiloSettingsError(
            [
                f"account {account_id}: tag {tag}={name} names the profile {self.directory_label}/{PROFILES_DIR}/{name}.yaml, "
                f"which does not exist; known profiles: {known}. Set the tag to one of them, or add the file"
            ]
        )

    def layer(self, base: Mapping[str, Any], account_id: str, profile: str = "", tag: str = PROFILE_TAG) -> Layered:
        """`base` (the template, filled in for the account), then the profile, then the account file."""
        files = []
        if profile:
            files.append(self.profile_file(profile, account_id, tag))
        if account_id in self.accounts:
            files.append(self.accounts[account_id])
        config: dict[str, Any] = dict(base)
        sources: dict[tuple[str, ...], str] = {}
        for settings_file in files:
            config = deep_merge(config, settings_file.config)
            for path in leaf_keys(settings_file.config):
                # A mapping replaced by a scalar (or the reverse) forgets what was set beneath it.
                for known in [p for p in sources if p[: len(path)] == path or path[: len(p)] == p]:
                    del sources[known]
                sources[path] = settings_file.label
        overrides = tuple(Override(dotted(path), source) for path, source in sorted(sources.items()))
        return Layered(config, profile, overrides, tuple(f.label for f in files))

    def all_files(self) -> list[SettingsFile]:
        return [*self.profiles.values(), *self.accounts.values()]


def _read(path: Path, label: str, problems: list[str]) -> Optional[SettingsFile]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        problems.append(f"{label}: is not valid YAML: {' '.join(str(exc).split())}")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict) or set(data) - {"config"}:
        problems.append(
            f"{label}: needs exactly one top-level 'config:' map of full keys, as in the stack files; for example:\n"
            "      config:\n        datalake:warehouse:\n          maxCapacity: 128"
        )
        return None
    config = data["config"]
    before = len(problems)
    for key in config:
        key = str(key)
        if key in FORBIDDEN_KEYS:
            problems.append(f"{label}: {key}: may not be set per silo: {FORBIDDEN_KEYS[key]}")
        elif not (key.startswith("datalake:") or key == REGION_KEY):
            problems.append(
                f"{label}: {key}: is not a silo config key; write full keys such as datalake:warehouse or {REGION_KEY} "
                "(other namespaces do not reach the silo program)"
            )
    return SettingsFile(label, config) if len(problems) == before else None


def annotate(problems: Iterable[str], layered: Layered, template_label: str) -> list[str]:
    """Config-model problems, each with the file that set the bad key."""
    annotated = []
    for problem in problems:
        match = ERROR_KEY_PATTERN.match(problem)
        source = layered.source_of(match.group(1)) if match else None
        annotated.append(f"{problem} (set in {source or template_label})")
    return annotated


def silo_regions(
    template: Mapping[str, Any],
    settings: SiloSettings,
    account_ids: Iterable[str],
    profile_of: Callable[[str], str],
) -> dict[str, str]:
    """Account id → the region its silo is deployed in, for the master's per-silo catalogs.

    `profile_of(account_id)` returns the account's profile tag value; it is asked only when some
    profile sets `aws:region` (otherwise no profile can move a silo, and no tag needs reading).
    """
    default = str(template.get(REGION_KEY, ""))
    profiles_move = any(REGION_KEY in f.config for f in settings.profiles.values())
    regions = {}
    for account_id in account_ids:
        profile = profile_of(account_id) if profiles_move else ""
        profile_file = settings.profiles.get(profile) if profile else None
        account_file = settings.accounts.get(account_id)
        region = default
        for layer in (profile_file, account_file):
            if layer is not None and REGION_KEY in layer.config:
                region = str(layer.config[REGION_KEY])
        regions[account_id] = region
    return regions
