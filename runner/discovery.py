"""Discovery: which accounts live under the silo OU (at any depth), with their status, opt-out and profile tags.

Every Organizations call goes through `_call`, which retries throttling with exponential backoff
(Organizations allows a few requests per second per account, and the schedule, the events rule and
a person may all run the runner at once). Any other failure, or throttling that outlasts the
retries, raises `DiscoveryError`: a partial walk would make accounts look gone, and the planner
must never retire stacks on the strength of a partial walk.

Cost per run. The walk costs one `DescribeOrganizationalUnit`, plus per OU one
`ListAccountsForParent` and one `ListOrganizationalUnitsForParent` per page: it grows with OUs and
pages (20 accounts a page), not with accounts. Account tags (the opt-out tag) cost one
`ListTagsForResource` per account, so they are read only when they may have changed (`TagReads`):

- accounts the runner has no verdict for (new accounts, or a ledger entry without one);
- accounts named by the caller (`apply --account ID`, which the Organizations event rule passes for
  `TagResource`/`UntagResource` and every other account event);
- every active account when a *tag sweep* is due: any discovered account's verdict is older than
  `sweep_hours` (24 by default, so once a day), or the caller forces one (`--tag-sweep`).

Other accounts keep the verdict the runner recorded (the ledger). The calls that remain run with
bounded concurrency (`concurrency`, OUs of one level at once, tag reads at once), each with the same
throttling backoff; `CountingClient` counts them by operation for the run report.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from components.shared.errors import DiscoveryError

from .model import Account, Discovery, exclusion

log = logging.getLogger(__name__)

THROTTLING_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "ConcurrentModificationException", "ServiceException"}
)


@dataclass(frozen=True)
class DiscoverySettings:
    """How discovery filters accounts."""

    silo_ou_id: str
    """The silo OU's id, `ou-xxxx-xxxxxxxx` (the last element of `datalake:siloOuPath`)."""
    opt_out_tag: str = "datalake:silo"
    """Account tag key that opts an account out (default `datalake:silo`)."""
    opt_out_value: str = "false"
    """Value of that tag that opts out, compared case-insensitively (default `false`)."""
    profile_tag: str = "datalake:profile"
    """Account tag key whose value names the account's silo profile (default `datalake:profile`)."""
    allow_accounts: frozenset[str] = frozenset()
    """When not empty, only these accounts are managed; the others are left alone (default empty)."""
    deny_accounts: frozenset[str] = frozenset()
    """Accounts the runner never touches, whatever their OU (default empty)."""


@dataclass
class Backoff:
    """Retry policy for throttled calls; `sleep` is injectable so tests do not wait."""

    max_attempts: int = 8
    base_seconds: float = 0.25
    cap_seconds: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    retries: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def delay(self, attempt: int) -> float:
        # Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))

    def count_retry(self) -> None:
        with self._lock:  # calls are made from several threads
            self.retries += 1


