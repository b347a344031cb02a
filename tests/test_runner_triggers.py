"""The master stack's runner triggers, under mocks: CodeBuild project, schedules, events rule, role, alerts."""

from __future__ import annotations

import json

import pytest
import yaml

from components.master.pulumi_cli import INSTALL_COMMANDS, PULUMI_CLI_SHA256
from offline.harness import CLI_SHA256_STAND_IN, MASTER_ACCOUNT_ID
from offline.organizations_arns import parse
from offline.stacks import master_config, run_master

STATE_BUCKET = f"acme-dl-master-pulumi-state-{MASTER_ACCOUNT_ID}"
RUNNER_PROJECT = "master-runner-project"


def project_arn(recording) -> str:
    return recording.one("aws:codebuild/project:Project", RUNNER_PROJECT).outputs["arn"]


def env_vars(project) -> dict[str, str]:
    return {v["name"]: v["value"] for v in project.inputs["environment"]["environmentVariables"]}


def targets_of(recording, rule_name: str):
    rule = recording.one("aws:cloudwatch/eventRule:EventRule", rule_name)
    return rule, [t for t in recording.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs["rule"] == rule.inputs["name"] and t.provider == rule.provider]


def test_codebuild_project_runs_the_runner_with_a_pinned_cli(master):
    project = master.one("aws:codebuild/project:Project", RUNNER_PROJECT)
    role = master.one("aws:iam/role:Role", "master-runner-role")
    assert project.inputs["serviceRole"] == role.outputs["arn"]
    assert project.inputs["concurrentBuildLimit"] == 1  # overlapping triggers queue, they do not race
    assert project.inputs["environment"]["computeType"] == "BUILD_GENERAL1_MEDIUM"
    assert project.inputs["buildTimeout"] == 120
    assert project.inputs["encryptionKey"] == master.one("aws:kms/key:Key").outputs["arn"]
    assert project.inputs["source"]["type"] == "S3"
    assert project.inputs["source"]["location"] == f"acme-dl-master-artifacts-{MASTER_ACCOUNT_ID}/bundles/datalake.zip"
    spec = yaml.safe_load(project.inputs["source"]["buildspec"])
    commands = spec["phases"]["install"]["commands"] + spec["phases"]["build"]["commands"]
    assert commands[: len(INSTALL_COMMANDS)] == list(INSTALL_COMMANDS)  # the checksummed archive (test_build_supply_chain)
    assert commands[-1] == '.venv/bin/python -m runner "$RUNNER_COMMAND"'
    assert env_vars(project) == {
        "RUNNER_COMMAND": "apply",
        "PULUMI_VERSION": "3.272.0",
        "PULUMI_CLI_SHA256": PULUMI_CLI_SHA256.get("3.272.0", CLI_SHA256_STAND_IN),
        "PULUMI_BACKEND_URL": f"s3://{STATE_BUCKET}?region=eu-west-1",
        "RUNNER_REPORT_TO": f"s3://{STATE_BUCKET}/runner-reports",
        "RUNNER_LEDGER": f"s3://{STATE_BUCKET}/runner-ledger",
        "RUNNER_LEDGER_KMS_KEY": master.one("aws:kms/key:Key").outputs["arn"],
        "RUNNER_EXPORTS_KMS_KEY": master.one("aws:kms/key:Key").outputs["arn"],
        "PULUMI_SECRETS_PROVIDER": "awskms://alias/acme-dl-master?region=eu-west-1",
        "AWS_REGION": "eu-west-1",
    }
    logs = master.one("aws:cloudwatch/logGroup:LogGroup", "master-runner-logs")
    assert project.inputs["logsConfig"]["cloudwatchLogs"]["groupName"] == logs.inputs["name"] == "/aws/codebuild/acme-dl-runner"
    assert logs.inputs["kmsKeyId"] == master.one("aws:kms/key:Key").outputs["arn"]
    assert master.outputs["runnerProjectName"] == "acme-dl-runner"
    assert master.outputs["pulumiStateBucket"] == STATE_BUCKET


def test_schedules_start_apply_and_drift(master):
    rule, [target] = targets_of(master, "master-runner-schedule")
    assert rule.inputs["scheduleExpression"] == "rate(1 hour)"
    assert target.inputs["arn"] == project_arn(master)
    assert json.loads(target.inputs["input"])["environmentVariablesOverride"] == [
        {"name": "RUNNER_COMMAND", "value": "apply", "type": "PLAINTEXT"}
    ]
    assert target.inputs["roleArn"] == master.one("aws:iam/role:Role", "master-runner-events-role").outputs["arn"]
    drift, [drift_target] = targets_of(master, "master-runner-drift-schedule")
    assert drift.inputs["scheduleExpression"] == "rate(1 day)"
    assert json.loads(drift_target.inputs["input"])["environmentVariablesOverride"][0]["value"] == "drift"


