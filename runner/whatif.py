"""What-if plans: the plan the organization *would* produce after a hypothetical change.

`python -m runner whatif --move ACCOUNT --to OU | --close ACCOUNT | --tag ACCOUNT KEY=VALUE |
--untag ACCOUNT KEY` runs the real discovery and planner against the live organization (or the demo's
emulator) seen through two wrappers:

- `ReadOnlyOrganizations` passes `Describe*`/`List*` calls (and paginators) through and refuses every
  other operation before it reaches AWS, so nothing in a what-if can change the organization;
- `HypotheticalOrganizations` answers those reads as if the changes had been made: a moved account
  is listed under its new parent and nowhere else, a closed one is `SUSPENDED`, tags are added or
  removed in `ListTagsForResource`.

Both plans (today's and the hypothetical one) are built from the same stack list, so the difference
between them is exactly what the change would do. No stack is touched: only `list_stacks` is called.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from botocore.exceptions import ClientError

from components.shared.errors import UsageError

from .discovery import Backoff, DiscoverySettings, describe_outside, discover, with_outside
from .model import Plan, PlannedOperation, StackInfo
from .planning import PlanSettings, build_plan

READ_PREFIXES = ("describe_", "list_")
CLOSED_STATE = "SUSPENDED"
ACCOUNT_PATTERN = re.compile(r"^\d{12}$")
PARENT_PATTERN = re.compile(r"^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$")


class ReadOnlyViolation(UsageError):
    """Something asked a what-if for an operation that would change the organization."""


class ReadOnlyOrganizations:
    """An Organizations client that only reads: `describe_*`, `list_*` and paginators pass, anything else raises.

    The refusal happens before botocore builds a request, so a bug in a what-if cannot create, move,
    tag or close anything, whatever credentials the runner holds.
    """

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name in ("exceptions", "meta", "get_paginator", "can_paginate") or name.startswith(READ_PREFIXES):
            return getattr(self._client, name)
        raise ReadOnlyViolation(f"what-if refused Organizations {name}: it is not a read operation, and a what-if changes nothing")


@dataclass(frozen=True)
class Change:
    """One hypothetical change: `move` (to `target`), `close`, `tag` (`key`=`value`) or `untag` (`key`)."""

    kind: str
    account_id: str
    target: str = ""
    key: str = ""
    value: str = ""

    def describe(self) -> str:
        if self.kind == "move":
            return f"move {self.account_id} to {self.target}"
        if self.kind == "close":
            return f"close {self.account_id}"
        if self.kind == "tag":
            return f"tag {self.account_id} {self.key}={self.value}"
        return f"untag {self.account_id} {self.key}"


def _account_id(flag: str, value: str) -> str:
    if not ACCOUNT_PATTERN.match(value):
        raise UsageError(f"{flag} {value!r}: not a 12-digit account id; for example: {flag} 123456789012")
    return value


def parse_changes(
    move: Sequence[str] = (), to: Sequence[str] = (), close: Sequence[str] = (),
    tag: Sequence[Sequence[str]] = (), untag: Sequence[Sequence[str]] = (),
) -> list[Change]:
    """The changes of a `whatif` command line, validated; raises `UsageError` naming the flag."""
    if len(move) != len(to):
        raise UsageError(f"--move and --to come in pairs; got {len(move)} --move and {len(to)} --to; for example: --move 123456789012 --to ou-ab12-11111111")
    changes: list[Change] = []
    for account, target in zip(move, to):
        if not PARENT_PATTERN.match(target):
            raise UsageError(f"--to {target!r}: not an OU or root id; for example: --to ou-ab12-11111111")
        changes.append(Change("move", _account_id("--move", account), target=target))
    changes.extend(Change("close", _account_id("--close", account)) for account in close)
    for account, pair in tag:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {account} {pair!r}: give the tag as KEY=VALUE; for example: --tag {account} datalake:silo=false")
        changes.append(Change("tag", _account_id("--tag", account), key=key, value=value))
    for account, key in untag:
        if not key:
            raise UsageError("--untag needs a tag key; for example: --untag 123456789012 datalake:silo")
        changes.append(Change("untag", _account_id("--untag", account), key=key))
    if not changes:
        raise UsageError("whatif needs a change: --move ACCOUNT --to OU, --close ACCOUNT, --tag ACCOUNT KEY=VALUE or --untag ACCOUNT KEY")
    return changes


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class HypotheticalOrganizations:
    """Reads of the organization as they would look after `changes` (applied in order), through `ReadOnlyOrganizations`."""

    def __init__(self, client: Any, changes: Iterable[Change]):
        self._client = client if isinstance(client, ReadOnlyOrganizations) else ReadOnlyOrganizations(client)
        self._records: dict[str, dict[str, Any]] = {}
        self._parent: dict[str, str] = {}
        self._tags: dict[str, dict[str, Optional[str]]] = {}
        for change in changes:
            record = self._records.get(change.account_id) or self._describe(change)
            if change.kind == "move":
                self._check_parent(change.target)
                self._parent[change.account_id] = change.target
            elif change.kind == "close":
                record = {**record, "State": CLOSED_STATE, "Status": CLOSED_STATE}
            else:
                self._tags.setdefault(change.account_id, {})[change.key] = change.value if change.kind == "tag" else None
            self._records[change.account_id] = record

    def _describe(self, change: Change) -> dict[str, Any]:
        try:
            return dict(self._client.describe_account(AccountId=change.account_id)["Account"])
        except ClientError as exc:
            if _error_code(exc) == "AccountNotFoundException":
                raise UsageError(f"--{change.kind} {change.account_id}: the organization has no such account") from None
            raise

    def _check_parent(self, parent: str) -> None:
        try:
            if parent.startswith("r-"):
                if parent not in {r["Id"] for r in self._client.list_roots()["Roots"]}:
                    raise UsageError(f"--to {parent}: the organization has no such root")
            else:
                self._client.describe_organizational_unit(OrganizationalUnitId=parent)
        except ClientError as exc:
            if _error_code(exc) in ("OrganizationalUnitNotFoundException", "ParentNotFoundException"):
                raise UsageError(f"--to {parent}: the organization has no such OU") from None
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _as_now(self, record: Mapping[str, Any]) -> dict[str, Any]:
        changed = self._records.get(record["Id"])
        return {**record, "State": changed["State"], "Status": changed.get("Status", changed["State"])} if changed else dict(record)

    def list_accounts_for_parent(self, **kwargs: Any) -> dict[str, Any]:
        page = dict(self._client.list_accounts_for_parent(**kwargs))
        parent = kwargs["ParentId"]
        accounts = [self._as_now(a) for a in page.get("Accounts", []) if self._parent.get(a["Id"], parent) == parent]
        if not page.get("NextToken"):
            listed = {a["Id"] for a in accounts}
            accounts += [self._records[a] for a, p in sorted(self._parent.items()) if p == parent and a not in listed]
        page["Accounts"] = accounts
        return page

    def describe_account(self, **kwargs: Any) -> dict[str, Any]:
        response = dict(self._client.describe_account(**kwargs))
        response["Account"] = self._as_now(response["Account"])
        return response

    def list_tags_for_resource(self, **kwargs: Any) -> dict[str, Any]:
        page = dict(self._client.list_tags_for_resource(**kwargs))
        overlay = self._tags.get(kwargs["ResourceId"], {})
        tags = [t for t in page.get("Tags", []) if t["Key"] not in overlay]
        if not page.get("NextToken"):
            tags += [{"Key": k, "Value": v} for k, v in overlay.items() if v is not None]
        page["Tags"] = tags
        return page


def plan_organization(
    org: Any, settings: DiscoverySettings, stacks: Sequence[StackInfo], template: Mapping[str, Any],
    plan_settings: PlanSettings, opt_out_label: str, backoff: Optional[Backoff] = None,
) -> Plan:
    """Discovery (silo OU, then the stacks' accounts outside it) and the plan: what `plan` does."""
    backoff = backoff or Backoff()
    discovery = discover(org, settings, backoff)
    found = {a.id for a in discovery.accounts}
    orphans = [s.account_id for s in stacks if s.account_id and s.account_id not in found]
    discovery = with_outside(discovery, describe_outside(org, orphans, settings, backoff))
    return build_plan(discovery, stacks, template, plan_settings, opt_out_label)


@dataclass(frozen=True)
class Difference:
    """One account whose line in the plan the change would alter."""

    account_id: str
    account_name: str
    today: str
    after: str


@dataclass(frozen=True)
class WhatIf:
    changes: tuple[Change, ...]
    today: Plan
    after: Plan
    differences: tuple[Difference, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [c.describe() for c in self.changes],
            "plan": self.after.to_json(),
            "differences": [d.__dict__ for d in self.differences],
        }


def _line(op: Optional[PlannedOperation]) -> str:
    if op is None:
        return "nothing"
    return f"{op.label}{' (held)' if op.held else ''}: {op.reason}"


def differences(today: Plan, after: Plan) -> list[Difference]:
    before = {op.account_id: op for op in today.operations}
    later = {op.account_id: op for op in after.operations}
    found = []
    for account in sorted(set(before) | set(later)):
        a, b = before.get(account), later.get(account)
        if _line(a) != _line(b):
            name = (b or a).account_name  # type: ignore[union-attr]
            found.append(Difference(account, name, _line(a), _line(b)))
    return found


def what_if(
    org: Any, changes: Sequence[Change], plan: Callable[[Any], Plan],
) -> WhatIf:
    """Today's plan and the plan after `changes`; `plan(org_client)` builds a plan from an Organizations client.

    Both plans read the organization only through `ReadOnlyOrganizations`.
    """
    reader = ReadOnlyOrganizations(org)
    today = plan(reader)
    after = plan(HypotheticalOrganizations(reader, changes))
    return WhatIf(tuple(changes), today, after, tuple(differences(today, after)))


def differences_table(result: WhatIf) -> str:
    from .report import table

    if not result.differences:
        return "The change would not alter the plan."
    rows = [(d.account_id, d.account_name, d.today, d.after) for d in result.differences]
    return table(("account", "name", "today", "after the change"), rows)
