"""Discovery: which accounts live under the silo OU (at any depth), with their status, opt-out and profile tags.

Every Organizations call goes through `_call`, which retries throttling with exponential backoff
(Organizations allows a few requests per second per account, and the schedule, the events rule and
a person may all run the runner at once). Any other failure, or throttling that outlasts the
retries, raises `DiscoveryError`: a partial walk would make accounts look gone, and the planner
must never retire stacks on the strength of a partial walk.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from botocore.exceptions import BotoCoreError, ClientError

from components.errors import DiscoveryError

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

    def delay(self, attempt: int) -> float:
        # Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))


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
            backoff.retries += 1
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


def _account(record: dict[str, Any], path: str, client: Any, settings: DiscoverySettings, backoff: Backoff) -> Account:
    status = _status(record)
    # A suspended account's tags no longer matter: it is retired either way.
    tags = _tags(client, record["Id"], backoff) if status == "ACTIVE" else {}
    return Account(
        id=record["Id"],
        name=record.get("Name", ""),
        status=status,
        ou_path=path,
        opted_out=_opted_out(tags, settings),
        excluded=_exclusion(record["Id"], settings),
        profile=tags.get(settings.profile_tag, "").strip(),
    )


def discover(client: Any, settings: DiscoverySettings, backoff: Optional[Backoff] = None) -> Discovery:
    """Walks the silo OU and every OU below it (all pages) and returns its accounts, sorted by id."""
    backoff = backoff or Backoff()
    started = time.perf_counter()
    root = _call(client, "describe_organizational_unit", backoff, OrganizationalUnitId=settings.silo_ou_id) or {}
    queue = [(settings.silo_ou_id, root["OrganizationalUnit"].get("Name", settings.silo_ou_id))]
    accounts: list[Account] = []
    while queue:
        ou_id, path = queue.pop()
        for record in _pages(client, "list_accounts_for_parent", "Accounts", backoff, ParentId=ou_id):
            accounts.append(_account(record, path, client, settings, backoff))
        for child in _pages(client, "list_organizational_units_for_parent", "OrganizationalUnits", backoff, ParentId=ou_id):
            queue.append((child["Id"], f"{path}/{child.get('Name', child['Id'])}"))
    accounts.sort(key=lambda a: a.id)
    seconds = time.perf_counter() - started
    log.info(
        "discovered %d accounts under %s in %.2fs (%d throttled calls retried)",
        len(accounts), settings.silo_ou_id, seconds, backoff.retries,
    )
    return Discovery(silo_ou_id=settings.silo_ou_id, accounts=tuple(accounts), seconds=seconds)


def describe_outside(
    client: Any, account_ids: Iterable[str], settings: DiscoverySettings, backoff: Optional[Backoff] = None
) -> dict[str, Optional[Account]]:
    """Status of accounts that have a stack but were not found under the silo OU.

    An account the organization no longer knows (`AccountNotFoundException`) maps to None.
    """
    backoff = backoff or Backoff()
    found: dict[str, Optional[Account]] = {}
    for account_id in sorted(set(account_ids)):
        response = _call(client, "describe_account", backoff, ("AccountNotFoundException",), AccountId=account_id)
        if response is None:
            found[account_id] = None
            continue
        record = response["Account"]
        # Outside the silo OU the opt-out tag does not matter: the account is retired either way.
        found[account_id] = Account(
            id=account_id,
            name=record.get("Name", ""),
            status=_status(record),
            ou_path="(outside the silo OU)",
            excluded=_exclusion(account_id, settings),
        )
    return found


def with_outside(discovery: Discovery, outside: dict[str, Optional[Account]]) -> Discovery:
    return Discovery(discovery.silo_ou_id, discovery.accounts, dict(outside), discovery.seconds)
