"""The delivery pipeline: stages, what each build runs, least-privilege roles, failure alerts."""

from __future__ import annotations

import json

import pytest

from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError
from offline.stacks import master_config, run_master

PIPELINE = "aws:codepipeline/pipeline:Pipeline"
PROJECT = "aws:codebuild/project:Project"
EXAMPLE_KEY = "arn:aws:kms:eu-west-1:111111111111:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MASTER = "111111111111"


def delivery_projects(recording):
    """The build projects of the delivery pipeline (the runner's own project lives elsewhere)."""
    return [
        p for p in recording.of_type(PROJECT)
        if any(a.type == "datalake:delivery:DeliveryPipeline" for a in recording.ancestors(p))
    ]


def delivery_config(**changes):
    config = master_config()
    config["datalake:delivery"] = {**config["datalake:delivery"], **changes}
    return config


def role_statements(recording, role: str) -> dict[str, dict]:
    policy = recording.one(ROLE_POLICY, f"master-delivery-{role}-policy")
    return {s["Sid"]: s for s in policy.policy()["Statement"]}


def actions_on(statements, prefix: str) -> set[str]:
    return {a for s in statements.values() for a in s["Action"] if a.startswith(prefix)}


def test_pipeline_runs_source_test_package_deploy_with_encrypted_artifacts_in_its_own_bucket(master):
    pipeline = master.one(PIPELINE).inputs
    assert [stage["name"] for stage in pipeline["stages"]] == ["Source", "Test", "Package", "Deploy"]
    assert pipeline["pipelineType"] == "V2"
    (store,) = pipeline["artifactStores"]
    assert store["location"] == f"acme-dl-master-pipeline-{MASTER}"
    # Working artifacts never land in the artifact bucket that every silo deploy role may read.
    assert store["location"] != master.outputs["artifactBucketName"]
    assert store["encryptionKey"] == {"id": master.outputs["artifactKeyArn"], "type": "KMS"}


def test_codestar_source_uses_the_connection_repository_and_branch(master):
    connection = master.one("aws:codestarconnections/connection:Connection")
    source = master.one(PIPELINE).inputs["stages"][0]["actions"][0]
    assert source["provider"] == "CodeStarSourceConnection"
    assert source["configuration"]["ConnectionArn"] == connection.outputs["arn"]
    assert source["configuration"]["FullRepositoryId"] == "acme/datalake"
    assert source["configuration"]["BranchName"] == "main"
    assert connection.inputs["providerType"] == "GitHub"


def test_existing_connection_is_reused_not_created():
    arn = "arn:aws:codeconnections:eu-west-1:111111111111:connection/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5e"
    recording = run_master(delivery_config(connectionArn=arn))
    assert recording.of_type("aws:codestarconnections/connection:Connection") == []
    source = recording.one(PIPELINE).inputs["stages"][0]["actions"][0]
    assert source["configuration"]["ConnectionArn"] == arn
    statements = role_statements(recording, "pipeline")
    assert statements["UseSourceConnection"]["Resource"] == [arn.replace(":codeconnections:", ":codestar-connections:")]
    assert statements["UseSourceConnection"]["Action"] == ["codestar-connections:UseConnection"]
    assert statements["UseSourceConnectionCodeConnections"]["Resource"] == [arn]
    assert statements["UseSourceConnectionCodeConnections"]["Action"] == ["codeconnections:UseConnection"]


def test_each_build_stage_runs_its_command(master):
    projects = {p.inputs["name"]: p.inputs for p in master.of_type(PROJECT)}
    test = projects["acme-dl-delivery-test"]["source"]["buildspec"]
    package = projects["acme-dl-delivery-package"]["source"]["buildspec"]
    deploy = projects["acme-dl-delivery-deploy"]["source"]["buildspec"]
    assert "./dev test" in test
    assert 's3://$ARTIFACT_BUCKET/bundles/$COMMIT_ID/datalake.zip' in package
    assert "functions" in package and "components" in package
    up = deploy.index("pulumi up -s master")
    runner = deploy.index("python -m runner apply")
    assert up < runner, "the master is updated before the runner reconciles the silos"
    assert 'pulumi login "s3://$STATE_BUCKET"' in deploy
    # The runner's state exports and report outlive the build container (issue 10, defect 6).
    assert ('python -m runner apply --backend-url "s3://$STATE_BUCKET" --report-to "s3://$STATE_BUCKET/runner-reports" '
            '--ledger "s3://$STATE_BUCKET/runner-ledger"') in deploy
    env = {v["name"]: v["value"] for v in projects["acme-dl-delivery-package"]["environment"]["environmentVariables"]}
    assert env == {"ARTIFACT_BUCKET": master.outputs["artifactBucketName"]}


