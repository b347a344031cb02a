"""Both programs (issue 12, items 9-12): every log group is the stack's, encrypted, with retention;
no service is left to create its own; service roles are tied to this account where the service
sends the keys; the SFTP server takes only current security policies."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from components.silo.config import TRANSFER_SECURITY_POLICIES
from components.shared.errors import ConfigError
from components.stack_config import parse_stack_config
from components.silo.sftp import SftpServerArgs
from offline.harness import MASTER_ACCOUNT_ID, SILO_ACCOUNT_ID, Recording
from offline.stacks import master_config, silo_config
from policy import access, services

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"


@pytest.fixture(scope="module")
def master(evaluations) -> Recording:
    """The master with the S3 source too (it adds the events role)."""
    config = master_config()
    config["datalake:delivery"] = {k: v for k, v in config["datalake:delivery"].items() if k != "repository"} | {"source": "s3"}
    return evaluations.master(config)


@pytest.fixture(scope="module")
def silo(evaluations) -> Recording:
    """The silo with SFTP on (it is opt-in) and the shipped datasets."""
    config = silo_config()
    config["datalake:sftp"] = {**config.get("datalake:sftp", {}), "enabled": True}
    return evaluations.silo(config)


def groups(rec: Recording) -> dict[str, dict]:
    return {g.inputs["name"]: g for g in rec.of_type(LOG_GROUP)}


def key_grants_group(key_policy: dict, account: str, group: str) -> list[str]:
    """Sids of key policy statements that let CloudWatch Logs encrypt `group` (by encryption context)."""
    arn = f"arn:aws:logs:eu-west-1:{account}:log-group:{group}"
    found = []
    for st in key_policy["Statement"]:
        if st.get("Principal") != {"Service": "logs.eu-west-1.amazonaws.com"} or "kms:GenerateDataKey" not in st["Action"]:
            continue
        for operator, keys in st.get("Condition", {}).items():
            values = keys.get("kms:EncryptionContext:aws:logs:arn")
            values = values if isinstance(values, list) else [values] if values else []
            match = fnmatchcase if operator == "StringLike" else str.__eq__
            if any(match(arn, v) for v in values):
                found.append(st["Sid"])
    return found


# -- 9. the stack's key on every log group --------------------------------------------------------


def test_every_log_group_of_both_programs_has_the_stacks_key_and_a_retention(master, silo):
    for rec, key in ((master, master.outputs["artifactKeyArn"]), (silo, silo.outputs["keyArn"])):
        for name, group in groups(rec).items():
            assert group.inputs.get("kmsKeyId") == key, name
            assert group.inputs.get("retentionInDays"), name


@pytest.mark.parametrize(
    "group",
    ["/aws/lambda/acme-dl-sales-credential-vending", "/aws/lambda/acme-dl-sales-dropzone-janitor", "/aws/lambda/acme-dl-sales-sftp-auth"],
)
def test_the_silo_key_lets_cloudwatch_logs_encrypt_the_dropzone_function_logs(silo, group):
    assert groups(silo)[group].inputs["kmsKeyId"] == silo.outputs["keyArn"]
    assert key_grants_group(silo.one("aws:kms/key:Key").policy(), SILO_ACCOUNT_ID, group) == ["AllowCloudWatchLogsEncryption"]


def test_the_master_key_grants_cloudwatch_logs_exactly_the_three_build_log_groups(master):
    key_policy = next(k for k in master.of_type("aws:kms/key:Key") if k.outputs["arn"] == master.outputs["artifactKeyArn"]).policy()
    grant = next(s for s in key_policy["Statement"] if s["Sid"] == "AllowDeliveryBuildLogEncryption")
    assert grant["Condition"] == {
        "StringEquals": {
            "kms:EncryptionContext:aws:logs:arn": [
                f"arn:aws:logs:eu-west-1:{MASTER_ACCOUNT_ID}:log-group:/aws/codebuild/acme-dl-delivery-{stage}"
                for stage in ("test", "package", "deploy")
            ]
        }
    }
    for stage in ("test", "package", "deploy"):
        group = f"/aws/codebuild/acme-dl-delivery-{stage}"
        assert groups(master)[group].inputs["kmsKeyId"] == master.outputs["artifactKeyArn"]
        assert key_grants_group(key_policy, MASTER_ACCOUNT_ID, group) == ["AllowDeliveryBuildLogEncryption"]


# -- 10. log groups services would create themselves -----------------------------------------------


def test_the_ingestion_stage_execution_log_group_exists_before_the_logging_level_is_set(silo):
    api = silo.one("aws:apigateway/restApi:RestApi", "silo-sales-ingestion-api")
    group = silo.one(LOG_GROUP, "silo-sales-ingestion-execution-logs")
    assert group.inputs["name"] == f"API-Gateway-Execution-Logs_{api.outputs['id']}/v1"
    assert group.inputs["retentionInDays"] == 90
    settings = silo.one("aws:apigateway/methodSettings:MethodSettings", "silo-sales-ingestion-stage-settings")
    assert settings.inputs["settings"]["loggingLevel"] == "ERROR"
    assert group.urn in settings.dependencies


def test_glue_logs_go_to_groups_the_stack_made_first(silo):
    names = {
        "job-output": "/aws-glue/jobs/acme-dl-sales-etl-role/acme-dl-sales-etl-job/output",
        "job-error": "/aws-glue/jobs/acme-dl-sales-etl-role/acme-dl-sales-etl-job/error",
        "job-continuous": "/aws-glue/jobs/logs-v2-acme-dl-sales-etl",
        "raw-crawler": "/aws-glue/crawlers-role/acme-dl-sales-raw-crawler-acme-dl-sales-etl",
        "processed-crawler": "/aws-glue/crawlers-role/acme-dl-sales-processed-crawler-acme-dl-sales-etl",
    }
    made = {label: silo.one(LOG_GROUP, f"silo-sales-etl-{label}-logs") for label in names}
    assert {label: g.inputs["name"] for label, g in made.items()} == names
    # The names follow the security configuration and the roles the program really uses.
    security = silo.one("aws:glue/securityConfiguration:SecurityConfiguration").inputs["name"]
    job = silo.one("aws:glue/job:Job")
    assert job.inputs["securityConfiguration"] == security == "acme-dl-sales-etl"
    assert job.inputs["roleArn"].endswith(":role/acme-dl-sales-etl-job")
    assert {made[k].urn for k in ("job-output", "job-error", "job-continuous")} <= set(job.dependencies)
    for crawler, label in (("silo-sales-etl-raw-crawler", "raw-crawler"), ("silo-sales-etl-processed-crawler", "processed-crawler")):
        resource = silo.one("aws:glue/crawler:Crawler", crawler)
        assert resource.inputs["role"].endswith(f":role/acme-dl-sales-{label}")
        assert made[label].urn in resource.dependencies


def test_redshift_exports_into_groups_the_stack_made_first(silo):
    namespace = silo.one("aws:redshiftserverless/namespace:Namespace")
    made = {t: silo.one(LOG_GROUP, f"silo-sales-warehouse-{t}") for t in namespace.inputs["logExports"]}
    assert {t: g.inputs["name"] for t, g in made.items()} == {
        t: f"/aws/redshift/{namespace.inputs['namespaceName']}/{t}" for t in ("userlog", "connectionlog", "useractivitylog")
    }
    assert all(g.inputs["retentionInDays"] == 365 for g in made.values())
    assert {g.urn for g in made.values()} <= set(namespace.dependencies)


def test_glue_and_redshift_log_retention_come_from_their_config_sections(evaluations, silo):
    assert {g.inputs["retentionInDays"] for g in silo.of_type(LOG_GROUP) if g.name.startswith("silo-sales-etl-")} == {90}
    config = silo_config()
    config["datalake:etl"] = {**config.get("datalake:etl", {}), "logRetentionDays": 30}
    config["datalake:warehouse"] = {**config.get("datalake:warehouse", {}), "logRetentionDays": 731}
    changed = evaluations.silo(config)
    etl = [g for g in changed.of_type(LOG_GROUP) if g.name.startswith("silo-sales-etl-")]
    warehouse = [g for g in changed.of_type(LOG_GROUP) if g.name.startswith("silo-sales-warehouse-")]
    assert len(etl) == 5 and {g.inputs["retentionInDays"] for g in etl} == {30}
    assert len(warehouse) == 3 and {g.inputs["retentionInDays"] for g in warehouse} == {731}


@pytest.mark.parametrize("section", ["etl", "warehouse"])
def test_a_log_retention_cloudwatch_does_not_offer_is_refused_naming_the_key(section):
    config = silo_config()
    config[f"datalake:{section}"] = {**config.get(f"datalake:{section}", {}), "logRetentionDays": 45}
    with pytest.raises(ConfigError) as error:
        parse_stack_config("silo-222222222222", config)
    assert f"datalake:{section}.logRetentionDays: got 45" in str(error.value)


def test_no_policy_of_either_program_lets_a_service_create_a_log_group(master, silo):
    for rec in (master, silo):
        for resource, key, document in rec.policies():
            for st in document["Statement"]:
                actions = st.get("Action", [])
                actions = actions if isinstance(actions, list) else [actions]
                if st["Effect"] == "Allow":
                    assert not any(fnmatchcase("logs:CreateLogGroup", a) for a in actions), (resource.urn, st.get("Sid"))
    assert [r for r in silo.of_type(ROLE) if "sftp-logging" in r.name] == []


# -- 11. trust policies ----------------------------------------------------------------------------


def trusts(rec: Recording) -> dict[str, list[dict]]:
    return {r.name: r.policy("assumeRolePolicy")["Statement"] for r in rec.of_type(ROLE)}


@pytest.mark.parametrize("role", ["test", "package", "deploy", "pipeline", "events"])
def test_delivery_roles_are_tied_to_the_master_account(master, role):
    (trust,) = trusts(master)[f"master-delivery-{role}-role"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": MASTER_ACCOUNT_ID}}


def test_every_service_role_is_tied_to_its_account_except_where_the_service_sends_no_keys(master, silo):
    """Lambda, API Gateway and Glue are the documented exceptions (see the comments at each role)."""
    unconditioned = set()
    for rec in (master, silo):
        for name, statements in trusts(rec).items():
            for st in statements:
                services = st["Principal"].get("Service")
                if services is None:
                    continue
                services = services if isinstance(services, list) else [services]
                if not st.get("Condition"):
                    unconditioned.update(services)
                else:
                    keys = {k for block in st["Condition"].values() for k in block}
                    assert keys & {"aws:SourceAccount", "aws:SourceArn", "sts:ExternalId"}, name
    assert unconditioned == {"lambda.amazonaws.com", "apigateway.amazonaws.com", "glue.amazonaws.com"}
    assert not unconditioned & set(access.SERVICES_SENDING_SOURCE_KEYS)


# -- 12. Transfer security policies ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["TransferSecurityPolicy-2018-11", "TransferSecurityPolicy-2020-06", "TransferSecurityPolicy-2023-05",
                                  "TransferSecurityPolicy-FIPS-2023-05", "TransferSecurityPolicy-PQ-SSH-Experimental-2023-04",
                                  "TransferSecurityPolicy-Made-Up"])
def test_outdated_transfer_security_policies_are_refused_naming_the_allowed_ones(name):
    config = silo_config()
    config["datalake:sftp"] = {"enabled": True, "securityPolicy": name}
    with pytest.raises(ConfigError) as error:
        parse_stack_config("silo-222222222222", config)
    message = str(error.value)
    assert f"datalake:sftp.securityPolicy: got {name!r}, which is not a current Transfer security policy" in message
    assert ", ".join(TRANSFER_SECURITY_POLICIES) in message


@pytest.mark.parametrize("name", TRANSFER_SECURITY_POLICIES)
def test_current_transfer_security_policies_are_accepted(name):
    config = silo_config()
    config["datalake:sftp"] = {"enabled": True, "securityPolicy": name}
    assert parse_stack_config("silo-222222222222", config).sftp.security_policy == name


def test_the_policy_pack_accepts_every_policy_the_config_does_and_the_component_refuses_others():
    assert set(TRANSFER_SECURITY_POLICIES) <= set(services.CURRENT_TRANSFER_POLICIES)
    # The component takes its policy from SftpConfig, which refuses any other (the test above).
    assert SftpServerArgs.__dataclass_fields__["config"].default_factory().security_policy in TRANSFER_SECURITY_POLICIES
