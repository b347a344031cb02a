"""Named environments: stack names, files, two environments in one backend, names that never collide."""

from __future__ import annotations

import io
import json
import shutil

import boto3
import pytest
from moto import mock_aws

from components.shared.environments import account_of_silo_stack, master_stack_name, silo_stack_name
from components.shared.errors import ConfigError
from components.shared.pulumi_names import check_stack_name
from offline.fake_stacks import FakeStackOperations, deployed_master_export
from offline.harness import MASTER_ACCOUNT_ID, SILO_ACCOUNT_ID, run_program
from offline.names import default_names, name_values
from offline.stacks import PROJECT_DIR, master_config, run_master, run_silo, silo_config
from runner.cli import main
from runner.run import Clients
from runner.model import Action, PlannedOperation, StackInfo
from runner.partners import PartnerRevoker

STAGING = "staging"


# -- stack names --------------------------------------------------------------------------------


def test_stack_names_carry_the_environment_and_each_runner_sees_only_its_own():
    assert silo_stack_name("123456789012") == "silo-123456789012"
    assert silo_stack_name("123456789012", STAGING) == "silo-staging-123456789012"
    assert master_stack_name() == "master" and master_stack_name(STAGING) == "master-staging"
    # Pulumi's own stack-name rules accept the longest name an environment can have.
    check_stack_name(silo_stack_name("123456789012", "abcdefghij"))
    assert account_of_silo_stack("silo-123456789012") == "123456789012"
    assert account_of_silo_stack("organization/datalake/silo-staging-123456789012", STAGING) == "123456789012"
    # Neither environment sees the other's stacks as its own.
    assert account_of_silo_stack("silo-staging-123456789012") is None
    assert account_of_silo_stack("silo-123456789012", STAGING) is None
    assert account_of_silo_stack("silo-prod-123456789012", STAGING) is None
    assert account_of_silo_stack("master-staging", STAGING) is None


def test_the_default_environment_keeps_exactly_todays_physical_names():
    """`tests/names/default.txt` was generated from main before environments existed."""
    snapshot = (PROJECT_DIR / "tests/names/default.txt").read_text().splitlines()
    assert default_names() == snapshot


# -- the programs -------------------------------------------------------------------------------


def staging_master(**changes) -> dict:
    config = master_config(STAGING)
    # Cover the delivery pipeline's names too (the shipped staging master has none).
    config["datalake:delivery"] = {"source": "s3"}
    config.update(changes)
    return config


PARENT_SCOPED = {
    # Names unique only within their parent, whose own names differ per environment.
    "aws:apigateway/authorizer:Authorizer",  # within its REST API
    "aws:apigateway/model:Model",
    "aws:apigateway/requestValidator:RequestValidator",
    "aws:cloudwatch/logStream:LogStream",  # within its log group
    "aws:cognito/userGroup:UserGroup",  # within its user pool
    "aws:glue/catalogTable:CatalogTable",  # within its database
    "aws:redshiftserverless/namespace:Namespace",  # dbName: within the namespace
}


