"""`python -m offline.urns`: the URN contract of both programs, checked against `tests/urns/`.

Pulumi keys every resource of a stack by its URN, `urn:pulumi:<stack>::<project>::<type chain>::<name>`
where the type chain is the types of the resource's ancestors and its own, joined with `$`. A change
of name, type or parent type is, to the engine, a delete of the old URN and a create of the new one,
unless the new resource carries an `aliases` entry that resolves to the old URN. Most children here
are `retain_on_delete`: the "delete" only forgets them, the create then collides with the orphan.

This module evaluates the programs under mocks for the shipped stack files and a few representative
configurations (`CONFIGURATIONS`), computes the URNs and aliases as the engine does (the mock
monitor's own URNs keep only the last parent type and a stale root stack, so they are not used), and
compares them with the committed snapshots, one file per configuration:

    python -m offline.urns            # check: exit 1 and print what changed, per configuration
    python -m offline.urns --update   # rewrite the snapshots (refuses to drop a retained URN)

A removed URN passes only when a resource of the current program claims it through an alias; an
added URN needs `--update`, so that every retained resource is in the snapshot from the day it
appears (a retained resource that never made it into the snapshot would not be guarded).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .harness import Recording
from .stacks import PROJECT_DIR, master_config, run_master, run_silo, silo_config

SNAPSHOT_DIR = PROJECT_DIR / "tests" / "urns"
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
UPDATE_COMMAND = "./dev urns --update"


# -- the configurations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """A shipped stack file with some config sections changed.

    `changes` maps full config keys to a dict merged into that section, or to None to drop the
    section; a key missing from the stack file is added.
    """

    name: str
    program: str  # "master" or "silo"
    description: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    environment: Optional[str] = None
    """The environment whose stack files are read (default None: the default environment's)."""

    def config(self) -> dict[str, Any]:
        config = master_config(self.environment) if self.program == "master" else silo_config(self.environment)
        for key, change in self.changes.items():
            if change is None:
                config.pop(key, None)
            elif isinstance(change, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **change}
            else:
                config[key] = change
        return config

    def evaluate(self) -> Recording:
        run = run_master if self.program == "master" else run_silo
        return run(self.config())


QUICKSIGHT_OWNER = "arn:aws:quicksight:eu-west-1:222222222222:group/default/analysts"

CONFIGURATIONS: tuple[Configuration, ...] = (
    Configuration("master", "master", "Pulumi.master.yaml as shipped (CodeStar delivery source)"),
    Configuration(
        "master-without-delivery", "master", "Pulumi.master.yaml without datalake:delivery",
        {"datalake:delivery": None},
    ),
    Configuration(
        "master-s3-source", "master", "Pulumi.master.yaml with datalake:delivery.source s3",
        {"datalake:delivery": {"source": "s3", "repository": None}},
    ),
    Configuration("silo", "silo", "Pulumi.silo-template.yaml as the runner fills it (SFTP off, console on)"),
    Configuration(
        "silo-sftp-public", "silo", "the silo template with SFTP on, PUBLIC endpoint",
        {"datalake:sftp": {"enabled": True, "endpointType": "PUBLIC"}},
    ),
    Configuration(
        "silo-sftp-vpc", "silo", "the silo template with SFTP on, VPC endpoint",
        {
            "datalake:sftp": {
                "enabled": True,
                "endpointType": "VPC",
                "vpcId": "vpc-0123456789abcdef0",
                "subnetIds": ["subnet-0123456789abcdef0"],
                "allowedCidrs": ["203.0.113.0/24"],
            }
        },
    ),
    Configuration(
        "silo-console-off", "silo", "the silo template with datalake:console.enabled false",
        {"datalake:console": {"enabled": False}},
    ),
    Configuration(
        "silo-master-queries-off", "silo", "the silo template with datalake:sharing.masterQueries false",
        {"datalake:sharing": {"masterQueries": False}},
    ),
    Configuration(
        "master-staging", "master", "Pulumi.master-staging.yaml as shipped (environment staging, no delivery)",
        environment="staging",
    ),
    Configuration(
        "silo-staging", "silo", "Pulumi.silo-template-staging.yaml as the runner fills it", environment="staging",
    ),
    Configuration(
        "silo-quicksight-endpoints", "silo",
        "the silo template with QuickSight on and every interface endpoint",
        {
            "datalake:warehouse": {
                "interfaceEndpoints": ["secretsmanager", "glue", "redshift-data", "sts", "logs"],
                "quicksight": {"enabled": True, "ownerArn": QUICKSIGHT_OWNER},
            }
        },
    ),
)
CONFIGURATIONS_BY_NAME = {c.name: c for c in CONFIGURATIONS}


# -- URNs and aliases as the engine computes them ------------------------------------------------


def _parts(urn: str) -> list[str]:
    """`[urn:pulumi:<stack>, <project>, <type chain>, <name>]`; the name may itself contain `::`."""
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    return parts


def qualified_type(urn: str) -> str:
    return _parts(urn)[2]


def urn_type(urn: str) -> str:
    return qualified_type(urn).split("$")[-1]


def urn_name(urn: str) -> str:
    return _parts(urn)[3]


def create_urn(name: str, type_: str, parent: Optional[str], project: str, stack: str) -> str:
    """The engine's `resource.CreateURN`: the parent's type chain, unless the parent is the root stack."""
    if parent and qualified_type(parent) != ROOT_STACK_TYPE:
        type_ = f"{qualified_type(parent)}${type_}"
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


@dataclass(frozen=True)
class Alias:
    """One `aliases` entry as the engine receives it: a full URN, or a spec whose empty fields mean "as now"."""

    urn: str = ""
    name: str = ""
    type: str = ""
    stack: str = ""
    project: str = ""
    parent_urn: str = ""
    no_parent: bool = False


@dataclass(frozen=True)
class Registration:
    """One resource of a program as the engine keys it."""

    urn: str
    type: str
    name: str
    parent: Optional[str]  # engine URN of the parent; None under the root stack
    retained: bool
    aliases: tuple[Alias, ...] = ()


def registrations(recording: Recording) -> list[Registration]:
    """The recording's resources in registration order, with engine URNs and resolved alias parents."""
    by_mock_urn = {}
    for resource in recording.resources:
        if resource.urn in by_mock_urn:
            # The mock monitor keys by a URN that keeps only the last parent type; two resources
            # sharing it would make the parent chain ambiguous here (and be a smell in the program).
            raise ValueError(f"two resources registered as {resource.urn}; give them distinct names")
        by_mock_urn[resource.urn] = resource
    engine_urns: dict[str, str] = {}

    def engine_urn_of(mock_urn: str) -> Optional[str]:
        if not mock_urn or qualified_type(mock_urn).split("$")[-1] == ROOT_STACK_TYPE:
            return None
        if mock_urn not in engine_urns:
            if mock_urn not in by_mock_urn:
                raise ValueError(f"parent {mock_urn} was never registered")
            resource = by_mock_urn[mock_urn]
            stack, project = _stack_and_project(mock_urn)
            engine_urns[mock_urn] = create_urn(
                resource.name, resource.type, engine_urn_of(resource.parent), project, stack
            )
        return engine_urns[mock_urn]

    result = []
    for resource in recording.resources:
        aliases = []
        for alias in resource.aliases:
            if alias.get("urn"):
                # Full alias URNs are the author's (engine) URNs; the mocks' own map through.
                aliases.append(Alias(urn=_engine_urn_or_same(alias["urn"], by_mock_urn, engine_urn_of)))
                continue
            # An alias parent is a mock URN when it was given as a resource; the root stack as
            # parent means "had no parent", like `noParent`.
            parent = _engine_urn_or_same(alias.get("parentUrn") or "", by_mock_urn, engine_urn_of)
            aliases.append(
                Alias(
                    name=alias.get("name", ""),
                    type=alias.get("type", ""),
                    stack=alias.get("stack", ""),
                    project=alias.get("project", ""),
                    parent_urn=parent,
                    no_parent=bool(alias.get("noParent")) or (bool(alias.get("parentUrn")) and not parent),
                )
            )
        result.append(
            Registration(
                urn=engine_urn_of(resource.urn),
                type=resource.type,
                name=resource.name,
                parent=engine_urn_of(resource.parent),
                retained=resource.retain_on_delete is True,
                aliases=tuple(aliases),
            )
        )
    return result


def _stack_and_project(urn: str) -> tuple[str, str]:
    head, project = _parts(urn)[:2]
    return head.removeprefix("urn:pulumi:"), project


def _engine_urn_or_same(urn: str, by_mock_urn, engine_urn_of) -> str:
    """The engine URN of a mock URN; "" for the root stack; any other URN as given."""
    if not urn:
        return ""
    if urn in by_mock_urn or qualified_type(urn).split("$")[-1] == ROOT_STACK_TYPE:
        return engine_urn_of(urn) or ""
    return urn


class _AliasResolver:
    """The engine's step generator, reduced to URN matching (pkg/resource/deploy/step_generator.go).

    For each registration in order: the old state is looked up by URN, then by each alias in the
    order `generateAliases` builds them (the resource's own aliases, then the ones inherited from
    the alias its parent matched); the alias that matched is kept for the children.
    """

    def __init__(self, old_urns: Iterable[str], current: Sequence[Registration]):
        self.olds = set(old_urns)
        self.current_urns = {r.urn for r in current}
        self.matched: dict[str, str] = {}  # new URN -> the old URN its alias matched (`sg.aliases`)
        self.claimed: dict[str, str] = {}  # old URN -> new URN claiming it (`sg.aliased`)
        self.conflicts: list[str] = []
        for registration in current:
            self._register(registration)

    def _register(self, goal: Registration) -> None:
        if goal.urn in self.olds:
            return
        for alias in self.generate_aliases(goal):
            if alias not in self.olds:
                continue
            if alias in self.current_urns:
                self.conflicts.append(f"{goal.urn} has an alias to {alias}, which the program still registers")
            elif alias in self.claimed:
                self.conflicts.append(f"{goal.urn} and {self.claimed[alias]} both have an alias to {alias}")
            else:
                self.matched[goal.urn] = alias
                self.claimed[alias] = goal.urn
            return

    def generate_aliases(self, goal: Registration) -> list[str]:
        stack, project = _stack_and_project(goal.urn)
        result: list[str] = []

        def add(urn: str) -> None:
            if urn not in result:
                result.append(urn)

        for alias in goal.aliases:
            add(self._collapse(goal, alias, stack, project))
        if goal.parent and goal.parent in self.matched:
            parent_alias = self.matched[goal.parent]
            parent_name = urn_name(goal.parent)
            add(_inherited_child_alias(goal.type, goal.name, parent_name, parent_alias, stack, project))
            for alias in goal.aliases:
                child = self._collapse(goal, alias, stack, project)
                add(_inherited_child_alias(urn_type(child), urn_name(child), parent_name, parent_alias, stack, project))
        return result

    def _collapse(self, goal: Registration, alias: Alias, stack: str, project: str) -> str:
        if alias.urn:
            return alias.urn
        # An old parent that was itself aliased had this child under its own old URN.
        parent = self.matched.get(alias.parent_urn, alias.parent_urn) if alias.parent_urn else goal.parent
        if alias.no_parent or (parent and qualified_type(parent) == ROOT_STACK_TYPE):
            parent = None
        return create_urn(
            alias.name or goal.name, alias.type or goal.type, parent, alias.project or project, alias.stack or stack
        )


def _inherited_child_alias(
    child_type: str, child_name: str, parent_name: str, parent_alias: str, stack: str, project: str
) -> str:
    """A child of an aliased parent had the parent's old type chain, and its name the parent's old prefix."""
    name = child_name
    if child_name.startswith(parent_name):
        name = urn_name(parent_alias) + child_name[len(parent_name):]
    return f"urn:pulumi:{stack}::{project}::{qualified_type(parent_alias)}${child_type}::{name}"


# -- snapshots and their comparison --------------------------------------------------------------


def snapshot_text(configuration: Configuration, current: Sequence[Registration]) -> str:
    entries = sorted({(r.urn, r.retained) for r in current})
    lines = [
        f"# URNs of configuration {configuration.name}: {configuration.description}.",
        f"# Written by `{UPDATE_COMMAND}`, checked by tests/test_urns.py; `retain` = retain_on_delete.",
        *(f"{'retain' if retained else '      '} {urn}" for urn, retained in entries),
    ]
    return "\n".join(lines) + "\n"


def parse_snapshot(text: str, source: str = "snapshot") -> dict[str, bool]:
    """URN -> retained, from a snapshot file; a malformed line is an error naming it."""
    result = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        marker, urn = line[:7], line[7:]
        if marker not in ("retain ", " " * 7) or not urn.startswith("urn:pulumi:"):
            raise ValueError(
                f"{source}:{number}: expected 'retain <urn>' or 7 spaces and '<urn>', got {line!r}; "
                f"`{UPDATE_COMMAND}` rewrites the file"
            )
        result[urn] = marker == "retain "
    return result


@dataclass
class UrnChange:
    """How a configuration's URNs differ from its snapshot, after aliases."""

    configuration: str
    added: list[tuple[str, bool]] = field(default_factory=list)
    removed: list[tuple[str, bool]] = field(default_factory=list)
    aliased: list[tuple[str, str]] = field(default_factory=list)  # (old, new)
    retention: list[tuple[str, bool]] = field(default_factory=list)  # (URN now, retained now) when it flipped
    conflicts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was added, removed or flipped; a URN claimed through an alias is no change."""
        return not (self.added or self.removed or self.retention or self.conflicts)

    @property
    def removed_retained(self) -> list[str]:
        return [urn for urn, retained in self.removed if retained]

    def describe(self) -> str:
        lines = [f"configuration {self.configuration}:"]
        for urn, retained in self.removed:
            why = (
                "RETAINED: `pulumi up` forgets it, the live resource stays, and a create under a new URN collides"
                if retained else "`pulumi up` deletes it"
            )
            lines.append(f"  - removed {urn}\n      ({why})")
        for urn, retained in self.added:
            lines.append(f"  + added   {urn}{'  (retained)' if retained else ''}")
        for urn, retained in self.retention:
            now = "now retain_on_delete" if retained else "NO LONGER retain_on_delete: destroying the stack deletes it"
            lines.append(f"  * {now}: {urn}")
        for old, new in self.aliased:
            lines.append(f"  ~ aliased {old}\n         -> {new}")
        lines += [f"  ! {conflict}" for conflict in self.conflicts]
        return "\n".join(lines)


def compare(configuration: str, old: Mapping[str, bool], current: Sequence[Registration]) -> UrnChange:
    resolver = _AliasResolver(old, current)
    current_urns = {r.urn for r in current}
    retained = {r.urn: r.retained for r in current}
    return UrnChange(
        configuration=configuration,
        added=sorted(
            (urn, retained[urn]) for urn in current_urns if urn not in old and urn not in resolver.matched
        ),
        removed=sorted(
            (urn, was_retained) for urn, was_retained in old.items()
            if urn not in current_urns and urn not in resolver.claimed
        ),
        aliased=sorted((old_urn, new) for new, old_urn in resolver.matched.items()),
        retention=sorted(
            (r.urn, r.retained) for r in current
            if (was := old.get(resolver.matched.get(r.urn, r.urn))) is not None and was != r.retained
        ),
        conflicts=resolver.conflicts,
    )


def hints(changes: Iterable[UrnChange]) -> str:
    """What to do about `changes` (the failing ones)."""
    changes = list(changes)
    lines = ["The URN set changed (CONTRIBUTING.md, 'URNs are a contract')."]
    if any(c.removed for c in changes):
        lines.append(
            "A renamed or re-parented resource keeps its identity only with an alias on the new one, e.g.\n"
            "  opts=ResourceOptions(parent=self, aliases=[pulumi.Alias(name=\"<old name>\")])  # or parent=<old parent>"
        )
    lines.append(
        f"If the change is intended (a resource added, a deletable one removed, retain_on_delete changed on purpose), "
        f"run `{UPDATE_COMMAND}` and commit tests/urns/."
    )
    if any(c.removed_retained for c in changes):
        lines.append(
            "Dropping a retained resource for good also needs `--allow-removing-retained`: its live "
            "resource stays in the account, to delete or import by hand."
        )
    return "\n".join(lines)


def guidance(changes: Iterable[UrnChange]) -> str:
    """Every change of `changes`, then what to do about them."""
    changes = list(changes)
    return "\n\n".join(c.describe() for c in changes) + "\n\n" + hints(changes)


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT_DIR)) if path.is_relative_to(PROJECT_DIR) else str(path)


def snapshot_path(configuration: Configuration) -> Path:
    return SNAPSHOT_DIR / f"{configuration.name}.txt"


def read_snapshot(configuration: Configuration) -> dict[str, bool]:
    path = snapshot_path(configuration)
    return parse_snapshot(path.read_text(), _shown(path)) if path.exists() else {}


@functools.cache
def recording_of(name: str) -> Recording:
    """The configuration's program evaluated once per process (the URN and IAM-lint tests share it)."""
    return CONFIGURATIONS_BY_NAME[name].evaluate()


@functools.cache
def current_registrations(name: str) -> tuple[Registration, ...]:
    """The configuration's registrations, evaluated once per process (the tests share them)."""
    return tuple(registrations(recording_of(name)))


def check(configurations: Sequence[Configuration] = CONFIGURATIONS) -> list[UrnChange]:
    return [compare(c.name, read_snapshot(c), current_registrations(c.name)) for c in configurations]


def stale_snapshots() -> list[Path]:
    """Snapshot files of configurations that no longer exist."""
    known = {snapshot_path(c) for c in CONFIGURATIONS}
    return sorted(p for p in SNAPSHOT_DIR.glob("*.txt") if p not in known)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev urns", description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the snapshots under tests/urns/")
    parser.add_argument(
        "--allow-removing-retained", action="store_true",
        help="with --update: accept that retained resources leave the program without an alias",
    )
    parser.add_argument(
        "--config", action="append", choices=sorted(CONFIGURATIONS_BY_NAME),
        help="only this configuration (repeatable)",
    )
    args = parser.parse_args(argv)
    selected = [CONFIGURATIONS_BY_NAME[n] for n in args.config] if args.config else list(CONFIGURATIONS)
    try:
        changes = check(selected)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    stale = [] if args.config else stale_snapshots()
    if args.update:
        return _update(selected, changes, stale, allow_removing_retained=args.allow_removing_retained)
    reported = [c for c in changes if not c.ok or c.aliased]
    if reported:
        print("\n\n".join(c.describe() for c in reported) + "\n")
    failing = [c for c in changes if not c.ok]
    if failing:
        print(hints(failing))
    for path in stale:
        print(f"stale snapshot {_shown(path)}: no such configuration (`{UPDATE_COMMAND}` deletes it)")
    if failing or stale:
        return 1
    aliased = sum(len(c.aliased) for c in changes)
    print(f"URNs unchanged in {len(changes)} configurations" + (f" ({aliased} covered by aliases)" if aliased else ""))
    return 0


def _update(
    selected: Sequence[Configuration], changes: Sequence[UrnChange], stale: Sequence[Path], *, allow_removing_retained: bool
) -> int:
    orphaned = [(c.configuration, urn) for c in changes for urn in c.removed_retained]
    for change in changes:
        if change.removed:  # what leaves the snapshot deserves a look; additions show in `git diff`
            print(change.describe() + "\n")
    if orphaned and not allow_removing_retained:
        print("refusing to update: these retained resources would leave the snapshot without an alias")
        print("(add aliases, or pass --allow-removing-retained if they are meant to go):")
        print("\n".join(f"  {name}: {urn}" for name, urn in orphaned))
        return 1
    SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for configuration in selected:
        current = current_registrations(configuration.name)
        change = next(c for c in changes if c.configuration == configuration.name)
        path = snapshot_path(configuration)
        summary = (
            (
                f"+{len(change.added)} -{len(change.removed)} ~{len(change.aliased)} aliased"
                f" *{len(change.retention)} retention"
            ) if path.exists() else "new"
        )
        path.write_text(snapshot_text(configuration, current))
        print(f"wrote {_shown(path)}: {len({r.urn for r in current})} URNs ({summary})")
    for path in stale:
        path.unlink()
        print(f"deleted {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
