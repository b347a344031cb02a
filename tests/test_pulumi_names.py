"""Stack names, project names and stack references held to the Pulumi backends' own rules (issue 10, defect 1).

The cases and messages are those of Pulumi's own tests (pulumi/pulumi v3.259.0:
pkg/backend/diy/store_test.go `TestProjectReferenceStore_ParseReference_errors`,
sdk/go/common/tokens/stack_name_test.go, sdk/go/common/tokens/project_test.go) plus the
Pulumi Cloud owner rule of pkg/backend/httpstate/backend.go.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError
from components.shared.pulumi_names import (
    DIY,
    SERVICE,
    PulumiNameError,
    backend_kind_of_organization,
    backend_kind_of_url,
    check_project_name,
    check_stack_name,
    parse_stack_reference,
)
from offline.harness import SILO_ACCOUNT_ID
from offline.stacks import PROJECT_DIR, master_config, master_stack_outputs, run_silo, silo_config
from runner.model import stack_name

INVALID_STACK_NAMES = [
    ("", "a stack name may not be empty"),
    ("a" * 101, "a stack name cannot exceed 100 characters"),
    ("!my stack!", "a stack name may only contain alphanumeric, hyphens, underscores, or periods: invalid character '!' at position 0"),
    ("my bad", "a stack name may only contain alphanumeric, hyphens, underscores, or periods: invalid character ' ' at position 2"),
    ("mybad%", "a stack name may only contain alphanumeric, hyphens, underscores, or periods: invalid character '%' at position 5"),
    ("foo/bar", "a stack name may only contain alphanumeric, hyphens, underscores, or periods: invalid character '/' at position 3"),
]


def config_problems(stack: str, config: dict, **kwargs) -> list[str]:
    """The problems of the ConfigError that `parse_stack_config` raises for `config`."""
    with pytest.raises(ConfigError) as error:
        parse_stack_config(stack, config, **kwargs)
    return error.value.problems


@pytest.mark.parametrize(("name", "message"), INVALID_STACK_NAMES)
def test_stack_names_the_cli_refuses_are_refused_with_its_message(name, message):
    with pytest.raises(PulumiNameError) as error:
        check_stack_name(name)
    assert str(error.value) == message


@pytest.mark.parametrize("name", ["my-stack", "stack", "s-92", "stack_foo", "foo_bar_123", "master", "a" * 100])
def test_stack_names_the_cli_accepts_pass(name):
    assert check_stack_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "project names may not be empty"),
        ("a" * 101, "project names are limited to 100 characters"),
        ("foo bar", "project names may only contain alphanumerics, hyphens, underscores, and periods"),
        ("SampleProject!", "project names may only contain alphanumerics, hyphens, underscores, and periods"),
    ],
)
def test_project_names_follow_validate_project_name(name, message):
    with pytest.raises(PulumiNameError) as error:
        check_project_name(name)
    assert str(error.value) == message
    assert check_project_name("SampleProject") == "SampleProject"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("", "stack name must not be empty"),
        ("foo/bar/baz", "organization name must be 'organization'"),
        ("acme/datalake/master", "organization name must be 'organization'"),
        ("acme/master", "organization name must be 'organization'"),
        ("organization/" + "a" * 101 + "/foo", "project names are limited to 100 characters"),
        ("organization/foo/" + "a" * 101, "a stack name cannot exceed 100 characters"),
        ("organization/foo:bar/baz", "project names may only contain alphanumerics, hyphens, underscores, and periods"),
        ("organization/foo/baz:qux", "a stack name may only contain alphanumeric, hyphens, underscores, or periods: invalid character ':' at position 3"),
        ("organization/datalake/master/extra", "a stack name may not be empty"),
    ],
)
def test_diy_backends_refuse_what_parse_reference_refuses(reference, message):
    with pytest.raises(PulumiNameError) as error:
        parse_stack_reference(reference, DIY)
    assert str(error.value) == message


def test_diy_and_cloud_accept_their_own_forms():
    assert parse_stack_reference("organization/datalake/master", DIY).qualified("x") == "organization/datalake/master"
    assert parse_stack_reference("master", DIY).qualified("datalake") == "organization/datalake/master"
    assert parse_stack_reference("organization/master", DIY).qualified("datalake") == "organization/datalake/master"
    assert parse_stack_reference("acme/datalake/master", SERVICE).qualified("x", "me") == "acme/datalake/master"
    assert parse_stack_reference("master", SERVICE).qualified("datalake", "acme") == "acme/datalake/master"
    for reference, message in [
        ("-acme/datalake/master", "invalid stack owner"),
        ("ab/datalake/master", "invalid stack owner"),
        ("a/b/c/d", "could not parse stack name 'a/b/c/d'"),
    ]:
        with pytest.raises(PulumiNameError, match=message):
            parse_stack_reference(reference, SERVICE)


def test_backend_kind_comes_from_the_engine_organization_or_the_login_url():
    assert backend_kind_of_organization("organization") == DIY
    assert backend_kind_of_organization(None) == DIY
    assert backend_kind_of_organization("acme") == SERVICE
    for url in ("s3://bucket?region=eu-west-1", "file:///tmp/state", "gs://b", "azblob://c", "postgres://h/db", None):
        assert backend_kind_of_url(url) == DIY, url
    assert backend_kind_of_url("https://api.pulumi.com") == SERVICE


def test_the_shipped_template_names_the_master_as_a_diy_backend_accepts():
    template = yaml.safe_load((PROJECT_DIR / "Pulumi.silo-template.yaml").read_text())["config"]
    reference = parse_stack_reference(template["datalake:masterStack"], DIY)
    assert reference.qualified("datalake") == "organization/datalake/master"


def test_a_master_stack_a_diy_backend_refuses_is_a_config_error_naming_the_key():
    config = silo_config(**{"datalake:masterStack": "acme/datalake/master"})
    assert config_problems("silo-x", config, organization="organization") == [
        "datalake:masterStack: got 'acme/datalake/master', which a self-managed (DIY: S3, file) backend refuses: "
        "organization name must be 'organization'; for example: organization/datalake/master"
    ]


def test_on_pulumi_cloud_the_master_stack_names_the_org():
    config = silo_config(**{"datalake:masterStack": "acme/datalake/master"})
    assert parse_stack_config("silo-x", config, organization="acme").master_stack == "acme/datalake/master"
    config["datalake:masterStack"] = "a/datalake/master"
    assert config_problems("silo-x", config, organization="acme") == [
        "datalake:masterStack: got 'a/datalake/master', which the Pulumi Cloud backend refuses: "
        "invalid stack owner; for example: acme/datalake/master"
    ]


def test_the_silo_program_reads_the_engine_organization():
    """Under the mocks `pulumi.get_organization()` is what the harness says, as the engine sets it."""
    from offline.harness import run_program

    config = silo_config(**{"datalake:masterStack": "acme/datalake/master"})
    with pytest.raises(ConfigError, match="datalake:masterStack: got 'acme/datalake/master'.*organization name must be 'organization'"):
        run_program(
            config,
            stack=f"silo-{SILO_ACCOUNT_ID}",
            account_id=SILO_ACCOUNT_ID,
            stack_outputs={"organization/datalake/master": master_stack_outputs()},
        )
    silo = run_silo(config, organization="acme")
    assert silo.one("pulumi:pulumi:StackReference").inputs["name"] == "acme/datalake/master"


def test_the_harness_refuses_stack_references_a_diy_backend_refuses():
    """The harness answers a StackReference only under a name the backend accepts, and only for a stack it holds."""
    from offline.harness import DatalakeMocks

    mocks = DatalakeMocks("1", {"organization/datalake/master": {"a": 1}}, {}, {})
    assert mocks.stack_reference_outputs("organization/datalake/master") == {"a": 1}
    assert mocks.stack_reference_outputs("master") == {"a": 1}  # the current project, as the CLI infers
    with pytest.raises(PulumiNameError) as error:
        mocks.stack_reference_outputs("acme/datalake/master")
    assert str(error.value) == "StackReference 'acme/datalake/master': organization name must be 'organization'"
    with pytest.raises(KeyError, match="unknown stack 'organization/datalake/prod'"):
        mocks.stack_reference_outputs("organization/datalake/prod")
    with pytest.raises(PulumiNameError, match="organization name must be 'organization'"):
        DatalakeMocks("1", {"acme/datalake/master": {}}, {}, {})


def test_the_harness_refuses_a_stack_name_the_cli_refuses():
    from offline.harness import run_program

    with pytest.raises(PulumiNameError, match="invalid character ' ' at position 4"):
        run_program(silo_config(), stack="silo 1", account_id=SILO_ACCOUNT_ID)


def test_runner_pulumi_org_must_suit_the_runner_backend(tmp_path: Path):
    config = master_config()
    config["datalake:runner"] = {"pulumiOrg": "acme"}
    assert config_problems("master", config) == [
        "datalake:runner.pulumiOrg: got 'acme', which the runner's S3 state backend refuses: "
        "organization name must be 'organization'; for example: organization"
    ]
    assert parse_stack_config("master", config, runner_backend=SERVICE).runner.pulumi_org == "acme"


def test_the_runner_checks_pulumi_org_against_its_backend_url(tmp_path: Path):
    from runner.run import load_master_config

    config = master_config()
    config["datalake:runner"] = {"pulumiOrg": "acme"}
    path = tmp_path / "Pulumi.master.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    args = argparse.Namespace(master_config=path, project_dir=tmp_path, backend_url="file:///tmp/state")
    with pytest.raises(ConfigError, match=r"datalake:runner.pulumiOrg: got 'acme'.*organization name must be 'organization'"):
        load_master_config(args)
    args.backend_url = "https://api.pulumi.com"
    assert load_master_config(args).runner.pulumi_org == "acme"


def test_runner_stack_names_pass_the_cli_rules():
    assert check_stack_name(stack_name("123456789012")) == "silo-123456789012"
