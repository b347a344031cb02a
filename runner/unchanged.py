"""Skipping what has not changed: each operation's desired-state fingerprint, checked against the ledger.

A create or update is marked `unchanged (since <date>)` when its stack's ledger entry records a
successful deployment of the same fingerprint and no drift since (`LedgerEntry.skip_reason`). The
fingerprint covers what `pulumi up` would deploy:

- the program bundle (`bundle_digest` of the project: `__main__.py`, `components/`, `functions/`,
  `Pulumi.yaml`, the requirements);
- the rendered stack config (the template with the account's id and silo name);
- the Pulumi CLI version and the provider plugin versions the run would use (asked once per run
  through `StackOperations.versions()`: `pulumi version` and `pulumi plugin ls --json`);
- upstream inputs the program reads at deploy time (the master stack's outputs through its
  `StackReference`), as a digest.

A create is never skipped (its stack does not exist yet, whatever the ledger says); neither is a
stack named by `--force`, nor any stack under `--force` alone. Retirements do not use the ledger.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from dataclasses import dataclass, field, replace
from typing import Optional

from .discovery import TagVerdict
from .ledger import GRACE_STARTED, LedgerEntry, fingerprint
from .model import Action, Plan, PlannedOperation

ALL = "*"
"""`--force` with no account: every stack."""


@dataclass(frozen=True)
class DesiredState:
    """What every stack of this run would be deployed from (the per-stack config comes from the plan)."""

    bundle: str
    cli_version: str
    plugins: Mapping[str, str]
    upstream: Mapping[str, str] = field(default_factory=dict)
    """Digests of inputs read at deploy time, e.g. `{"masterOutputs": "sha256:..."}`."""

    def of(self, op: PlannedOperation) -> str:
        """The fingerprint of one create/update ('' for operations that deploy nothing)."""
        if op.action not in (Action.CREATE, Action.UPDATE) or op.config is None:
            return ""
        config = dict(op.config)
        for key, digest in self.upstream.items():
            # Upstream digests ride in the config document under a key no stack config can have
            # (config keys are `namespace:key`), so a fingerprint without upstream inputs is unchanged.
            config[f"(upstream) {key}"] = digest
        return fingerprint(bundle=self.bundle, config=config, cli_version=self.cli_version, plugins=self.plugins)


def mark_unchanged(plan: Plan, entries: Mapping[str, LedgerEntry], desired: DesiredState, force: Collection[str] = ()) -> tuple[Plan, dict[str, str]]:
    """The plan with unchanged updates marked, and every create/update's fingerprint by stack.

    `force` holds account ids, or `ALL`: those stacks are deployed even when unchanged.
    """
    wanted: dict[str, str] = {}
    operations = []
    for op in plan.operations:
        desired_print = desired.of(op)
        if desired_print:
            wanted[op.stack] = desired_print
        reason = ""
        entry = entries.get(op.stack)
        # An account back from a retirement's grace period runs: its partners were revoked meanwhile.
        if op.action is Action.UPDATE and entry is not None and not op.held and not _forced(op, force) and GRACE_STARTED not in entry.extra:
            reason = entry.skip_reason(desired_print)
        operations.append(replace(op, unchanged=reason) if reason else op)
    return replace(plan, operations=tuple(operations)), wanted


def _forced(op: PlannedOperation, force: Collection[str]) -> bool:
    return ALL in force or op.account_id in force


def tag_verdicts(entries: Mapping[str, LedgerEntry]) -> dict[str, TagVerdict]:
    """The opt-out verdicts the ledger holds, by account id (entries that never read tags give none)."""
    return {
        entry.account_id: TagVerdict(opted_out=entry.opted_out, read_at=entry.tags_read_at, profile=entry.tag_profile)
        for entry in entries.values()
        if entry.opted_out is not None and entry.tags_read_at
    }


def coalesced(entry: Optional[LedgerEntry], wanted: str) -> str:
    """Why an operation that met a lock need not run any more: another run deployed the same state meanwhile.

    Asked before a lock retry, with the entry read again: a second run for the same account (two
    events, a schedule and an event) waits for the first one's lock, then finds its work done.
    """
    if entry is None or not wanted or not entry.skip_reason(wanted):
        return ""
    return f"coalesced: another run deployed this state at {entry.deployed_at}"


def declared_versions(cli_version: str, requirements: Path) -> tuple[str, dict[str, str]]:
    """The versions pinned in the project (for `plan --stacks-from`, where no CLI can be asked).

    The CLI is the one the builds install (`runner.pulumiVersion`); each `pulumi-<name>` SDK pinned
    in `requirements` stands for its resource plugin of the same version (`pulumi-aws==7.51.1` →
    `aws: 7.51.1`). A deployment through the CLI records what `pulumi plugin ls` reports, so a plan
    from a file backend predicts the skip; it changes nothing either way.
    """
    plugins = {}
    for line in requirements.read_text().splitlines() if requirements.is_file() else []:
        name, _, version = line.split("#", 1)[0].strip().partition("==")
        if name.startswith("pulumi-") and version:
            plugins[name[len("pulumi-"):]] = version.strip()
    return cli_version, plugins