def test_names_never_collide_when_two_environments_share_an_account(evaluations):
    """Both masters in one account, both silos in one account: every physical name compared."""
    recordings = {
        "default": (evaluations.master(), evaluations.silo()),
        "staging": (evaluations.master(staging_master()), evaluations.silo(silo_config(STAGING))),
    }
    default, staging = ({**name_values(master), **name_values(silo)} for master, silo in recordings.values())
    assert len(staging) > 150
    # A name that embeds an id AWS assigns (`API-Gateway-Execution-Logs_<rest api id>/v1`) is unique in
    # AWS; under mocks ids follow logical names, which environments share.
    assigned = {r.outputs["id"] for pair in recordings.values() for rec in pair for r in rec.resources if r.custom and r.type == "aws:apigateway/restApi:RestApi"}
    # IAM paths (`/datalake/` of the partner boundary policy) are namespaces, not names.
    shared = {
        key for key in set(default) & set(staging)
        if key[0] not in PARENT_SCOPED and key[1] != "path" and not any(i in key[2] for i in assigned)
    }
    assert shared == set()
    # The parents of the parent-scoped ones do differ.
    assert ("aws:cognito/userPool:UserPool", "name", "acme-dl-staging-sales-dropzone") in staging
    assert ("aws:glue/catalogDatabase:CatalogDatabase", "name", "acme_dl_staging_sales_raw") in staging
    # Names without the prefix take the environment's namespace; IAM paths too.
    assert ("aws:cloudwatch/logGroup:LogGroup", "name", "datalake-staging/sales/audit") in staging
    assert ("aws:cloudwatch/logGroup:LogGroup", "name", "datalake/sales/audit") in default
    assert ("aws:athena/dataCatalog:DataCatalog", "name", "silo_staging_sales") in staging


def test_a_staging_silo_reaches_only_its_own_partners_and_log_groups(evaluations):
    staging, default = evaluations.silo(silo_config(STAGING)), evaluations.silo()
    staging_policies = json.dumps([d for _, _, d in staging.policies()])
    assert f"user/datalake-staging/partners/sales/*" in staging_policies
    assert "/datalake/partners/" not in staging_policies and "log-group:datalake/sales" not in staging_policies
    functions = [f for f in staging.of_type("aws:lambda/function:Function") if "SILO_NAME" in f.inputs["environment"]["variables"]]
    assert functions and all(f.inputs["environment"]["variables"]["DATALAKE_NAMESPACE"] == "datalake-staging" for f in functions)
    # The default environment's functions are configured as ever.
    assert not any("DATALAKE_NAMESPACE" in (f.inputs.get("environment") or {}).get("variables", {}) for f in default.of_type("aws:lambda/function:Function"))


def test_the_staging_master_runs_the_staging_runner(evaluations):
    variables = {
        v["name"]: v["value"]
        for v in evaluations.master(staging_master()).one("aws:codebuild/project:Project", "master-runner-project").inputs["environment"]["environmentVariables"]
    }
    assert variables["DATALAKE_ENVIRONMENT"] == STAGING
    default = evaluations.master().one("aws:codebuild/project:Project", "master-runner-project").inputs["environment"]["environmentVariables"]
    assert "DATALAKE_ENVIRONMENT" not in {v["name"] for v in default}


@pytest.mark.parametrize(
    "config, stack, message",
    [
        (staging_master, "master", "datalake:environment: is staging, so this stack must be named 'master-staging'"),
        (master_config, "master-staging", "datalake:environment: is not set (the default environment), so this stack must be named 'master'; "
                                          "name the stack so, or set datalake:environment, for example: datalake:environment: staging"),
        (lambda: silo_config(STAGING), f"silo-{SILO_ACCOUNT_ID}", f"must be named 'silo-staging-{SILO_ACCOUNT_ID}'"),
    ],
)
def test_a_stack_named_for_another_environment_is_refused(config, stack, message):
    with pytest.raises(ConfigError) as error:
        run_program(config(), stack=stack, account_id=MASTER_ACCOUNT_ID)
    assert message in str(error.value)


def test_a_staging_silo_must_read_the_staging_master():
    config = silo_config(STAGING, **{"datalake:masterStack": "organization/datalake/master"})
    with pytest.raises(ConfigError, match="a silo of environment 'staging' reads the master stack 'master-staging'; "
                                          "for example: organization/datalake/master-staging"):
        run_silo(config)


def test_an_environment_name_that_makes_names_too_long_is_refused_with_the_limits():
    with pytest.raises(ConfigError, match=r"make every physical name start with 'acme-dl-production' \(18 characters\), more than the 16 .*"
                                          r"an environment of at most 8 characters with this namePrefix"):
        run_master(master_config(STAGING) | {"datalake:environment": "production"})