def test_schedules_follow_the_config():
    config = master_config()
    config["datalake:runner"] = {"schedule": "cron(0/15 * * * ? *)", "driftSchedule": None, "stateBucket": "acme-state"}
    recording = run_master(config)
    assert recording.one("aws:cloudwatch/eventRule:EventRule", "master-runner-schedule").inputs["scheduleExpression"] == "cron(0/15 * * * ? *)"
    assert not [r for r in recording.of_type("aws:cloudwatch/eventRule:EventRule") if "drift" in r.name]
    assert env_vars(recording.one("aws:codebuild/project:Project", RUNNER_PROJECT))["PULUMI_BACKEND_URL"] == "s3://acme-state?region=eu-west-1"
    policy = recording.one("aws:iam/rolePolicy:RolePolicy", "master-runner-policy")
    assert policy.statement("ReadWriteState")["Resource"] == ["arn:aws:s3:::acme-state/*"]


def test_organizations_events_start_a_targeted_run_from_us_east_1(master):
    targeted = master.one("aws:codebuild/project:Project", "master-runner-targeted-project")
    assert targeted.inputs["concurrentBuildLimit"] == 4  # events run beside a rollout, never queued behind it
    assert env_vars(targeted) == env_vars(master.one("aws:codebuild/project:Project", RUNNER_PROJECT))
    seen = []
    for shape, path in (("created", "$.detail.serviceEventDetails.createAccountStatus.accountId"),
                        ("lifecycle", "$.detail.requestParameters.accountId"),
                        ("tags", "$.detail.requestParameters.resourceId")):
        rule, [target] = targets_of(master, f"master-runner-account-{shape}")
        pattern = json.loads(rule.inputs["eventPattern"])
        assert pattern["source"] == ["aws.organizations"]
        seen += pattern["detail"]["eventName"]
        assert target.inputs["arn"] == targeted.outputs["arn"]
        transformer = target.inputs["inputTransformer"]
        assert transformer["inputPaths"] == {"account": path, "time": "$.time"}
        assert json.loads(transformer["inputTemplate"])["environmentVariablesOverride"][1] == {
            "name": "RUNNER_ACCOUNTS", "value": "<account>", "type": "PLAINTEXT"
        }
    assert sorted(seen) == sorted(["CreateAccountResult", "MoveAccount", "CloseAccount", "RemoveAccountFromOrganization", "TagResource", "UntagResource"])
    # The master is in eu-west-1; Organizations events arrive in us-east-1 only, so a rule there forwards them.
    east, [forward] = targets_of(master, "master-runner-account-events-us-east-1")
    provider = master.one("pulumi:providers:aws", "master-us-east-1")
    assert provider.inputs["region"] == "us-east-1"
    assert east.provider.startswith(provider.urn) and forward.provider.startswith(provider.urn)
    assert sorted(json.loads(east.inputs["eventPattern"])["detail"]["eventName"]) == sorted(seen)
    assert forward.inputs["arn"] == f"arn:aws:events:eu-west-1:{MASTER_ACCOUNT_ID}:event-bus/default"
    events_policy = master.one("aws:iam/rolePolicy:RolePolicy", "master-runner-events-policy")
    assert events_policy.statement("ForwardOrganizationsEvents")["Resource"] == [forward.inputs["arn"]]
    assert events_policy.statement("StartRunnerBuild")["Resource"] == [project_arn(master), targeted.outputs["arn"]]
    assert not master.of_type("aws:sfn/stateMachine:StateMachine")  # the local engine is the default


def test_a_master_in_us_east_1_needs_no_forwarder():
    recording = run_master({**master_config(), "aws:region": "us-east-1"})
    assert not [r for r in recording.resources if r.name.endswith("us-east-1") or "us-east-1-" in r.name]
    targets_of(recording, "master-runner-account-lifecycle")


def test_failed_builds_alert_the_sns_topic(master):
    rule, [target] = targets_of(master, "master-runner-failed")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"]["project-name"] == ["acme-dl-runner", "acme-dl-runner-targeted"]
    assert set(pattern["detail"]["build-status"]) == {"FAILED", "STOPPED", "TIMED_OUT"}
    assert target.inputs["arn"] == master.outputs["alertTopicArn"]


