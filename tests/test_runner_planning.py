"""Planning: actions per account, silo names, seeded config, mass-retire protection."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.silo.config import SILO_NAME_PATTERN
from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError, UsageError
from offline.stacks import PROJECT_DIR
from runner.model import Account, Action, Discovery, StackInfo
from runner.planning import PlanSettings, build_plan, derive_silo_name, load_template, seed_config

TEMPLATE = load_template(PROJECT_DIR / "Pulumi.silo-template.yaml")


def acct(n: int, name: str = "", status: str = "ACTIVE", **kw) -> Account:
    return Account(id=f"{n:012d}", name=name or f"Team {n}", status=status, ou_path="silos", **kw)


def stack(n: int, silo: str | None = None) -> StackInfo:
    return StackInfo(name=f"silo-{n:012d}", silo_name=silo or f"team-{n}")


def plan_of(accounts, stacks, outside=None, **settings):
    discovery = Discovery("ou-ab12-11111111", tuple(accounts), outside or {})
    return build_plan(discovery, stacks, TEMPLATE, PlanSettings(**settings))


def actions(plan) -> dict[str, Action]:
    return {op.account_id: op.action for op in plan.operations}


def test_each_case_gets_its_action():
    moved_out = acct(5, "Moved")
    plan = plan_of(
        [acct(1), acct(2), acct(3, status="SUSPENDED"), acct(4, opted_out=True), acct(7, excluded="in the deny-list")],
        [stack(2), stack(3), stack(4), stack(5), stack(6), stack(7), StackInfo("master")],
        outside={moved_out.id: moved_out, f"{6:012d}": None},
        max_retire_share=1.0,
    )
    assert actions(plan) == {
        f"{1:012d}": Action.CREATE,
        f"{2:012d}": Action.UPDATE,
        f"{4:012d}": Action.RETIRE_DESTROY,
        f"{5:012d}": Action.RETIRE_DESTROY,
        f"{3:012d}": Action.RETIRE_FORGET,
        f"{6:012d}": Action.RETIRE_FORGET,
    }
    reasons = {op.account_id: op.reason for op in plan.operations}
    assert reasons[f"{3:012d}"] == "account is SUSPENDED"
    assert reasons[f"{5:012d}"] == "account moved out of the silo OU"
    assert reasons[f"{6:012d}"] == "account is no longer in the organization"
    assert "opted out" in reasons[f"{4:012d}"]
    # The plan is ordered create, update, retire-destroy, retire-forget.
    assert [op.action for op in plan.operations] == sorted(
        (op.action for op in plan.operations), key=[Action.CREATE, Action.UPDATE, Action.RETIRE_DESTROY, Action.RETIRE_FORGET].index
    )
    assert plan.existing_stacks == 6 and not plan.held_reason


def test_created_and_updated_stacks_get_a_valid_seeded_config():
    plan = plan_of([acct(1, "Sales EMEA"), acct(2, "Whatever")], [stack(2, "legacy-name")])
    by_id = {op.account_id: op for op in plan.operations}
    created, updated = by_id[f"{1:012d}"], by_id[f"{2:012d}"]
    assert created.config["datalake:accountId"] == f"{1:012d}"
    assert created.config["datalake:siloName"] == "sales-emea"
    assert created.stack == f"silo-{1:012d}"
    # An existing stack keeps the silo name it was created with, even if the account was renamed:
    # a new name would rename (replace) every bucket.
    assert updated.silo_name == "legacy-name" and updated.config["datalake:siloName"] == "legacy-name"
    config = parse_stack_config(created.stack, created.config)
    assert config.account_id == f"{1:012d}" and config.silo_name == "sales-emea"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Sales EMEA (prod)", "sales-emea-prod"),
        ("Café Analytics", "cafe-analytics"),
        ("2024 Budget", "s-2024-budget"),
        ("A very long account name that goes on", "a-very-long-account"),
        ("__", "silo-789012"),
        ("x", "silo-789012"),
    ],
)
def test_silo_names_are_sanitised(name, expected):
    derived = derive_silo_name(name, "123456789012")
    assert derived == expected
    assert SILO_NAME_PATTERN.match(derived)


def test_silo_names_are_unique():
    taken = {"sales"}
    first = derive_silo_name("Sales", "123456789012", taken)
    second = derive_silo_name("SALES!", "210987654321", taken | {first})
    assert first == "sales-9012" and second == "sales-4321"
    long_name = derive_silo_name("A very long account name", "123456789012", {"a-very-long-account"})
    assert long_name == "a-very-long-acc-9012" and len(long_name) == 20


def test_two_new_accounts_with_one_name_get_different_silo_names():
    plan = plan_of([acct(1, "Marketing"), acct(2, "marketing")], [])
    names = [op.silo_name for op in plan.operations]
    assert len(set(names)) == 2 and "marketing" in names


def test_a_broken_template_fails_with_the_key_named():
    broken = {**TEMPLATE, "datalake:namePrefix": "Not Valid"}
    with pytest.raises(ConfigError, match=r"datalake:namePrefix: got 'Not Valid'"):
        seed_config(broken, "123456789012", "sales")
    with pytest.raises(ConfigError, match="datalake:siloName"):
        seed_config(TEMPLATE, "123456789012", "Bad_Name")


def test_a_template_without_placeholders_is_refused(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("config:\n  datalake:kind: silo\n  datalake:accountId: '123456789012'\n")
    with pytest.raises(UsageError, match="lacks the placeholder.*__ACCOUNT_ID__.*__SILO_NAME__"):
        load_template(path)
    with pytest.raises(UsageError, match="does not exist"):
        load_template(tmp_path / "missing.yaml")


def test_retiring_more_than_the_share_holds_every_retirement():
    accounts = [acct(i) for i in range(1, 8)]
    stacks = [stack(i) for i in range(1, 11)]  # 3 of 10 stacks lost their account: 30% > 20%
    outside = {f"{i:012d}": None for i in range(8, 11)}
    plan = plan_of(accounts, stacks, outside)
    retires = [op for op in plan.operations if op.action.retires]
    assert len(retires) == 3 and all(op.held for op in retires)
    assert "retires 3 of 10 stacks (30%), more than the allowed 20%" in plan.held_reason
    assert all(not op.held for op in plan.operations if not op.action.retires)
    assert len(plan.runnable()) == 7

    allowed = plan_of(accounts, stacks, outside, allow_mass_retire=True)
    assert not allowed.held_reason and len(allowed.runnable()) == 10
    # Exactly at the share is allowed: 2 of 10.
    assert not plan_of(accounts + [acct(8)], stacks, {f"{i:012d}": None for i in (9, 10)}).held_reason


def test_zero_discovered_accounts_retire_nothing():
    plan = plan_of([], [stack(1)], {f"{1:012d}": None}, max_retire_share=1.0)
    assert plan.operations[0].action is Action.RETIRE_FORGET and plan.operations[0].held
    assert "zero accounts" in plan.held_reason


def test_an_account_still_being_created_is_left_alone():
    plan = plan_of([acct(1, status="PENDING_ACTIVATION"), acct(2, status="PENDING_CLOSURE")], [stack(1), stack(2)], max_retire_share=1.0)
    assert actions(plan) == {f"{2:012d}": Action.RETIRE_FORGET}


def test_allow_and_deny_lists_protect_stacks_of_accounts_that_left_the_organization():
    gone, other = f"{9:012d}", f"{1:012d}"
    stacks, outside = [stack(1), stack(9)], {gone: None}
    denied = plan_of([acct(1)], stacks, outside, allow_mass_retire=True, deny_accounts=frozenset({gone}))
    assert actions(denied) == {other: Action.UPDATE}
    allowed = plan_of([acct(1)], stacks, outside, allow_mass_retire=True, allow_accounts=frozenset({other}))
    assert actions(allowed) == {other: Action.UPDATE}
    # Closed and moved-out accounts are protected the same way, whatever discovery marked.
    closed, moved = acct(3, status="SUSPENDED"), acct(4, "Moved")
    plan = plan_of([acct(1), closed], [stack(1), stack(3), stack(4)], {moved.id: moved}, max_retire_share=1.0,
                   deny_accounts=frozenset({closed.id, moved.id}))
    assert actions(plan) == {other: Action.UPDATE}
    # Without the lists the gone account's stack is forgotten.
    assert actions(plan_of([acct(1)], stacks, outside, allow_mass_retire=True))[gone] is Action.RETIRE_FORGET
