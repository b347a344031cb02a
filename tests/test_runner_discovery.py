"""Discovery against moto Organizations: nested OUs, pagination, status, opt-out, throttling, failures."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from components.errors import DiscoveryError
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
