"""The runner's plain data: what discovery found, what the backend holds, what the plan does."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from components.shared.environments import account_of_silo_stack, name_namespace, silo_stack_name
from components.silo.settings import Override

STACK_PREFIX = "silo-"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
"""Exit codes of `python -m runner`: done, some operation failed, bad usage or configuration."""
ACTIVE = "ACTIVE"
# Statuses of accounts that are closed or closing: nothing in them can be reached any more.
CLOSED_STATUSES = frozenset({"SUSPENDED", "PENDING_CLOSURE", "CLOSED"})


def stack_name(account_id: str, environment: Optional[str] = None) -> str:
    """The one stack of a silo account: `silo-<account-id>`, or `silo-<env>-<account-id>` in environment `<env>`."""
    return silo_stack_name(account_id, environment)


def account_of_stack(name: str, environment: Optional[str] = None) -> Optional[str]:
    """`silo-123456789012` → `123456789012`; None for stacks that are not silo stacks of `environment`
    (e.g. `master`, or `silo-staging-123456789012` for the default environment, and the reverse)."""
    return account_of_silo_stack(name, environment)


def exclusion(account_id: str, allow: frozenset[str], deny: frozenset[str]) -> str:
    """Why the allow/deny lists leave an account alone ('' when they do not)."""
    if account_id in deny:
        return "in the deny-list"
    if allow and account_id not in allow:
        return "not in the allow-list"
    return ""


@dataclass(frozen=True)
class Account:
    """One Organizations account as discovery saw it."""

    id: str
    name: str
    status: str
    """`ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, ... (the account's `State`, or `Status` on older APIs)."""
    ou_path: str = ""
    """Names of the OUs from the silo OU down to the account's parent, e.g. `silo/emea`."""
    opted_out: bool = False
    """The account carries the opt-out tag (e.g. `datalake:silo=false`)."""
    excluded: str = ""
    """Why the runner's allow/deny lists leave the account out ('' when they do not)."""
    profile: str = ""
    """Value of the profile tag (`datalake:profile`): the silo profile the account asks for ('' none)."""

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    @property
    def wanted(self) -> bool:
        """An ACTIVE account of the silo OU that nobody opted out: it should have a silo stack."""
        return self.active and not self.opted_out and not self.excluded


@dataclass(frozen=True)
class Discovery:
    """Accounts found under the silo OU (recursively) and the status of stack accounts found elsewhere."""

    silo_ou_id: str
    accounts: tuple[Account, ...]
    outside: dict[str, Optional[Account]] = field(default_factory=dict)
    """Accounts that have a stack but are not under the silo OU: their record, or None when the
    organization no longer knows them (removed, or closed more than 90 days ago)."""
    seconds: float = 0.0
    tags_read: dict[str, Any] = field(default_factory=dict)
    """Accounts whose tags this run read, and what they said (`discovery.TagVerdict`, to be recorded in the ledger)."""
    tag_sweep: str = ""
    """Why this run read every account's tags ('' when it read only new and named accounts)."""


@dataclass(frozen=True)
class StackInfo:
    """One existing stack in the backend."""

    name: str
    silo_name: Optional[str] = None
    """The silo name the stack was created with (stack tag or `siloName` output), if known."""
    environment: Optional[str] = None
    """The environment whose runner looks at the stack: only that environment's silo stacks have an account."""

    @property
    def account_id(self) -> Optional[str]:
        return account_of_stack(self.name, self.environment)


class Action(str, enum.Enum):
    """What the runner does to one account's stack."""

    CREATE = "create"
    UPDATE = "update"
    RETIRE_FORGET = "retire-forget"
    """Account closed, suspended or gone: export the state, then remove the stack without destroy."""
    RETIRE_DESTROY = "retire-destroy"
    """Account alive but moved out or opted out: destroy (data buckets are retained), then remove."""
    DRIFT = "drift"

    @property
    def retires(self) -> bool:
        return self in (Action.RETIRE_FORGET, Action.RETIRE_DESTROY)


@dataclass(frozen=True)
class PlannedOperation:
    """One line of the plan."""

    account_id: str
    account_name: str
    stack: str
    action: Action
    reason: str
    silo_name: Optional[str] = None
    config: Optional[dict[str, Any]] = None
    """The validated stack config to write before create/update (None for retirements)."""
    held: str = ""
    """Why the runner holds this operation back (mass-retire protection); '' when it runs."""
    unchanged: str = ""
    """Why the operation is skipped as already done (`unchanged (since <date>)`, from the ledger); '' when it runs."""
    profile: str = ""
    """The silo profile applied over the template (from the account's tag; '' none)."""
    overrides: tuple[Override, ...] = ()
    """Keys the profile or the account's file set over the template, with the file that set each."""
    environment: Optional[str] = None
    """The environment of the stack (None: the default one); its partners live under `/<namespace>/partners/`."""
    destroys_on: str = ""
    """A retire-destroy in its grace period: the date (UTC) it destroys on; '' when it destroys now."""

    @property
    def label(self) -> str:
        """The action as the plan shows it: `retire-destroy pending (destroys on 2026-01-08)` in a grace period."""
        if self.action is Action.RETIRE_DESTROY and self.destroys_on:
            return f"{self.action.value} pending (destroys on {self.destroys_on})"
        return self.action.value

    @property
    def partners(self) -> str:
        """What happens to the silo's dropzone partner users ('' when the operation keeps them)."""
        if self.action is Action.RETIRE_DESTROY:
            if not self.silo_name:
                return "silo name unknown: partners cannot be found, so the destroy will not start"
            path = f"/{name_namespace(self.environment)}/partners/{self.silo_name}/"
            if self.destroys_on:
                return f"revoked now, stack destroyed on {self.destroys_on} ({path})"
            return f"revoked before destroy ({path})"
        if self.action is Action.RETIRE_FORGET:
            return "not revoked: the account cannot be reached"
        return ""

    @property
    def runs(self) -> bool:
        """Neither held by the safety rules nor skipped as unchanged."""
        return not self.held and not self.unchanged

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        data["label"] = self.label
        data["partners"] = self.partners
        data["overrides"] = [{"key": o.key, "source": o.source} for o in self.overrides]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PlannedOperation":
        """The operation `to_json` wrote (a plan read back by a distributed child)."""
        names = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        values["action"] = Action(values["action"])
        values["overrides"] = tuple(Override(**o) if isinstance(o, dict) else o for o in values.get("overrides") or ())
        return cls(**values)


@dataclass(frozen=True)
class Plan:
    """Every planned operation plus the safety verdict."""

    operations: tuple[PlannedOperation, ...]
    existing_stacks: int
    discovered_accounts: int
    held_reason: str = ""

    def runnable(self) -> list[PlannedOperation]:
        """The operations that run: not held, not unchanged."""
        return [op for op in self.operations if op.runs]

    def count(self, action: Action) -> int:
        return sum(1 for op in self.operations if op.action is action)

    def to_json(self) -> dict[str, Any]:
        return {
            "existingStacks": self.existing_stacks,
            "discoveredAccounts": self.discovered_accounts,
            "heldReason": self.held_reason,
            "operations": [op.to_json() for op in self.operations],
        }


class Result(str, enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not started: the failure tolerance was exceeded, or the operation was held."""
    UNCHANGED = "unchanged"
    """Not started because nothing changed: the ledger shows this desired state deployed and no drift since."""
    DRIFTED = "drifted"


@dataclass
class OperationResult:
    """How one planned operation ended."""

    operation: PlannedOperation
    result: Result
    seconds: float = 0.0
    changed: int = 0
    """Resources created, updated, replaced or deleted (for drift: resources that differ)."""
    error: str = ""
    attempts: int = 0
    log_file: str = ""
    changes: list[str] = field(default_factory=list)
    """For drift: one line per differing resource, `<op> <urn>`."""
    notes: list[str] = field(default_factory=list)
    """What a retirement did or could not do besides the stack (e.g. dropzone partners revoked)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "accountId": self.operation.account_id,
            "accountName": self.operation.account_name,
            "stack": self.operation.stack,
            "action": self.operation.action.value,
            "result": self.result.value,
            "seconds": round(self.seconds, 3),
            "changed": self.changed,
            "error": self.error,
            "attempts": self.attempts,
            "logFile": self.log_file,
            "changes": self.changes,
            "notes": self.notes,
        }
