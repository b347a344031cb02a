"""What-if plans against moto Organizations: each change kind, and proof that the organization is left as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from components.shared.errors import UsageError
from runner.demo import MOVED_OUT, OPTED_OUT, seed_organization
from runner.discovery import Backoff, DiscoverySettings
from runner.model import StackInfo
from runner.planning import PlanSettings, load_template
from runner.whatif import (
    HypotheticalOrganizations,
    ReadOnlyOrganizations,
    ReadOnlyViolation,
    parse_changes,
    plan_organization,
    what_if,
)

TEMPLATE = load_template(Path(__file__).resolve().parent.parent / "Pulumi.silo-template.yaml")


def snapshot(org: Any) -> dict[str, Any]:
    """Everything a what-if could change: every account's parent, state and tags, and the OU tree."""
    accounts = {}
    for page in org.get_paginator("list_accounts").paginate():
        for account in page["Accounts"]:
            accounts[account["Id"]] = (
                account.get("State") or account["Status"],
                org.list_parents(ChildId=account["Id"])["Parents"][0]["Id"],
                sorted((t["Key"], t["Value"]) for t in org.list_tags_for_resource(ResourceId=account["Id"])["Tags"]),
            )
    root = org.list_roots()["Roots"][0]["Id"]
    ous, queue = [], [root]
    while queue:
        parent = queue.pop()
        for ou in org.list_organizational_units_for_parent(ParentId=parent)["OrganizationalUnits"]:
            ous.append((parent, ou["Id"], ou["Name"]))
            queue.append(ou["Id"])
    return {"accounts": accounts, "ous": sorted(ous)}


