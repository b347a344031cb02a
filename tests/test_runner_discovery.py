"""Discovery against moto Organizations: nested OUs, pagination, status, opt-out, throttling, failures."""

from __future__ import annotations

import threading

import boto3
import pytest
from moto import mock_aws

from components.shared.errors import DiscoveryError
from offline.boto_faults import fail_with_error
from runner.discovery import Backoff, DiscoverySettings, describe_outside, discover


@pytest.fixture
def org():
    with mock_aws():
        client = boto3.client("organizations", region_name="us-east-1")
        client.create_organization(FeatureSet="ALL")
        yield client


def _ou(org, parent: str, name: str) -> str:
    return org.create_organizational_unit(ParentId=parent, Name=name)["OrganizationalUnit"]["Id"]


def _account(org, name: str, parent: str) -> str:
    root = org.list_roots()["Roots"][0]["Id"]
    account_id = org.create_account(Email=f"{name.replace(' ', '')}@example.com", AccountName=name)["CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=parent)
    return account_id


def _no_wait() -> Backoff:
    return Backoff(sleep=lambda _: None)


def test_walks_nested_ous_and_every_page(org):
    root = org.list_roots()["Roots"][0]["Id"]
    silo = _ou(org, root, "silos")
    emea = _ou(org, silo, "emea")
    prod = _ou(org, emea, "prod")
    other = _ou(org, root, "other")
    # 25 accounts in one OU: moto returns 20 per page, so a walk that ignores NextToken loses 5.
    deep = {_account(org, f"deep {i}", prod) for i in range(25)}
    top = _account(org, "top", silo)
    outside = _account(org, "outside", other)

    found = discover(org, DiscoverySettings(silo_ou_id=silo), _no_wait())

    ids = [a.id for a in found.accounts]
    assert set(ids) == deep | {top}
    assert outside not in ids
    assert ids == sorted(ids)
    by_id = {a.id: a for a in found.accounts}
    assert by_id[top].ou_path == "silos"
    assert {by_id[i].ou_path for i in deep} == {"silos/emea/prod"}
    assert all(a.status == "ACTIVE" and a.wanted for a in found.accounts)


def test_suspended_and_opted_out_accounts_are_not_wanted(org):
    root = org.list_roots()["Roots"][0]["Id"]
    silo = _ou(org, root, "silos")
    closed = _account(org, "closed", silo)
    opted = _account(org, "opted", silo)
    other_tag = _account(org, "other tag", silo)
    org.close_account(AccountId=closed)
    org.tag_resource(ResourceId=opted, Tags=[{"Key": "datalake:silo", "Value": "FALSE"}])
    org.tag_resource(ResourceId=other_tag, Tags=[{"Key": "datalake:silo", "Value": "true"}])

    by_id = {a.id: a for a in discover(org, DiscoverySettings(silo_ou_id=silo), _no_wait()).accounts}

    assert by_id[closed].status == "SUSPENDED" and not by_id[closed].wanted
    assert by_id[opted].opted_out and not by_id[opted].wanted
    assert by_id[other_tag].wanted and not by_id[other_tag].opted_out


def test_allow_and_deny_lists_exclude_accounts(org):
    root = org.list_roots()["Roots"][0]["Id"]
    silo = _ou(org, root, "silos")
    a, b, c = (_account(org, name, silo) for name in ("a", "b", "c"))

    settings = DiscoverySettings(silo_ou_id=silo, allow_accounts=frozenset({a, b}), deny_accounts=frozenset({b}))
    by_id = {x.id: x for x in discover(org, settings, _no_wait()).accounts}

    assert by_id[a].wanted
    assert by_id[b].excluded == "in the deny-list"
    assert by_id[c].excluded == "not in the allow-list"


def test_accounts_outside_the_ou_are_looked_up(org):
    root = org.list_roots()["Roots"][0]["Id"]
    silo = _ou(org, root, "silos")
    sandbox = _ou(org, root, "sandbox")
    moved = _account(org, "moved", silo)
    removed = _account(org, "removed", silo)
    org.move_account(AccountId=moved, SourceParentId=silo, DestinationParentId=sandbox)
    org.remove_account_from_organization(AccountId=removed)

    outside = describe_outside(org, [moved, removed], DiscoverySettings(silo_ou_id=silo), _no_wait())

    assert outside[moved] is not None and outside[moved].status == "ACTIVE"
    assert outside[removed] is None


def throttled(client, n: int, methods=("list_accounts_for_parent",)):
    """`client` whose first `n` calls of each listed method fail with TooManyRequestsException.

    The fault sits after botocore's parameter validation (offline.boto_faults), so a throttled
    call is still a valid call.
    """
    for method in methods:
        fail_with_error(client, method, "TooManyRequestsException", "Rate exceeded", times=n)
    return client


def test_throttling_is_retried_with_backoff(org):
    root = org.list_roots()["Roots"][0]["Id"]
    silo = _ou(org, root, "silos")
    account = _account(org, "a", silo)
    waits: list[float] = []
    backoff = Backoff(sleep=waits.append, base_seconds=0.1)

    found = discover(throttled(org, 3), DiscoverySettings(silo_ou_id=silo), backoff)

    assert [a.id for a in found.accounts] == [account]
    assert backoff.retries == 3 and len(waits) == 3
    assert all(0 <= w <= 0.1 * 2**i for i, w in enumerate(waits))


def test_throttling_that_outlasts_the_retries_fails_discovery(org):
    root = org.list_roots()["Roots"][0]["Id"]
    silo = _ou(org, root, "silos")
    _account(org, "a", silo)

    with pytest.raises(DiscoveryError, match="still throttled .* after 4 attempts"):
        discover(throttled(org, 10), DiscoverySettings(silo_ou_id=silo), Backoff(max_attempts=4, sleep=lambda _: None))


def test_unknown_ou_fails_discovery_with_the_reason(org):
    with pytest.raises(DiscoveryError, match="describe_organizational_unit failed: OrganizationalUnitNotFoundException"):
        discover(org, DiscoverySettings(silo_ou_id="ou-abcd-12345678"), _no_wait())


# --- Organization scale: calls grow with OUs and pages, tags are read only when they may have changed ---

from datetime import datetime, timedelta, timezone  # noqa: E402
import time  # noqa: E402

from runner.discovery import CountingClient, TagReads, TagVerdict  # noqa: E402

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _fresh(hours_ago: float = 1.0, opted_out: bool = False) -> TagVerdict:
    return TagVerdict(opted_out=opted_out, read_at=(NOW - timedelta(hours=hours_ago)).isoformat())


def _fleet(org, per_ou: int = 25):
    """silos/{emea,americas}: 2 x 25 accounts plus 1 at the top (moto pages 20 accounts)."""
    root = org.list_roots()["Roots"][0]["Id"]
    silo = _ou(org, root, "silos")
    ids = [_account(org, "top", silo)]
    for name in ("emea", "americas"):
        ou = _ou(org, silo, name)
        ids += [_account(org, f"{name} {i}", ou) for i in range(per_ou)]
    return silo, sorted(ids)


def test_counting_client_counts_every_request_by_operation(org):
    silo, ids = _fleet(org)
    counting = CountingClient(org)

    discover(counting, DiscoverySettings(silo_ou_id=silo), _no_wait())

    # 3 OUs; 25 accounts are 2 pages of 20; every active account's tags read once (no verdicts known).
    assert dict(counting.counts) == {
        "DescribeOrganizationalUnit": 1,
        "ListAccountsForParent": 1 + 2 + 2,
        "ListOrganizationalUnitsForParent": 3,
        "ListTagsForResource": len(ids),
    }
    assert counting.total == 1 + 5 + 3 + len(ids)


def test_no_change_run_reads_no_tags_when_every_verdict_is_fresh(org):
    silo, ids = _fleet(org)
    opted = ids[3]
    org.tag_resource(ResourceId=opted, Tags=[{"Key": "datalake:silo", "Value": "false"}])
    known = {account: _fresh(opted_out=account == opted) for account in ids}
    counting = CountingClient(org)

    found = discover(counting, DiscoverySettings(silo_ou_id=silo), _no_wait(), tags=TagReads(known=known, now=NOW))

    assert "ListTagsForResource" not in counting.counts
    assert counting.total == 1 + 5 + 3  # OUs and pages only
    assert found.tags_read == {} and found.tag_sweep == ""
    by_id = {a.id: a for a in found.accounts}
    assert by_id[opted].opted_out and not by_id[opted].wanted  # the recorded verdict stands
    assert sum(a.wanted for a in found.accounts) == len(ids) - 1


def test_new_and_named_accounts_get_their_tags_read(org):
    silo, ids = _fleet(org, per_ou=3)
    new, named = ids[0], ids[1]
    # The ledger says `named` is not opted out; an UntagResource/TagResource event named it, and it is.
    org.tag_resource(ResourceId=named, Tags=[{"Key": "datalake:silo", "Value": "false"}])
    known = {account: _fresh() for account in ids if account != new}
    counting = CountingClient(org)

    found = discover(counting, DiscoverySettings(silo_ou_id=silo), _no_wait(), tags=TagReads(known=known, named=frozenset({named}), now=NOW))

    assert counting.counts["ListTagsForResource"] == 2
    assert {k: v.opted_out for k, v in found.tags_read.items()} == {new: False, named: True}
    assert {a.id: a.opted_out for a in found.accounts}[named] is True


def test_a_recorded_profile_is_kept_between_sweeps_and_a_read_one_replaces_it(org):
    silo, ids = _fleet(org, per_ou=2)
    tagged, other = ids[0], ids[1]
    org.tag_resource(ResourceId=tagged, Tags=[{"Key": "datalake:profile", "Value": "big-warehouse"}])
    known = {account: _fresh() for account in ids}
    known[other] = TagVerdict(opted_out=False, read_at=known[other].read_at, profile="small")

    found = discover(org, DiscoverySettings(silo_ou_id=silo), _no_wait(), tags=TagReads(known=known, named=frozenset({tagged}), now=NOW))

    profiles = {a.id: a.profile for a in found.accounts}
    assert profiles[tagged] == "big-warehouse" and found.tags_read[tagged].profile == "big-warehouse"  # read: the event named it
    assert profiles[other] == "small" and other not in found.tags_read  # not read: the ledger's verdict stands


def test_a_sweep_is_due_once_any_verdict_is_older_than_the_sweep_interval(org):
    silo, ids = _fleet(org, per_ou=3)
    stale = {account: _fresh(hours_ago=25 if account == ids[2] else 1) for account in ids}
    counting = CountingClient(org)

    found = discover(counting, DiscoverySettings(silo_ou_id=silo), _no_wait(), tags=TagReads(known=stale, now=NOW))

    assert counting.counts["ListTagsForResource"] == len(ids)
    assert set(found.tags_read) == set(ids)
    assert found.tag_sweep.startswith("the oldest tag read (2026-11-30T11:00:00+00:00) is more than 24 h old")


@pytest.mark.parametrize(
    "known, reads, sweep",
    [
        # (hours ago per account a, b, c; None = no verdict), expected reads, sweep reason prefix
        ({"a": 1, "b": 2, "c": 23.9}, set(), ""),
        ({"a": 1, "b": 2}, {"c"}, ""),
        ({"a": 1, "b": 2, "c": 24.1}, {"a", "b", "c"}, "the oldest tag read"),
        # A stale verdict of an account no longer discovered does not force a sweep every run.
        ({"a": 1, "b": 2, "c": 3, "gone": 500}, set(), ""),
    ],
)
def test_tag_read_planning(known, reads, sweep):
    policy = TagReads(known={k: _fresh(hours_ago=v) for k, v in known.items()}, now=NOW)
    planned, reason = policy.plan(["a", "b", "c"])
    assert set(planned) == reads
    assert reason.startswith(sweep) and bool(reason) is bool(sweep)


def test_forced_sweep_named_outside_the_ou_and_unreadable_times():
    fresh = {k: _fresh() for k in "abc"}
    assert TagReads(known=fresh, force_sweep=True, now=NOW).plan("abc") == (frozenset("abc"), "forced (--tag-sweep)")
    # A named account that is not active under the OU has no tags worth reading.
    assert TagReads(known=fresh, named=frozenset({"z"}), now=NOW).plan("abc") == (frozenset(), "")
    broken = {**fresh, "b": TagVerdict(opted_out=False, read_at="yesterday")}
    planned, reason = TagReads(known=broken, now=NOW).plan("abc")
    assert planned == frozenset("abc") and reason == "account b has an unreadable tag-read time"
    # The sweep interval is a setting.
    hourly = {k: _fresh(hours_ago=1.5) for k in "abc"}
    assert TagReads(known=hourly, sweep_hours=1, now=NOW).plan("abc")[0] == frozenset("abc")


class InFlight:
    """Wraps a client; every call takes `seconds` and the highest number of overlapping calls is kept."""

    def __init__(self, client, seconds: float = 0.01):
        self.client, self.seconds = client, seconds
        self.lock = threading.Lock()
        self.now = self.peak = 0

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(**kwargs):
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                time.sleep(self.seconds)
                return method(**kwargs)
            finally:
                with self.lock:
                    self.now -= 1

        return call


@pytest.mark.parametrize("concurrency", [1, 3])
def test_calls_run_with_bounded_concurrency(org, concurrency):
    silo, ids = _fleet(org, per_ou=4)
    client = InFlight(org)

    found = discover(client, DiscoverySettings(silo_ou_id=silo), _no_wait(), concurrency=concurrency)

    assert [a.id for a in found.accounts] == ids
    assert client.peak == concurrency  # 9 tag reads and 2 sibling OUs: enough work to fill every slot


def test_throttled_tag_reads_under_concurrency_are_retried_and_counted(org):
    silo, ids = _fleet(org, per_ou=3)
    backoff = Backoff(sleep=lambda _: None)
    counting = CountingClient(throttled(org, 4, methods=("list_tags_for_resource",)))

    found = discover(counting, DiscoverySettings(silo_ou_id=silo), backoff, concurrency=4)

    assert set(found.tags_read) == set(ids)
    assert backoff.retries == 4
    assert counting.counts["ListTagsForResource"] == len(ids) + 4
