"""Organizations ARNs name the management account, also when the master is a delegated administrator
(issue 10, defect 3), and a delegated-administrator master cannot use OrganizationAccountAccessRole."""

from __future__ import annotations

import pytest

from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError
from offline.harness import MASTER_ACCOUNT_ID
from offline.organizations_arns import parse
from offline.stacks import master_config, run_master

MANAGEMENT = "999999999999"


def organizations_resources(recording) -> list[tuple[str, str, str]]:
    """(resource URN, Sid, ARN) of every Organizations ARN in every policy the program emits."""
    found = []
    for resource, _, document in recording.policies():
        for statement in document["Statement"]:
            resources = statement.get("Resource", [])
            for arn in [resources] if isinstance(resources, str) else resources:
                if arn.startswith("arn:") and arn.split(":")[2] == "organizations":
                    found.append((resource.urn, statement.get("Sid", ""), arn))
    return found


def test_the_arn_parser_follows_the_service_authorization_reference():
    assert parse(f"arn:aws:organizations::{MANAGEMENT}:ou/o-a1b2c3d4e5/ou-ab12-11111111").resource_type == "organizationalunit"
    assert parse(f"arn:aws:organizations::{MANAGEMENT}:account/o-a1b2c3d4e5/*").account == MANAGEMENT
    assert parse(f"arn:aws-cn:organizations::{MANAGEMENT}:root/o-a1b2c3d4e5/r-*").partition == "aws-cn"
    assert parse(f"arn:aws:organizations::{MANAGEMENT}:organization/o-a1b2c3d4e5").resource_type == "organization"
    for wrong in (
        f"arn:aws:organizations:eu-west-1:{MANAGEMENT}:ou/o-a1b2c3d4e5/ou-*",  # Organizations ARNs have no region
        "arn:aws:organizations::*:ou/o-a1b2c3d4e5/ou-*",  # nor a wildcard account
        f"arn:aws:organizations::{MANAGEMENT}:ou/a1b2c3d4e5/ou-*",  # the org id keeps its o- prefix
        f"arn:aws:organizations::{MANAGEMENT}:unit/o-a1b2c3d4e5/ou-*",
    ):
        assert parse(wrong) is None, wrong


def delegated_admin_config():
    config = master_config()
    config["datalake:managementAccountId"] = MANAGEMENT
    config["datalake:deployRoleName"] = "datalake-deployer"
    return config


def test_every_organizations_arn_names_the_management_account_not_the_master():
    recording = run_master(delegated_admin_config())
    found = organizations_resources(recording)
    sids = {sid for _, sid, _ in found}
    assert {"ReadOrganizationAccounts", "ReadSiloOrganization"} <= sids, sids  # runner build and delivery deploy
    for urn, sid, arn in found:
        parsed = parse(arn)
        assert parsed is not None, f"{urn} {sid}: {arn} is not an Organizations ARN"
        assert parsed.account == MANAGEMENT, f"{urn} {sid}: {arn} names {parsed.account}, not the management account"
    types = {parse(arn).resource_type for _, sid, arn in found if sid == "ReadOrganizationAccounts"}
    assert types == {"root", "organizationalunit", "account"}


def test_a_master_that_is_the_management_account_states_it():
    config = master_config()
    assert parse_stack_config("master", config).management_account_id == MASTER_ACCOUNT_ID
    del config["datalake:managementAccountId"]
    with pytest.raises(ConfigError) as error:
        parse_stack_config("master", config)
    assert error.value.problems == ["datalake:managementAccountId: is required but not set; for example: 111111111111"]


def test_a_delegated_administrator_cannot_deploy_through_organization_account_access_role():
    config = delegated_admin_config()
    del config["datalake:deployRoleName"]
    with pytest.raises(ConfigError) as error:
        run_master(config)
    (problem,) = error.value.problems
    assert problem.startswith(
        f"datalake:deployRoleName: OrganizationAccountAccessRole trusts only the management account {MANAGEMENT}"
    ), problem
    assert f"this master runs in {MASTER_ACCOUNT_ID}" in problem and "for example: datalake-deployer" in problem