def test_the_build_role_may_assume_only_the_deploy_role_in_member_accounts(master):
    role = master.one("aws:iam/role:Role", "master-runner-role")
    trust = role.statement("AllowServiceAssumeRole", "assumeRolePolicy")
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": MASTER_ACCOUNT_ID}}
    policy = master.one("aws:iam/rolePolicy:RolePolicy", "master-runner-policy")
    statements = policy.policy()["Statement"]
    assume = [s for s in statements if "sts:AssumeRole" in s["Action"]]
    assert assume == [policy.statement("AssumeDeployRoleInMemberAccounts")]
    assert assume[0]["Resource"] == ["arn:aws:iam::*:role/OrganizationAccountAccessRole"]
    assert assume[0]["Condition"] == {"StringEquals": {"aws:ResourceOrgID": "o-a1b2c3d4e5"}}
    s3_resources = {r for s in statements for a in s["Action"] if a.startswith("s3:") for r in s["Resource"]}
    assert s3_resources == {
        f"arn:aws:s3:::{STATE_BUCKET}",
        f"arn:aws:s3:::{STATE_BUCKET}/*",
        f"arn:aws:s3:::acme-dl-master-artifacts-{MASTER_ACCOUNT_ID}",
        f"arn:aws:s3:::acme-dl-master-artifacts-{MASTER_ACCOUNT_ID}/bundles/datalake.zip",
    }
    for s in statements:
        assert s["Resource"] != ["*"] and not any(a.endswith(":*") or a == "*" for a in s["Action"]), s["Sid"]
    reads = policy.statement("ReadOrganizationAccounts")
    # The shipped master is the management account (datalake:managementAccountId = its own id).
    management = master_config()["datalake:managementAccountId"]
    assert [(parse(r).resource_type, parse(r).account) for r in reads["Resource"]] == [
        ("root", management),
        ("organizationalunit", management),
        ("account", management),
    ]
    assert all("/o-a1b2c3d4e5/" in r for r in reads["Resource"])
    assert not [a for a in reads["Action"] if not a.startswith(("organizations:List", "organizations:Describe"))]


def test_the_master_key_lets_logs_encrypt_only_the_runner_log_group(master):
    key = master.one("aws:kms/key:Key")
    grant = key.statement("AllowRunnerLogGroupEncryption")
    assert grant["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    # Named actions, no wildcards: what CloudWatch Logs calls with an encryption context.
    assert sorted(grant["Action"]) == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
                                       "kms:ReEncryptFrom", "kms:ReEncryptTo"]
    assert grant["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{MASTER_ACCOUNT_ID}:log-group:/aws/codebuild/acme-dl-runner"}
    }


def test_bad_runner_settings_name_the_key_and_an_example():
    import pytest

    from components.stack_config import parse_stack_config
    from components.shared.errors import ConfigError

    config = {**master_config(), "datalake:runner": {"schedule": "hourly", "secretsProvider": "passphrase", "denyAccounts": ["1234"]}}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("master", config)
    problems = caught.value.problems
    assert any(p.startswith("datalake:runner.schedule: got 'hourly'") and "for example: rate(1 hour)" in p for p in problems)
    assert any(p.startswith("datalake:runner.secretsProvider: got 'passphrase'") for p in problems)
    assert any(p.startswith("datalake:runner.denyAccounts: got '1234'") for p in problems)


def test_account_events_pass_their_time_and_the_build_role_may_update_only_the_silo_catalogs(master):
    for shape in ("created", "lifecycle", "tags"):
        _, [target] = targets_of(master, f"master-runner-account-{shape}")
        transformer = target.inputs["inputTransformer"]
        assert transformer["inputPaths"]["time"] == "$.time"
        # A placeholder inside quotes is replaced by the bare value; with samples the template is the StartBuild input.
        started = json.loads(transformer["inputTemplate"].replace("<account>", "111122223333").replace("<time>", "2026-03-10T12:00:00Z"))
        assert started["environmentVariablesOverride"] == [
            {"name": "RUNNER_COMMAND", "value": "apply", "type": "PLAINTEXT"},
            {"name": "RUNNER_ACCOUNTS", "value": "111122223333", "type": "PLAINTEXT"},
            {"name": "RUNNER_EVENT_TIME", "value": "2026-03-10T12:00:00Z", "type": "PLAINTEXT"},
        ]
        assert "input" not in target.inputs
    _, [scheduled] = targets_of(master, "master-runner-schedule")
    assert json.loads(scheduled.inputs["input"])["environmentVariablesOverride"][0]["value"] == "apply"
    policy = master.one("aws:iam/rolePolicy:RolePolicy", "master-runner-policy")
    catalogs = policy.statement("UpdateMasterCatalogs")
    prefix = master_config()["datalake:analytics"]["catalogPrefix"]
    assert catalogs["Resource"] == [f"arn:aws:athena:eu-west-1:{MASTER_ACCOUNT_ID}:datacatalog/{prefix}*"]
    assert set(catalogs["Action"]) == {f"athena:{a}" for a in (
        "CreateDataCatalog", "DeleteDataCatalog", "GetDataCatalog", "UpdateDataCatalog", "TagResource", "UntagResource", "ListTagsForResource")}