class CountingClient:
    """Wraps an Organizations client and counts every call by operation (retries included).

    `counts` maps the operation's API name (`ListTagsForResource`) to how many requests were made.
    """

    def __init__(self, client: Any):
        self._client = client
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    @staticmethod
    def operation_name(method: str) -> str:
        return "".join(part.capitalize() for part in method.split("_"))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute) or name in ("get_paginator", "can_paginate"):
            return attribute
        operation = self.operation_name(name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.counts[operation] += 1
            return attribute(*args, **kwargs)

        return counted

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _call(
    client: Any, method: str, backoff: Backoff, missing_codes: tuple[str, ...] = (), **kwargs: Any
) -> Optional[dict[str, Any]]:
    """One Organizations call, throttling retried; None when it fails with one of `missing_codes`."""
    for attempt in range(backoff.max_attempts):
        try:
            return getattr(client, method)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in missing_codes:
                return None
            if code not in THROTTLING_CODES:
                raise DiscoveryError(f"Organizations {method} failed: {code}: {exc.response['Error'].get('Message', '')}") from None
            if attempt + 1 == backoff.max_attempts:
                raise DiscoveryError(
                    f"Organizations {method} was still throttled ({code}) after {backoff.max_attempts} attempts; "
                    "try again later or lower how often the runner is triggered"
                ) from None
            backoff.count_retry()
            wait = backoff.delay(attempt)
            log.debug("%s throttled (%s); retrying in %.2fs", method, code, wait)
            backoff.sleep(wait)
        except BotoCoreError as exc:
            raise DiscoveryError(f"Organizations {method} failed: {exc}") from None
    raise AssertionError("unreachable")


def _pages(client: Any, method: str, key: str, backoff: Backoff, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a paginated list call, each page retried on its own."""
    token: Optional[str] = None
    while True:
        page = _call(client, method, backoff, **kwargs, **({"NextToken": token} if token else {})) or {}
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def _status(record: dict[str, Any]) -> str:
    # `State` replaces the deprecated `Status` (it also knows CLOSED); older endpoints send only `Status`.
    return str(record.get("State") or record.get("Status") or "UNKNOWN")


def _tags(client: Any, account_id: str, backoff: Backoff) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in _pages(client, "list_tags_for_resource", "Tags", backoff, ResourceId=account_id)}


def _opted_out(tags: dict[str, str], settings: DiscoverySettings) -> bool:
    value = tags.get(settings.opt_out_tag)
    return value is not None and value.strip().lower() == settings.opt_out_value.lower()


def _exclusion(account_id: str, settings: DiscoverySettings) -> str:
    return exclusion(account_id, settings.allow_accounts, settings.deny_accounts)


@dataclass(frozen=True)
class TagVerdict:
    """What the runner last read from an account's tags."""

    opted_out: bool
    read_at: str
    """When the tags were read (ISO 8601, UTC)."""
    profile: str = ""
    """The profile tag's value ('' none): which silo profile the account asks for."""


@dataclass(frozen=True)
class TagReads:
    """Which accounts' tags discovery reads; the default reads every account's (no verdict known)."""

    known: Mapping[str, TagVerdict] = field(default_factory=dict)
    """Verdicts recorded by earlier runs (the ledger), by account id."""
    named: frozenset[str] = frozenset()
    """Accounts whose tags are read whatever is known (`apply --account`, account events)."""
    sweep_hours: float = 24.0
    """A sweep (every account's tags) is due when a discovered account's verdict is older than this."""
    force_sweep: bool = False
    """Read every account's tags this run (`--tag-sweep`)."""
    now: Optional[datetime] = None
    """The time verdict ages are measured from (default: now; injectable for tests)."""

    def plan(self, active: Iterable[str]) -> tuple[frozenset[str], str]:
        """The active accounts whose tags must be read, and why a sweep happens ('' when none does)."""
        active = frozenset(active)
        if self.force_sweep:
            return active, "forced (--tag-sweep)"
        now = self.now or datetime.now(timezone.utc)
        oldest: Optional[datetime] = None
        for account_id in active & self.known.keys():
            read_at = _parse_time(self.known[account_id].read_at)
            if read_at is None:
                return active, f"account {account_id} has an unreadable tag-read time"
            oldest = read_at if oldest is None or read_at < oldest else oldest
        if oldest is not None and now - oldest > timedelta(hours=self.sweep_hours):
            return active, f"the oldest tag read ({oldest.isoformat()}) is more than {self.sweep_hours:g} h old"
        unknown = active - self.known.keys()
        return frozenset(unknown | (self.named & active)), ""


def _parse_time(text: str) -> Optional[datetime]:
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


T = TypeVar("T")
R = TypeVar("R")


def _bounded(concurrency: int, call: Callable[[T], R], items: list[T]) -> list[R]:
    """`call` over `items` with at most `concurrency` at once; results in order; the first error raises."""
    if len(items) <= 1 or concurrency <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix="organizations") as pool:
        return list(pool.map(call, items))


def _account(record: dict[str, Any], path: str, settings: DiscoverySettings, verdict: Optional[TagVerdict]) -> Account:
    status = _status(record)
    # A suspended account's tags no longer matter: it is retired either way.
    active = status == "ACTIVE" and verdict is not None
    return Account(
        id=record["Id"],
        name=record.get("Name", ""),
        status=status,
        ou_path=path,
        opted_out=active and verdict.opted_out,
        excluded=_exclusion(record["Id"], settings),
        profile=verdict.profile if active else "",
    )


def _verdict(tags: dict[str, str], settings: DiscoverySettings, read_at: str) -> TagVerdict:
    return TagVerdict(opted_out=_opted_out(tags, settings), read_at=read_at, profile=tags.get(settings.profile_tag, "").strip())


def discover(
    client: Any,
    settings: DiscoverySettings,
    backoff: Optional[Backoff] = None,
    *,
    tags: Optional[TagReads] = None,
    concurrency: int = 4,
) -> Discovery:
    """Walks the silo OU and every OU below it (all pages) and returns its accounts, sorted by id.

    `tags` says whose tags to read (default: every active account's); `concurrency` bounds the
    Organizations calls in flight.
    """
    backoff = backoff or Backoff()
    tags = tags or TagReads()
    started = time.perf_counter()
    root = _call(client, "describe_organizational_unit", backoff, OrganizationalUnitId=settings.silo_ou_id) or {}
    level = [(settings.silo_ou_id, root["OrganizationalUnit"].get("Name", settings.silo_ou_id))]
    records: list[tuple[dict[str, Any], str]] = []

    def walk(ou: tuple[str, str]) -> tuple[list[tuple[dict[str, Any], str]], list[tuple[str, str]]]:
        ou_id, path = ou
        found = [(record, path) for record in _pages(client, "list_accounts_for_parent", "Accounts", backoff, ParentId=ou_id)]
        children = [
            (child["Id"], f"{path}/{child.get('Name', child['Id'])}")
            for child in _pages(client, "list_organizational_units_for_parent", "OrganizationalUnits", backoff, ParentId=ou_id)
        ]
        return found, children

    while level:
        next_level: list[tuple[str, str]] = []
        for found, children in _bounded(concurrency, walk, level):
            records.extend(found)
            next_level.extend(children)
        level = next_level

    active = [record["Id"] for record, _ in records if _status(record) == "ACTIVE"]
    to_read, sweep = tags.plan(active)
    read_ids = sorted(to_read)
    read_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    listed = _bounded(concurrency, lambda account_id: _tags(client, account_id, backoff), read_ids)
    read = {account_id: _verdict(found, settings, read_at) for account_id, found in zip(read_ids, listed)}
    accounts = [_account(record, path, settings, read.get(record["Id"], tags.known.get(record["Id"]))) for record, path in records]
    accounts.sort(key=lambda a: a.id)
    seconds = time.perf_counter() - started
    log.info(
        "discovered %d accounts under %s in %.2fs; tags read for %d (%s); %d throttled calls retried",
        len(accounts), settings.silo_ou_id, seconds, len(read),
        f"tag sweep: {sweep}" if sweep else "new or named accounts only", backoff.retries,
    )
    return Discovery(silo_ou_id=settings.silo_ou_id, accounts=tuple(accounts), seconds=seconds, tags_read=read, tag_sweep=sweep)


def describe_outside(
    client: Any,
    account_ids: Iterable[str],
    settings: DiscoverySettings,
    backoff: Optional[Backoff] = None,
    *,
    concurrency: int = 4,
) -> dict[str, Optional[Account]]:
    """Status of accounts that have a stack but were not found under the silo OU.

    An account the organization no longer knows (`AccountNotFoundException`) maps to None.
    """
    backoff = backoff or Backoff()

    def describe(account_id: str) -> Optional[Account]:
        response = _call(client, "describe_account", backoff, ("AccountNotFoundException",), AccountId=account_id)
        if response is None:
            return None
        record = response["Account"]
        # Outside the silo OU the opt-out tag does not matter: the account is retired either way.
        return Account(
            id=account_id,
            name=record.get("Name", ""),
            status=_status(record),
            ou_path="(outside the silo OU)",
            excluded=_exclusion(account_id, settings),
        )

    ids = sorted(set(account_ids))
    return dict(zip(ids, _bounded(concurrency, describe, ids)))


def with_outside(discovery: Discovery, outside: dict[str, Optional[Account]]) -> Discovery:
    return replace(discovery, outside=dict(outside))
