"""The config model: the shipped stack files validate, and every kind of bad value gets one clear message."""

from __future__ import annotations

import pulumi
import pytest

from components.master.config import MasterConfig
from components.silo.config import SiloConfig
from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError
from offline.stacks import master_config, run_silo, silo_config


def problems_of(config: dict, stack: str = "silo-222222222222") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(stack, config)
    return caught.value.problems


def test_shipped_master_file_is_valid():
    config = parse_stack_config("master", master_config())
    assert isinstance(config, MasterConfig)
    assert config.deploy_role_name == "OrganizationAccountAccessRole"
    assert config.silo_ou_path.endswith("/")


def test_shipped_silo_template_is_valid_once_placeholders_are_filled():
    config = parse_stack_config("silo-222222222222", silo_config())
    assert isinstance(config, SiloConfig)
    assert (config.account_id, config.silo_name) == ("222222222222", "sales")
    assert config.storage.dropzone_expiration_days == 30


def test_silo_template_with_placeholders_left_in_fails_naming_both_keys():
    from offline.stacks import PROJECT_DIR

    import yaml

    raw = yaml.safe_load((PROJECT_DIR / "Pulumi.silo-template.yaml").read_text())["config"]
    problems = problems_of(raw)
    assert any(p.startswith("datalake:accountId: got '__ACCOUNT_ID__'") for p in problems), problems
    assert any(p.startswith("datalake:siloName: got '__SILO_NAME__'") for p in problems), problems


def test_deploy_role_defaults_to_organization_access_role():
    config = silo_config()
    del config["datalake:deployRoleName"]
    assert parse_stack_config("s", config).deploy_role_name == "OrganizationAccountAccessRole"


def test_missing_key_is_named_with_an_example():
    config = silo_config()
    del config["datalake:masterStack"]
    assert problems_of(config) == [
        "datalake:masterStack: is required but not set; for example: organization/datalake/master"
    ]


def test_missing_region_names_the_aws_key():
    config = silo_config()
    del config["aws:region"]
    assert problems_of(config) == ["aws:region: is required but not set; for example: eu-west-1"]


def test_malformed_ou_path_is_rejected_with_the_expected_form():
    config = silo_config(**{"datalake:siloOuPath": "o-a1b2c3d4e5/ou-ab12-11111111"})
    (problem,) = problems_of(config)
    assert problem.startswith("datalake:siloOuPath: got 'o-a1b2c3d4e5/ou-ab12-11111111'")
    assert "o-…/r-…/ou-…/" in problem
    assert problem.endswith("for example: o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/")


def test_ou_path_of_another_organization_is_rejected():
    config = silo_config(**{"datalake:analyticsOuPath": "o-zzzzzzzzzz/r-ab12/ou-ab12-22222222/"})
    (problem,) = problems_of(config)
    assert "datalake:analyticsOuPath" in problem and "not inside organization 'o-a1b2c3d4e5'" in problem


def test_eleven_digit_account_id_is_rejected():
    (problem,) = problems_of(silo_config(**{"datalake:accountId": "12345678901"}))
    assert problem == (
        "datalake:accountId: got '12345678901' (11 characters), which is not a 12-digit AWS account id; "
        "for example: 123456789012"
    )


def test_account_id_given_as_a_number_keeps_leading_zeros_only_as_text():
    config = parse_stack_config("s", silo_config(**{"datalake:accountId": "012345678901"}))
    assert config.account_id == "012345678901"


@pytest.mark.parametrize("bad_name", ["Sales", "sales_eu", "s", "sales-", "-sales", "a" * 21])
def test_bad_silo_names_are_rejected(bad_name):
    (problem,) = problems_of(silo_config(**{"datalake:siloName": bad_name}))
    assert problem.startswith(f"datalake:siloName: got {bad_name!r}")
    assert "no capitals, no underscores" in problem
    assert problem.endswith("for example: sales")


def test_unknown_key_is_rejected_and_known_keys_are_listed():
    (problem,) = problems_of(silo_config(**{"datalake:siloname": "sales"}))
    assert problem.startswith("datalake:siloname: is not a known key; check its spelling.")
    assert "siloName" in problem


def test_unknown_nested_key_is_named_with_its_path():
    (problem,) = problems_of(silo_config(**{"datalake:storage": {"dropzoneExpiryDays": 3}}))
    assert problem.startswith("datalake:storage.dropzoneExpiryDays: is not a known key")


def test_nested_value_out_of_range_names_its_path():
    (problem,) = problems_of(silo_config(**{"datalake:storage": {"rawInfrequentAccessDays": 7}}))
    assert problem.startswith("datalake:storage.rawInfrequentAccessDays: got 7")
    assert problem.endswith("for example: 30")


def test_master_queries_default_on_and_a_bad_value_names_the_key():
    template = parse_stack_config("s", silo_config())
    assert template.sharing.master_queries is True
    minimal = {k: v for k, v in silo_config().items() if k != "datalake:sharing"}
    assert parse_stack_config("s", minimal).sharing.master_queries is True
    assert parse_stack_config("s", silo_config(**{"datalake:sharing": {"masterQueries": False}})).sharing.master_queries is False
    (problem,) = problems_of(silo_config(**{"datalake:sharing": {"masterQueries": "sometimes"}}))
    assert problem.startswith("datalake:sharing.masterQueries: got 'sometimes'")
    assert problem.endswith("for example: true")


def test_structured_values_arrive_as_json_text_like_pulumi_sends_them():
    config = silo_config(**{"datalake:storage": '{"dropzoneExpirationDays": 5}'})
    assert parse_stack_config("s", config).storage.dropzone_expiration_days == 5


def test_every_problem_is_reported_at_once():
    config = silo_config(**{"datalake:accountId": "1", "datalake:siloName": "Bad_Name", "datalake:typo": 1})
    problems = problems_of(config)
    assert [p.split(":")[1] for p in problems] == ["accountId", "siloName", "typo"]


def test_missing_or_wrong_kind_says_which_kinds_exist():
    config = silo_config()
    del config["datalake:kind"]
    (problem,) = problems_of(config)
    assert problem.startswith("datalake:kind: is not set; it must be 'master' or 'silo'")
    (problem,) = problems_of(silo_config(**{"datalake:kind": "slave"}))
    assert problem.startswith("datalake:kind: got 'slave'")


def test_master_rejects_silo_only_keys():
    config = master_config()
    config["datalake:accountId"] = "123456789012"
    (problem,) = problems_of(config, stack="master")
    assert problem.startswith("datalake:accountId: is not a known key")


def test_error_message_names_the_stack_and_counts_problems():
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("silo-9", silo_config(**{"datalake:accountId": "x", "datalake:siloName": "X"}))
    message = str(caught.value)
    assert message.startswith("Invalid configuration for stack 'silo-9' (2 problems):\n  - datalake:accountId:")


def test_program_fails_with_a_run_error_so_pulumi_prints_no_traceback():
    """`pulumi.RunError` is the SDK's "clean exit" error: the engine shows its message only."""
    config = silo_config(**{"datalake:siloName": "Sales_EU"})
    with pytest.raises(ConfigError) as caught:
        run_silo(config)
    assert isinstance(caught.value, pulumi.RunError)
    assert "datalake:siloName: got 'Sales_EU'" in str(caught.value)