@pytest.fixture(scope="module")
def stepfunctions_master():
    """The master program with `engine: stepfunctions`, evaluated once for the tests below."""
    config = master_config()
    config["datalake:runner"] = {**config.get("datalake:runner", {}), "engine": "stepfunctions", "batchSize": 40,
                                 "mapMaxConcurrency": 25, "toleratedFailurePercentage": 5}
    return run_master(config)


def test_the_stepfunctions_engine_deploys_the_rollout_state_machine(stepfunctions_master):
    from components.master.runner_engine import RolloutSettings, rollout_definition
    from offline.sdk_contract import check_definition, definitions_of
    from statelint.linter import Linter

    recording = stepfunctions_master
    [(urn, definition)] = definitions_of(recording)
    machine = recording.one("aws:sfn/stateMachine:StateMachine")
    assert machine.inputs["name"] == "acme-dl-runner" and machine.inputs["type"] == "STANDARD"
    topic = recording.outputs["alertTopicArn"]
    assert definition == rollout_definition(RolloutSettings(
        partition="aws", plan_project="acme-dl-runner", shard_project="acme-dl-runner-shard", targeted_project="acme-dl-runner-targeted",
        state_bucket=STATE_BUCKET, alert_topic_arn=topic, batch_size=40, max_concurrency=25, tolerated_failure_percentage=5,
    ))
    assert check_definition(definition, partition="aws") == []
    assert Linter.validate(definition) == ['Field "InputType" not allowed in State Machine.States.Rollout.ItemReader.ReaderConfig']
    shard = recording.one("aws:codebuild/project:Project", "master-runner-shard-project")
    assert shard.inputs["concurrentBuildLimit"] == 25  # every child of the map can run at once
    assert recording.outputs["runnerStateMachineArn"] == machine.outputs["arn"]


def test_the_state_machine_role_may_do_exactly_what_the_definition_calls(stepfunctions_master):
    from tests.iam_lint import parliament_findings

    recording = stepfunctions_master
    role = recording.one("aws:iam/role:Role", "master-runner-engine-role")
    assert role.statement("AllowServiceAssumeRole", "assumeRolePolicy")["Principal"] == {"Service": "states.amazonaws.com"}
    policy = recording.one("aws:iam/rolePolicy:RolePolicy", "master-runner-engine-policy")
    document = policy.policy()
    assert parliament_findings(document) == []
    projects = {p.name: p.outputs["arn"] for p in recording.of_type("aws:codebuild/project:Project")}
    machine = f"arn:aws:states:eu-west-1:{MASTER_ACCOUNT_ID}:stateMachine:acme-dl-runner"
    expected = {
        "RunBuilds": (["codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds"],
                      [projects["master-runner-project"], projects["master-runner-targeted-project"], projects["master-runner-shard-project"]]),
        "WatchBuildsThroughTheManagedRule": (["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                                             [f"arn:aws:events:eu-west-1:{MASTER_ACCOUNT_ID}:rule/StepFunctionsGetEventsForCodeBuildStartBuildRule"]),
        "StartMapChildren": (["states:StartExecution"], [machine]),
        "FollowMapChildren": (["states:DescribeExecution", "states:StopExecution"],
                              [f"arn:aws:states:eu-west-1:{MASTER_ACCOUNT_ID}:execution:acme-dl-runner:*"]),
        "ReadPlanItems": (["s3:GetObject"], [f"arn:aws:s3:::{STATE_BUCKET}/runner-plans/*"]),
        "AlertFailedRollouts": (["sns:Publish"], [recording.outputs["alertTopicArn"]]),
        "UseMasterKey": (["kms:GenerateDataKey", "kms:Decrypt"], [recording.one("aws:kms/key:Key").outputs["arn"]]),
    }
    assert {s["Sid"]: (s["Action"], s["Resource"]) for s in document["Statement"]} == expected


def test_with_the_stepfunctions_engine_the_schedule_and_the_events_start_the_state_machine(stepfunctions_master):
    recording = stepfunctions_master
    machine = recording.one("aws:sfn/stateMachine:StateMachine").outputs["arn"]
    _, [scheduled] = targets_of(recording, "master-runner-schedule")
    assert (scheduled.inputs["arn"], scheduled.inputs["input"]) == (machine, "{}")
    for shape in ("created", "lifecycle", "tags"):
        _, [target] = targets_of(recording, f"master-runner-account-{shape}")
        assert target.inputs["arn"] == machine
        assert target.inputs["inputTransformer"]["inputTemplate"] == '{"accounts": "<account>", "time": "<time>"}'
    _, [drift] = targets_of(recording, "master-runner-drift-schedule")
    assert drift.inputs["arn"] == project_arn(recording)  # drift checks stay one build
    events_policy = recording.one("aws:iam/rolePolicy:RolePolicy", "master-runner-events-policy")
    assert events_policy.statement("StartRunnerRollout")["Resource"] == [machine]