# -- the runner: two environments side by side in one backend ------------------------------------


@pytest.fixture
def two_environments(tmp_path):
    """A moto organization with a production silo OU and a staging silo OU beside it, and one backend."""
    with mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        org.create_organization(FeatureSet="ALL")
        root = org.list_roots()["Roots"][0]["Id"]
        ous = {name: org.create_organizational_unit(ParentId=root, Name=name)["OrganizationalUnit"]["Id"] for name in ("silos", "silos-staging")}
        accounts = {}
        for ou, names in (("silos", ["Sales", "Finance"]), ("silos-staging", ["Sales", "Newcomer"])):
            for name in names:
                account = org.create_account(Email=f"{name}.{ou}@example.com", AccountName=name)["CreateAccountStatus"]["AccountId"]
                org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ous[ou])
                accounts[(ou, name)] = account
        prod_sales, stg_sales = accounts[("silos", "Sales")], accounts[("silos-staging", "Sales")]
        backend = FakeStackOperations(
            [
                StackInfo("master"), StackInfo("master-staging"),
                StackInfo(f"silo-{prod_sales}", "sales"),
                StackInfo("silo-888888888888", "gone-prod"),  # a production account that left
                StackInfo(f"silo-staging-{stg_sales}", "sales"),
                StackInfo("silo-staging-999999999999", "gone-stg"),  # a staging account that left
            ],
            # Each master as deployed: after silo changes, its environment's runner updates its catalogs.
            exports={master: deployed_master_export(master) for master in ("master", "master-staging")},
        )
        yield org, ous, accounts, backend, tmp_path


def run_env(world, environment, *argv):
    org, ous, _, backend, tmp_path = world
    ou = ous["silos-staging" if environment else "silos"]
    env = [f"--env={environment}"] if environment else []
    args = [*env, *argv, f"--silo-ou={ou}", f"--report-to={tmp_path / 'reports'}", f"--log-dir={tmp_path / 'logs'}",
            f"--exports-to={tmp_path / 'exports'}", "--max-retire-share=1", f"--plan-json={tmp_path / ('plan-' + (environment or 'default') + '.json')}"]
    return main(args, Clients(organizations=org, stack_ops=backend))


def touched(backend, since=0):
    # Listing and the CLI's versions are not about any stack.
    return {stack for operation, stack in backend.calls[since:] if operation not in ("list", "versions")}