@pytest.fixture(scope="module")
def organization():
    """One organization for the module: no what-if may change it, which `world` checks after every test."""
    with mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        seeded = seed_organization(org)
        stacks = [StackInfo(f"silo-{a}", name) for a, name in seeded.with_stacks.items()]
        root = org.list_roots()["Roots"][0]["Id"]
        sandbox = next(o["Id"] for o in org.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"] if o["Name"] == "sandbox")

        def plan(client: Any, **settings: Any):
            return plan_organization(
                client, DiscoverySettings(silo_ou_id=seeded.silo_ou_id), stacks, TEMPLATE,
                PlanSettings(**({"allow_mass_retire": True} | settings)), "datalake:silo=false", Backoff(sleep=lambda _: None),
            )

        # An account outside the silo OU without a stack (still at the root).
        seeded.accounts["Newcomer"] = org.create_account(Email="newcomer@example.com", AccountName="Newcomer")["CreateAccountStatus"]["AccountId"]
        yield seeded, org, plan, sandbox, snapshot(org)


@pytest.fixture
def world(organization):
    *world, before = organization
    yield tuple(world)
    assert snapshot(world[1]) == before, "a what-if changed the organization"


def by_account(plan) -> dict[str, Any]:
    return {op.account_id: op for op in plan.operations}


def test_moving_a_silo_out_plans_its_retire_destroy(world):
    seeded, org, plan, sandbox = world
    finance = seeded.accounts["Finance"]
    result = what_if(org, parse_changes(move=[finance], to=[sandbox]), plan)

    assert by_account(result.today)[finance].action.value == "update"
    assert by_account(result.after)[finance].action.value == "retire-destroy"
    assert by_account(result.after)[finance].reason == "account moved out of the silo OU"
    [difference] = result.differences
    assert (difference.account_id, difference.today, difference.after) == (
        finance, "update: ACTIVE account with a stack", "retire-destroy: account moved out of the silo OU"
    )


def test_moving_an_account_back_in_plans_an_update_and_the_safety_rules_still_apply(world):
    seeded, org, plan, _ = world
    moved = seeded.accounts[MOVED_OUT]
    result = what_if(org, parse_changes(move=[moved], to=[seeded.silo_ou_id]), lambda c: plan(c, allow_mass_retire=False))
    assert by_account(result.today)[moved].action.value == "retire-destroy"
    assert by_account(result.after)[moved].action.value == "update"

    # One more retirement (5 of 20 stacks) trips the mass-retire protection in the hypothetical plan.
    finance, root = seeded.accounts["Finance"], org.list_roots()["Roots"][0]["Id"]
    result = what_if(org, parse_changes(move=[finance], to=[root]), lambda c: plan(c, allow_mass_retire=False))
    assert result.after.held_reason.startswith("the plan retires 5 of 20 stacks (25%)")
    assert not result.today.held_reason
    assert {d.account_id: d.after for d in result.differences}[finance] == "retire-destroy (held): account moved out of the silo OU"


def test_moving_a_new_account_into_a_nested_ou_plans_its_create(world):
    seeded, org, plan, sandbox = world
    outsider = seeded.accounts["Newcomer"]
    emea = next(o["Id"] for o in org.list_organizational_units_for_parent(ParentId=seeded.silo_ou_id)["OrganizationalUnits"] if o["Name"] == "emea")
    result = what_if(org, parse_changes(move=[outsider], to=[emea]), plan)
    assert outsider not in by_account(result.today)
    created = by_account(result.after)[outsider]
    assert (created.action.value, created.silo_name, created.config["datalake:accountId"]) == ("create", "newcomer", outsider)
    assert [d.account_id for d in result.differences] == [outsider]


def test_closing_an_account_plans_its_retire_forget(world):
    seeded, org, plan, _ = world
    marketing = seeded.accounts["Marketing"]
    result = what_if(org, parse_changes(close=[marketing]), plan)
    after = by_account(result.after)[marketing]
    assert (after.action.value, after.reason) == ("retire-forget", "account is SUSPENDED")
    assert after.partners == "not revoked: the account cannot be reached"


def test_tagging_opts_out_and_untagging_opts_back_in(world):
    seeded, org, plan, _ = world
    hr, opted = seeded.accounts["HR Analytics"], seeded.accounts[OPTED_OUT]
    result = what_if(org, parse_changes(tag=[(hr, "datalake:silo=FALSE")], untag=[(opted, "datalake:silo")]), plan)
    assert by_account(result.after)[hr].action.value == "retire-destroy"
    assert by_account(result.after)[hr].reason == "account opted out (datalake:silo=false)"
    assert by_account(result.after)[opted].action.value == "update"
    assert {d.account_id for d in result.differences} == {hr, opted}
    # A tag that is not the opt-out changes nothing.
    assert what_if(org, parse_changes(tag=[(hr, "cost-center=data")]), plan).differences == ()


def test_the_read_only_client_refuses_every_write_before_it_reaches_organizations(world):
    seeded, org, _, sandbox = world
    reader = ReadOnlyOrganizations(org)
    finance = seeded.accounts["Finance"]
    for call, kwargs in (
        ("move_account", {"AccountId": finance, "SourceParentId": seeded.silo_ou_id, "DestinationParentId": sandbox}),
        ("tag_resource", {"ResourceId": finance, "Tags": [{"Key": "datalake:silo", "Value": "false"}]}),
        ("untag_resource", {"ResourceId": finance, "TagKeys": ["x"]}),
        ("close_account", {"AccountId": finance}),
        ("create_organizational_unit", {"ParentId": sandbox, "Name": "x"}),
    ):
        with pytest.raises(ReadOnlyViolation, match=f"what-if refused Organizations {call}"):
            getattr(reader, call)(**kwargs)
    hypothetical = HypotheticalOrganizations(org, parse_changes(close=[finance]))
    with pytest.raises(ReadOnlyViolation):
        hypothetical.close_account(AccountId=finance)
    assert reader.describe_account(AccountId=finance)["Account"]["Id"] == finance


def test_unknown_accounts_and_ous_are_named(world):
    seeded, org, plan, _ = world
    with pytest.raises(UsageError, match="--close 999999999998: the organization has no such account"):
        what_if(org, parse_changes(close=["999999999998"]), plan)
    with pytest.raises(UsageError, match="--to ou-zzzz-99999999: the organization has no such OU"):
        what_if(org, parse_changes(move=[seeded.accounts["Finance"]], to=["ou-zzzz-99999999"]), plan)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "whatif needs a change"),
        ({"move": ["123456789012"]}, "--move and --to come in pairs"),
        ({"move": ["123456789012"], "to": ["sandbox"]}, "--to 'sandbox': not an OU or root id"),
        ({"close": ["12345"]}, "--close '12345': not a 12-digit account id"),
        ({"tag": [("123456789012", "datalake:silo")]}, "give the tag as KEY=VALUE"),
    ],
)
def test_bad_changes_are_refused_with_the_flag_named(kwargs, message):
    with pytest.raises(UsageError, match=message):
        parse_changes(**kwargs)