def test_package_stage_gets_the_commit_id_from_the_source_action(master):
    stages = {s["name"]: s for s in master.one(PIPELINE).inputs["stages"]}
    (package,) = stages["Package"]["actions"]
    env = json.loads(package["configuration"]["EnvironmentVariables"])
    assert env == [{"name": "COMMIT_ID", "value": "#{SourceVariables.CommitId}", "type": "PLAINTEXT"}]
    assert stages["Source"]["actions"][0]["namespace"] == "SourceVariables"


def test_build_logs_go_to_own_log_groups_with_retention_and_are_encrypted(master):
    groups = {g.inputs["name"]: g.inputs for g in master.of_type("aws:cloudwatch/logGroup:LogGroup")}
    projects = delivery_projects(master)
    assert len(projects) == 3
    for project in projects:
        group = project.inputs["logsConfig"]["cloudwatchLogs"]["groupName"]
        assert group == f"/aws/codebuild/{project.inputs['name']}"
        assert groups[group]["retentionInDays"] == 30
        assert project.inputs["encryptionKey"] == master.outputs["artifactKeyArn"]


@pytest.mark.parametrize("stage", ["test", "package", "deploy"])
def test_each_build_role_writes_only_its_own_log_group(master, stage):
    logs = role_statements(master, stage)["WriteOwnBuildLogs"]
    assert logs["Resource"] == [
        f"arn:aws:logs:eu-west-1:{MASTER}:log-group:/aws/codebuild/acme-dl-delivery-{stage}:log-stream:*"
    ]
    assert set(logs["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_only_the_package_role_writes_bundles_and_only_under_bundles(master):
    bundles = f"arn:aws:s3:::{master.outputs['artifactBucketName']}/bundles/*"
    package = role_statements(master, "package")
    assert package["WriteBundles"] == {"Sid": "WriteBundles", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [bundles]}
    for stage in ("test", "deploy"):
        statements = role_statements(master, stage)
        writes = [s for s in statements.values() if "s3:PutObject" in s["Action"]]
        assert all("pulumi-state" in r for s in writes for r in s["Resource"]), (stage, writes)
    reads = package["ReadPipelineArtifacts"]["Resource"]
    assert reads == [f"arn:aws:s3:::acme-dl-master-pipeline-{MASTER}/acme-dl-delivery/*"]


def test_deploy_role_assumes_only_deploy_roles_in_the_silo_ou_and_the_master_deployer(master):
    deploy = role_statements(master, "deploy")
    silo = deploy["AssumeSiloDeployRolesInSiloOu"]
    assert silo["Resource"] == ["arn:aws:iam::*:role/OrganizationAccountAccessRole"]
    assert silo["Condition"] == {
        "ForAnyValue:StringLike": {"aws:ResourceOrgPaths": ["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*"]}
    }
    assert deploy["AssumeMasterDeployRole"]["Resource"] == [f"arn:aws:iam::{MASTER}:role/datalake-master-deployer"]
    assume = [s for s in deploy.values() if "sts:AssumeRole" in s["Action"]]
    assert len(assume) == 2
    # One backend: the deploy stage uses the runner's state bucket and, by default, the master key.
    assert deploy["ReadWritePulumiState"]["Resource"] == [f"arn:aws:s3:::{master.outputs['pulumiStateBucket']}/*"]
    assert deploy["UsePulumiSecretsKey"]["Resource"] == [master.outputs["artifactKeyArn"]]
    for test_or_package in ("test", "package"):
        assert not actions_on(role_statements(master, test_or_package), "sts:")


def test_pipeline_role_starts_only_the_delivery_builds(master):
    runs = role_statements(master, "pipeline")["RunDeliveryBuilds"]
    assert runs["Resource"] == [
        f"arn:aws:codebuild:eu-west-1:{MASTER}:project/acme-dl-delivery-{stage}" for stage in ("test", "package", "deploy")
    ]


def test_no_delivery_role_has_a_wildcard_action_or_resource(master):
    for stage in ("test", "package", "deploy", "pipeline"):
        for statement in role_statements(master, stage).values():
            assert statement["Effect"] == "Allow"
            assert not any(a == "*" or a.endswith(":*") for a in statement["Action"]), statement
            assert "*" not in statement["Resource"], statement


def test_failed_executions_notify_the_master_alert_topic(master):
    rule = master.one("aws:codestarnotifications/notificationRule:NotificationRule").inputs
    assert rule["eventTypeIds"] == ["codepipeline-pipeline-pipeline-execution-failed"]
    assert rule["resource"] == master.one(PIPELINE).outputs["arn"]
    assert rule["targets"] == [{"address": master.outputs["alertTopicArn"], "type": "SNS"}]
    topic_policy = master.one("aws:sns/topicPolicy:TopicPolicy")
    publishers = topic_policy.statement("AllowServicesOfThisAccountPublish")["Principal"]["Service"]
    assert "codestar-notifications.amazonaws.com" in publishers


def test_s3_source_starts_the_pipeline_through_eventbridge():
    recording = run_master(delivery_config(source="s3", repository=None))
    assert recording.of_type("aws:codestarconnections/connection:Connection") == []
    source = recording.one(PIPELINE).inputs["stages"][0]["actions"][0]
    assert source["provider"] == "S3"
    assert source["configuration"] == {
        "S3Bucket": f"acme-dl-master-pipeline-{MASTER}",
        "S3ObjectKey": "source/datalake.zip",
        "PollForSourceChanges": "false",
    }
    notification = recording.one("aws:s3/bucketNotification:BucketNotification").inputs
    assert notification == {"bucket": f"acme-dl-master-pipeline-{MASTER}", "eventbridge": True}
    pattern = json.loads(recording.one("aws:cloudwatch/eventRule:EventRule", "master-delivery-source-changed").inputs["eventPattern"])
    assert pattern["detail"]["object"]["key"] == ["source/datalake.zip"]
    target = recording.one("aws:cloudwatch/eventTarget:EventTarget", "master-delivery-source-changed-target").inputs
    pipeline_arn = recording.one(PIPELINE).outputs["arn"]
    assert target["arn"] == pipeline_arn
    starts = role_statements(recording, "events")["StartDeliveryPipeline"]
    assert starts["Resource"] == [pipeline_arn]
    package = recording.one(PIPELINE).inputs["stages"][2]["actions"][0]
    assert "#{SourceVariables.VersionId}" in package["configuration"]["EnvironmentVariables"]
    # The S3 source object must survive: the pipeline bucket then has no expiry of current objects.
    bucket = recording.one("aws:s3/bucket:Bucket", "master-delivery-bucket-bucket")
    lifecycle = recording.bucket_part(bucket, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert "expire-current-objects" not in [r["id"] for r in lifecycle.inputs["rules"]]


def test_without_a_delivery_section_there_is_no_pipeline():
    config = master_config()
    del config["datalake:delivery"]
    recording = run_master(config)
    assert recording.of_type(PIPELINE) == []
    assert delivery_projects(recording) == []
    assert "deliveryPipelineName" not in recording.outputs


@pytest.mark.parametrize(
    "changes, key, hint",
    [
        ({"repository": None}, "datalake:delivery.repository is required", "acme/datalake"),
        ({"stateBucket": "acme-state"}, "datalake:delivery.stateBucket: is not a known key", "stateBucket"),
        ({"secretsKeyArn": "alias/pulumi"}, "datalake:delivery.secretsKeyArn", "arn:aws:kms:"),
        ({"logRetentionDays": 10}, "datalake:delivery.logRetentionDays", "30"),
        ({"source": "codecommit"}, "datalake:delivery.source", "codestar"),
    ],
)
def test_bad_delivery_config_names_the_key_and_a_fix(changes, key, hint):
    with pytest.raises(ConfigError) as error:
        parse_stack_config("master", delivery_config(**changes))
    message = str(error.value)
    assert key in message and hint in message, message


def test_package_stage_publishes_the_bundle_where_the_runner_project_reads_it(master):
    """The runner's CodeBuild source is `<artifact bucket>/<runner.bundleKey>`: the package stage must write there."""
    projects = {p.name: p.inputs for p in master.of_type(PROJECT)}
    runner_source = projects["master-runner-project"]["source"]["location"]
    bucket, key = runner_source.split("/", 1)
    assert bucket == master.outputs["artifactBucketName"]
    package = projects["master-delivery-package"]["source"]["buildspec"]
    assert f'aws s3 cp datalake.zip "s3://$ARTIFACT_BUCKET/{key}"' in package
    zip_line = next(line for line in package.splitlines() if "zip -qr" in line)
    for needed in ("runner", "components", "program.py", "Pulumi.master.yaml", "Pulumi.silo-template.yaml", "dev"):
        assert f" {needed}" in zip_line, f"the bundle lacks {needed}: the runner build could not run"


def test_a_custom_secrets_provider_requires_the_deploy_stage_key():
    config = delivery_config()
    config["datalake:runner"] = {"secretsProvider": "awskms://alias/other?region=eu-west-1"}
    with pytest.raises(ConfigError) as error:
        parse_stack_config("master", config)
    assert "datalake:delivery.secretsKeyArn is required when datalake:runner.secretsProvider is set" in str(error.value)
    config["datalake:delivery"] = {**config["datalake:delivery"], "secretsKeyArn": EXAMPLE_KEY}
    assert parse_stack_config("master", config).delivery.secrets_key_arn == EXAMPLE_KEY


def test_deploy_stage_uses_the_configured_secrets_key():
    config = delivery_config(secretsKeyArn=EXAMPLE_KEY)
    deploy = role_statements(run_master(config), "deploy")
    assert deploy["UsePulumiSecretsKey"]["Resource"] == [EXAMPLE_KEY]