def test_two_environments_reconcile_side_by_side_without_touching_each_others_stacks(two_environments):
    org, ous, accounts, backend, tmp_path = two_environments
    assert run_env(two_environments, None, "apply") == 0
    prod = touched(backend)
    # Its silos, and its own master's catalogs (the retired account's): never staging's master.
    assert prod == {f"silo-{accounts[('silos', 'Sales')]}", f"silo-{accounts[('silos', 'Finance')]}", "silo-888888888888", "master"}
    plan = json.loads((tmp_path / "plan-default.json").read_text())
    assert plan["existingStacks"] == 2  # its own two: staging's are not its stacks

    mark = len(backend.calls)
    assert run_env(two_environments, STAGING, "apply") == 0
    staging = touched(backend, mark)
    newcomer = accounts[("silos-staging", "Newcomer")]
    assert staging == {f"silo-staging-{accounts[('silos-staging', 'Sales')]}", f"silo-staging-{newcomer}", "silo-staging-999999999999",
                       "master-staging"}
    assert backend.targets["master-staging"] == [
        f"urn:pulumi:master-staging::datalake::datalake:master:MasterAccount$datalake:analytics:OrgAnalytics$aws:athena/dataCatalog:DataCatalog::master-analytics-catalog-{a}"
        for a in sorted([newcomer, "999999999999"])
    ]
    plan = json.loads((tmp_path / "plan-staging.json").read_text())
    actions = {op["stack"]: op["action"] for op in plan["operations"]}
    assert actions == {
        f"silo-staging-{newcomer}": "create",
        f"silo-staging-{accounts[('silos-staging', 'Sales')]}": "update",
        "silo-staging-999999999999": "retire-forget",
    }
    # The created stack is a staging silo: its environment, its master, its names.
    config = backend.configs[f"silo-staging-{newcomer}"]
    assert config["datalake:environment"] == STAGING and config["datalake:masterStack"] == "organization/datalake/master-staging"
    assert config["datalake:siloOuPath"].endswith("ou-ab12-33333333/")
    # Both backends' worth of stacks are still there but for the two gone accounts, one retired by each runner.
    assert set(backend.stacks) == {
        "master", "master-staging",
        f"silo-{accounts[('silos', 'Sales')]}", f"silo-{accounts[('silos', 'Finance')]}",
        f"silo-staging-{accounts[('silos-staging', 'Sales')]}", f"silo-staging-{newcomer}",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env=Staging", "plan"], "--env 'Staging': not 2-10 lowercase letters and digits starting with a letter (no hyphen); for example: --env staging"),
        (["--env=staging", "plan", f"--master-config={PROJECT_DIR / 'Pulumi.master.yaml'}"],
         "Pulumi.master.yaml belongs to the default environment, but this run is for environment 'staging'; "
         "set datalake:environment: staging in it, or run with no --env"),
        (["plan", f"--master-config={PROJECT_DIR / 'Pulumi.master-staging.yaml'}"],
         "Pulumi.master-staging.yaml belongs to environment 'staging', but this run is for the default environment; remove datalake:environment in it, or run with --env staging"),
        (["--env=staging", "plan", f"--template={PROJECT_DIR / 'Pulumi.silo-template.yaml'}"],
         "Pulumi.silo-template.yaml belongs to the default environment, but this run is for environment 'staging'"),
        (["--env=qa", "plan"], "master stack file"),
    ],
)
def test_a_run_for_the_wrong_environment_exits_2_before_touching_a_stack(two_environments, caplog, capsys, argv, message):
    org, ous, _, backend, tmp_path = two_environments
    code = main([*argv, f"--silo-ou={ous['silos']}", f"--report-to={tmp_path}"], Clients(organizations=org, stack_ops=backend))
    assert code == 2
    assert message in caplog.text + capsys.readouterr().err
    assert backend.calls == []


def test_environments_with_nested_silo_ous_are_refused(two_environments, caplog, tmp_path):
    org, ous, _, backend, _ = two_environments
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns(".venv", ".git", "out", "tests", "__pycache__", "node_modules"))
    staging = (project / "Pulumi.master-staging.yaml").read_text()
    nested = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-44444444/"
    (project / "Pulumi.master-staging.yaml").write_text(staging.replace("o-a1b2c3d4e5/r-ab12/ou-ab12-33333333/", nested))
    code = main(["plan", f"--project-dir={project}", f"--silo-ou={ous['silos']}", f"--report-to={tmp_path / 'r'}"],
                Clients(organizations=org, stack_ops=backend))
    assert code == 2
    assert f"datalake:siloOuPath 'o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/' of the default environment is nested with '{nested}' of environment 'staging'" in caplog.text
    assert backend.calls == []


def test_a_staging_retirement_revokes_only_staging_partners():
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        for path, name in (("/datalake/partners/sales/", "prod-partner"), ("/datalake-staging/partners/sales/", "stg-partner")):
            iam.create_user(UserName=name, Path=path)
        op = PlannedOperation("123456789012", "Sales", "silo-staging-123456789012", Action.RETIRE_DESTROY, "opted out",
                              silo_name="sales", environment=STAGING)
        assert op.partners == "revoked before destroy (/datalake-staging/partners/sales/)"
        notes = PartnerRevoker(lambda account: iam)(op, io.StringIO())
        assert {u["UserName"] for u in iam.list_users()["Users"]} == {"prod-partner"}
        assert any("/datalake-staging/partners/sales/" in note for note in notes)
