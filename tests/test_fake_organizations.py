"""The bench's in-memory Organizations client answers as moto does, and refuses what botocore refuses."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from offline.fake_organizations import FakeAccount, FakeOrganizations, fleet
from runner.discovery import Backoff, CountingClient, DiscoverySettings, describe_outside, discover


def test_the_fake_gives_moto_s_discovery_and_moto_s_calls():
    with mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        org.create_organization(FeatureSet="ALL")
        root = org.list_roots()["Roots"][0]["Id"]
        silo = org.create_organizational_unit(ParentId=root, Name="silos")["OrganizationalUnit"]["Id"]
        emea = org.create_organizational_unit(ParentId=silo, Name="emea")["OrganizationalUnit"]["Id"]
        ous = {silo: ("silos", root), emea: ("emea", silo)}
        for i in range(23):  # more than one OU page is not needed; more than one account page is
            ou = org.create_organizational_unit(ParentId=emea, Name=f"unit-{i:02d}")["OrganizationalUnit"]["Id"]
            ous[ou] = (f"unit-{i:02d}", emea)
        members = []
        for i in range(45):
            parent = emea if i < 25 else silo
            account = org.create_account(Email=f"a{i}@example.com", AccountName=f"Team {i}")["CreateAccountStatus"]["AccountId"]
            org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=parent)
            members.append(FakeAccount(account, f"Team {i}", parent))
        opted, closed = members[3], members[30]
        org.tag_resource(ResourceId=opted.id, Tags=[{"Key": "datalake:silo", "Value": "false"}])
        opted.tags = {"datalake:silo": "false"}
        org.close_account(AccountId=closed.id)
        closed.state = "SUSPENDED"
        settings = DiscoverySettings(silo_ou_id=silo)

        real = CountingClient(org)
        expected = discover(real, settings, Backoff(sleep=lambda _: None))
        fake = CountingClient(FakeOrganizations(ous, members))
        got = discover(fake, settings, Backoff(sleep=lambda _: None))

    assert got.accounts == expected.accounts
    assert dict(fake.counts) == dict(real.counts)
    assert real.counts["ListOrganizationalUnitsForParent"] == 2 + 1 + 23  # 23 OUs under emea: 2 pages
    assert {a.id: a.opted_out for a in got.accounts}[opted.id] is True


def test_the_fake_refuses_what_botocore_refuses():
    org = fleet(3)
    with pytest.raises(ParamValidationError, match="Unknown parameter in input: \"ParentID\""):
        org.list_accounts_for_parent(ParentID="ou-silo-00000000")
    with pytest.raises(ParamValidationError, match="Missing required parameter"):
        org.list_tags_for_resource()
    with pytest.raises(ClientError, match="OrganizationalUnitNotFoundException"):
        org.describe_organizational_unit(OrganizationalUnitId="ou-none-00000000")
    assert describe_outside(org, ["999999999999"], DiscoverySettings(silo_ou_id="ou-silo-00000000")) == {"999999999999": None}


def test_fleet_shape_and_simulated_latency():
    waits: list[float] = []
    org = fleet(1000, latency=0.15, sleep=waits.append)
    counting = CountingClient(org)
    found = discover(counting, DiscoverySettings(silo_ou_id="ou-silo-00000000"), Backoff(sleep=lambda _: None))
    assert len(found.accounts) == 1000 and all(a.wanted for a in found.accounts)
    # 46 OUs (silo, 5 regions, 40 leaves); 25 accounts per leaf are 2 pages.
    assert counting.counts["ListAccountsForParent"] == 6 + 40 * 2
    assert counting.counts["ListOrganizationalUnitsForParent"] == 46
    assert len(waits) == counting.total and set(waits) == {0.15}
