"""`DeliveryPipeline`: the master's CodePipeline, source → test → package → deploy.

The master builds, tests and publishes; the runner deploys. The deploy stage runs
`pulumi up -s master` (as the master deploy role) and then the runner's `apply`, which reconciles
every silo stack. Each CodeBuild project has its own role that may write only its own log group and
its own artifact prefixes; the deploy project may assume only the deploy role of accounts under the
silo OU (`aws:ResourceOrgPaths`, no account list) and the master deploy role, and use only the Pulumi
state bucket and the secrets-provider key. A failed execution is reported to the master alerts topic
through a CodeStar notification rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Optional

import pulumi
import pulumi_aws as aws

from ..shared.iam import AccountContext, Statement, account_service_trust, kms_via_service, org_path_pattern, organizations_arns, policy_json, statement
from ..shared.logs import logs_service_key_statement
from .pulumi_cli import INSTALL_COMMANDS, PULUMI_CLI_VERSION, RUNTIME_REQUIREMENTS
from ..shared.secure_bucket import BucketLifecycle, SecureBucket, SecureBucketArgs, bucket_arn

BUILD_IMAGE = "aws/codebuild/standard:7.0"
STAGES = ("Source", "Test", "Package", "Deploy")
# CodePipeline writes an execution's artifacts under the first 20 characters of the pipeline name.
PIPELINE_ARTIFACT_FOLDER_LENGTH = 20
BUNDLE_PREFIX = "bundles"
STAGE_BUILD_TIMEOUT_MINUTES = 60
"""Build timeout of every pipeline stage; the deploy stage runs the runner, so its stale-lock limit counts it."""
FAILED_EXECUTION_EVENT = "codepipeline-pipeline-pipeline-execution-failed"

TEST_BUILDSPEC = """\
version: 0.2
phases:
  install:
    runtime-versions:
      python: "3.11"
  build:
    commands:
      - ./dev test -q
"""

PACKAGE_BUILDSPEC = f"""\
version: 0.2
phases:
  build:
    commands:
      - test -n "$COMMIT_ID" || {{ echo "COMMIT_ID is empty: the source action exported no revision"; exit 1; }}
      - zip -qr datalake.zip __main__.py program.py dev Pulumi.yaml Pulumi.master.yaml Pulumi.silo-template.yaml requirements.txt {RUNTIME_REQUIREMENTS} components runner $(ls -d functions silos silos-* Pulumi.master-*.yaml Pulumi.silo-template-*.yaml 2>/dev/null)
      - aws s3 cp datalake.zip "s3://$ARTIFACT_BUCKET/{BUNDLE_PREFIX}/$COMMIT_ID/datalake.zip"
      # The runner's CodeBuild project reads the newest bundle from a fixed key (runner.bundleKey).
      - aws s3 cp datalake.zip "s3://$ARTIFACT_BUCKET/{BUNDLE_PREFIX}/datalake.zip"
      - printf '%s' "$COMMIT_ID" > LATEST
      - aws s3 cp LATEST "s3://$ARTIFACT_BUCKET/{BUNDLE_PREFIX}/LATEST"
"""

# The deploy role can assume the deploy role in every silo account: it installs the checksummed CLI
# archive and the runtime requirements only (components/master/pulumi_cli.py), from wheels.
DEPLOY_BUILDSPEC = """\
version: 0.2
env:
  shell: bash
  variables:
    PULUMI_SKIP_UPDATE_CHECK: "true"
phases:
  install:
    on-failure: ABORT
    runtime-versions:
      python: "3.11"
    commands:
""" + "".join(
    f"      - {json.dumps(command)}\n"
    for command in (*INSTALL_COMMANDS, f"python -m pip install -q --no-cache-dir --only-binary=:all: -r {RUNTIME_REQUIREMENTS}")
) + """\
  build:
    commands:
      - export PATH="$HOME/.pulumi/bin:$PATH"
      - pulumi login "s3://$STATE_BUCKET"
      # The master stack is updated as the master deploy role; this project's own role cannot.
      - aws configure set profile.master.role_arn "$MASTER_DEPLOY_ROLE_ARN"
      - aws configure set profile.master.credential_source EcsContainer
      - AWS_PROFILE=master pulumi up -s master --yes --non-interactive
      # Reports and retired stacks' state exports go to the state bucket (exports SSE-KMS with the
      # master key, s3://$STATE_BUCKET/runner-exports): the build container does not outlive the build.
      - python -m runner apply --backend-url "s3://$STATE_BUCKET" --report-to "s3://$STATE_BUCKET/runner-reports" --ledger "s3://$STATE_BUCKET/runner-ledger"
"""


@dataclass(frozen=True)
class DeliveryPipelineArgs:
    """Arguments of `DeliveryPipeline`."""

    account: AccountContext
    """The master account."""
    name_prefix: str
    """Prefix of physical names, e.g. `datalake`."""
    pipeline_bucket_name: pulumi.Input[str]
    """Physical name of the pipeline's own working bucket (created here, never shared with silos)."""
    kms_key_arn: pulumi.Input[str]
    """Master key: encrypts pipeline artifacts, build outputs and bundles."""
    access_log_bucket: pulumi.Input[str]
    """Bucket receiving the pipeline bucket's server access logs."""
    artifact_bucket_name: pulumi.Input[str]
    """The artifact store shared with the silo OU; the package stage writes bundles under `bundles/`."""
    alert_topic_arn: pulumi.Input[str]
    """SNS topic that failed executions are reported to (its policy must let CodeStar notifications publish)."""
    silo_ou_path: str
    """Entity path of the silo OU; the deploy project may assume the deploy role only in accounts below it."""
    deploy_role_name: str
    """Name of the deploy role in silo accounts."""
    organization_id: str
    """The organization id, for the Organizations ARNs the runner reads."""
    management_account_id: str
    """The organization's management account, whose id every Organizations ARN carries."""
    state_bucket: pulumi.Input[str]
    """Bucket of the Pulumi state backend."""
    secrets_key_arn: pulumi.Input[str]
    """KMS key of the stacks' secrets provider."""
    master_deploy_role_name: str = "datalake-master-deployer"
    """Role in the master account that `pulumi up -s master` runs as (default `datalake-master-deployer`)."""
    source: Literal["codestar", "s3"] = "codestar"
    """`codestar` (a Git connection, the default) or `s3` (a zip in the pipeline bucket)."""
    repository: Optional[str] = None
    """`owner/name` of the Git repository; required for `codestar`."""
    branch: str = "main"
    """Branch that triggers the pipeline (default `main`)."""
    connection_arn: Optional[str] = None
    """Existing connection to use (default None: create one, PENDING until authorised in the console)."""
    connection_provider: str = "GitHub"
    """Git host of a created connection (default `GitHub`)."""
    source_object_key: str = "source/datalake.zip"
    """Key of the source zip in the pipeline bucket for `s3` (default `source/datalake.zip`)."""
    pulumi_version: str = PULUMI_CLI_VERSION
    """Pulumi CLI version the deploy stage installs (default `PULUMI_CLI_VERSION`)."""
    pulumi_cli_sha256: str = ""
    """SHA-256 of that version's linux-x64 archive; the build refuses any other (and an empty one)."""
    log_retention_days: int = 30
    """Days build logs are kept (default 30)."""
    build_image: str = BUILD_IMAGE
    """CodeBuild image (default `aws/codebuild/standard:7.0`)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags of every resource that takes tags (default none)."""


BUILD_STAGES = ("test", "package", "deploy")


def build_log_group_name(name_prefix: str, stage: str) -> str:
    """`/aws/codebuild/<prefix>-delivery-<stage>`: the log group of one delivery build project."""
    return f"/aws/codebuild/{name_prefix}-delivery-{stage}"


def build_logs_key_statement(account: AccountContext, name_prefix: str) -> Statement:
    """Master key policy grant: CloudWatch Logs may encrypt exactly the three build log groups."""
    return logs_service_key_statement(
        "AllowDeliveryBuildLogEncryption",
        account,
        "StringEquals",
        [account.arn("logs", f"log-group:{build_log_group_name(name_prefix, stage)}") for stage in BUILD_STAGES],
    )


def connection_arn_in(arn: pulumi.Input[str], namespace: str) -> pulumi.Output[str]:
    """The same connection's ARN under `codestar-connections` or `codeconnections`."""
    return pulumi.Output.from_input(arn).apply(
        lambda value: re.sub(r"^(arn:[^:]+:)(codestar-connections|codeconnections):", rf"\g<1>{namespace}:", value)
    )


def _kms_via_s3(sid: str, account: AccountContext, key_arn: pulumi.Input[str], actions: Sequence[str]) -> Statement:
    """Use of the master key only through S3 (artifacts), never directly."""
    return statement(
        sid,
        list(actions),
        key_arn,
        conditions={"StringEquals": {"kms:ViaService": kms_via_service("s3", account.region)}},
    )


class DeliveryPipeline(pulumi.ComponentResource):
    """CodePipeline V2 with a CodeStar-connection or S3 source and test, package and deploy CodeBuild stages."""

    bucket: SecureBucket
    pipeline: aws.codepipeline.Pipeline
    projects: dict[str, aws.codebuild.Project]
    roles: dict[str, aws.iam.Role]
    connection_arn: pulumi.Output[str]

    def __init__(self, name: str, args: DeliveryPipelineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:delivery:DeliveryPipeline", name, None, opts)
        if args.source == "codestar" and not args.repository:
            raise ValueError("DeliveryPipelineArgs.repository is required when source is 'codestar'")
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._tags = dict(args.tags)
        self._account = args.account
        self._pipeline_name = f"{args.name_prefix}-delivery"
        self.projects, self.roles = {}, {}

        self.bucket = self._working_bucket(args)
        self.connection_arn = self._source_connection(args)
        self._build_projects(args)
        pipeline_role = self._role("pipeline", "codepipeline.amazonaws.com", self._pipeline_statements(args))
        self.pipeline = self._pipeline(args, pipeline_role)
        if args.source == "s3":
            self._s3_trigger(args)
        self.failure_notifications = self._failure_notifications(args)
        self.register_outputs(
            {
                "pipelineName": self.pipeline.name,
                "pipelineBucket": self.bucket.name,
                "connectionArn": self.connection_arn,
            }
        )

    def _working_bucket(self, args: DeliveryPipelineArgs) -> SecureBucket:
        """The pipeline's own bucket: execution artifacts (and, for `s3`, the source zip)."""
        return SecureBucket(
            f"{self._name}-bucket",
            SecureBucketArgs(
                bucket_name=args.pipeline_bucket_name,
                purpose="pipeline",
                account=self._account,
                kms_key_arn=args.kms_key_arn,
                access_log_bucket=args.access_log_bucket,
                # Working artifacts of old executions are worthless; an S3 source zip must stay.
                lifecycle=BucketLifecycle(
                    noncurrent_version_expiration_days=30,
                    expiration_days=90 if args.source == "codestar" else None,
                ),
                tags=self._tags,
            ),
            opts=self._child,
        )

    def _execution_objects(self) -> pulumi.Output[str]:
        """The objects of this pipeline's executions in its bucket (CodePipeline's artifact folder)."""
        return pulumi.Output.concat(
            self.bucket.arn, "/", self._pipeline_name[:PIPELINE_ARTIFACT_FOLDER_LENGTH], "/*"
        )

    def _source_connection(self, args: DeliveryPipelineArgs) -> pulumi.Output[str]:
        """The Git connection's ARN (given, or a created connection); empty for an `s3` source."""
        if args.source != "codestar":
            return pulumi.Output.from_input("")
        if args.connection_arn:
            return pulumi.Output.from_input(args.connection_arn)
        connection = aws.codestarconnections.Connection(
            f"{self._name}-connection",
            name=f"{args.name_prefix}-delivery"[:32],
            provider_type=args.connection_provider,
            tags=self._tags,
            opts=self._child,
        )
        return connection.arn

    def _build_projects(self, args: DeliveryPipelineArgs) -> None:
        """The test, package and deploy projects, each with its own role and log group."""
        read_inputs = statement(
            "ReadPipelineArtifacts", ["s3:GetObject", "s3:GetObjectVersion"], self._execution_objects()
        )
        use_key = _kms_via_s3("UseMasterKeyThroughS3", self._account, args.kms_key_arn, ["kms:Decrypt", "kms:GenerateDataKey"])
        bundles = pulumi.Output.concat(bucket_arn(self._account.partition, args.artifact_bucket_name), f"/{BUNDLE_PREFIX}/*")
        self._project("test", args, TEST_BUILDSPEC, [read_inputs, use_key], {})
        self._project(
            "package",
            args,
            PACKAGE_BUILDSPEC,
            [read_inputs, use_key, statement("WriteBundles", "s3:PutObject", bundles)],
            {"ARTIFACT_BUCKET": args.artifact_bucket_name},
        )
        master_deploy_role_arn = pulumi.Output.concat(
            "arn:", self._account.partition, ":iam::", self._account.account_id, ":role/", args.master_deploy_role_name
        )
        self._project(
            "deploy",
            args,
            DEPLOY_BUILDSPEC,
            [read_inputs, use_key, *self._deploy_statements(args, master_deploy_role_arn)],
            {
                "STATE_BUCKET": args.state_bucket,
                # The runner's exports and reports: encrypted with, and checked against, the master key.
                "RUNNER_EXPORTS_KMS_KEY": args.kms_key_arn,
                # The runner's ledger, shared with the runner's own builds (unchanged stacks are skipped).
                "RUNNER_LEDGER_KMS_KEY": args.kms_key_arn,
                "MASTER_DEPLOY_ROLE_ARN": master_deploy_role_arn,
                "PULUMI_VERSION": args.pulumi_version,
                "PULUMI_CLI_SHA256": args.pulumi_cli_sha256,
            },
        )

    def _deploy_statements(self, args: DeliveryPipelineArgs, master_deploy_role_arn: pulumi.Output[str]) -> list[Statement]:
        """What the deploy stage needs beyond its inputs: the deploy roles, the Pulumi state, the silo OU."""
        account = self._account
        state_arn = bucket_arn(account.partition, args.state_bucket)
        return [
            statement(
                "AssumeSiloDeployRolesInSiloOu",
                "sts:AssumeRole",
                pulumi.Output.concat("arn:", account.partition, ":iam::*:role/", args.deploy_role_name),
                conditions={"ForAnyValue:StringLike": {"aws:ResourceOrgPaths": [org_path_pattern(args.silo_ou_path)]}},
            ),
            statement("AssumeMasterDeployRole", "sts:AssumeRole", master_deploy_role_arn),
            statement("ListPulumiState", ["s3:ListBucket", "s3:GetBucketLocation"], state_arn),
            statement(
                "ReadWritePulumiState",
                ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                pulumi.Output.concat(state_arn, "/*"),
            ),
            statement(
                "UsePulumiSecretsKey",
                ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                args.secrets_key_arn,
            ),
            # The runner walks the silo OU; Organizations ARNs carry the management account's id.
            statement(
                "ReadSiloOrganization",
                [
                    "organizations:ListChildren",
                    "organizations:ListAccountsForParent",
                    "organizations:ListOrganizationalUnitsForParent",
                    "organizations:ListParents",
                    "organizations:DescribeAccount",
                    "organizations:DescribeOrganizationalUnit",
                    "organizations:ListTagsForResource",
                ],
                organizations_arns(account.partition, args.management_account_id, args.organization_id),
            ),
        ]

    def _pipeline_statements(self, args: DeliveryPipelineArgs) -> list[Statement]:
        """The pipeline's own role: its bucket prefix, the three projects, the source, the key."""
        statements = [
            statement(
                "ReadWritePipelineArtifacts", ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], self._execution_objects()
            ),
            _kms_via_s3(
                "UseMasterKeyThroughS3", self._account, args.kms_key_arn, ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"]
            ),
            statement(
                "RunDeliveryBuilds",
                ["codebuild:StartBuild", "codebuild:BatchGetBuilds"],
                [self._account.arn("codebuild", f"project/{self._pipeline_name}-{stage}") for stage in BUILD_STAGES],
            ),
        ]
        if args.source == "codestar":
            # The service was renamed CodeConnections; a connection answers to both namespaces, each
            # action with the ARN of its own namespace.
            return statements + [
                statement("UseSourceConnection", "codestar-connections:UseConnection", connection_arn_in(self.connection_arn, "codestar-connections")),
                statement("UseSourceConnectionCodeConnections", "codeconnections:UseConnection", connection_arn_in(self.connection_arn, "codeconnections")),
            ]
        source_object = pulumi.Output.concat(self.bucket.arn, "/", args.source_object_key)
        return statements + [
            statement("ReadSourceObject", ["s3:GetObject", "s3:GetObjectVersion"], source_object),
            statement("CheckSourceBucketVersioning", "s3:GetBucketVersioning", self.bucket.arn),
        ]

    def _source_action(self, args: DeliveryPipelineArgs) -> tuple[aws.codepipeline.PipelineStageActionArgs, str]:
        """The Source action and the variable holding its revision (commit id or object version)."""
        if args.source == "codestar":
            source_provider, revision = "CodeStarSourceConnection", "#{SourceVariables.CommitId}"
            source_configuration: dict[str, pulumi.Input[str]] = {
                "ConnectionArn": self.connection_arn,
                "FullRepositoryId": args.repository or "",
                "BranchName": args.branch,
                "DetectChanges": "true",
            }
        else:
            source_provider, revision = "S3", "#{SourceVariables.VersionId}"
            source_configuration = {
                "S3Bucket": self.bucket.name,
                "S3ObjectKey": args.source_object_key,
                # Changes arrive through the EventBridge rule of `_s3_trigger`; polling is deprecated.
                "PollForSourceChanges": "false",
            }
        action = aws.codepipeline.PipelineStageActionArgs(
            name="Source",
            category="Source",
            owner="AWS",
            provider=source_provider,
            version="1",
            # The package stage reads the revision (commit id or object version) from this namespace.
            namespace="SourceVariables",
            output_artifacts=["source"],
            configuration=source_configuration,
        )
        return action, revision

    def _build_action(self, stage: str, env: Optional[dict[str, str]] = None) -> aws.codepipeline.PipelineStageActionArgs:
        """A Build action running the stage's project on the source, with extra plain-text variables."""
        configuration: dict[str, pulumi.Input[str]] = {"ProjectName": self.projects[stage].name}
        if env:
            configuration["EnvironmentVariables"] = json.dumps(
                [{"name": key, "value": value, "type": "PLAINTEXT"} for key, value in env.items()]
            )
        return aws.codepipeline.PipelineStageActionArgs(
            name=stage.capitalize(),
            category="Build",
            owner="AWS",
            provider="CodeBuild",
            version="1",
            input_artifacts=["source"],
            configuration=configuration,
        )

    def _pipeline(self, args: DeliveryPipelineArgs, pipeline_role: aws.iam.Role) -> aws.codepipeline.Pipeline:
        """The V2 pipeline: Source, Test, Package (given the revision), Deploy."""
        source_action, revision = self._source_action(args)
        return aws.codepipeline.Pipeline(
            f"{self._name}-pipeline",
            name=self._pipeline_name,
            pipeline_type="V2",
            execution_mode="QUEUED",
            role_arn=pipeline_role.arn,
            artifact_stores=[
                aws.codepipeline.PipelineArtifactStoreArgs(
                    location=self.bucket.name,
                    type="S3",
                    encryption_key=aws.codepipeline.PipelineArtifactStoreEncryptionKeyArgs(
                        id=args.kms_key_arn, type="KMS"
                    ),
                )
            ],
            stages=[
                aws.codepipeline.PipelineStageArgs(name="Source", actions=[source_action]),
                aws.codepipeline.PipelineStageArgs(name="Test", actions=[self._build_action("test")]),
                aws.codepipeline.PipelineStageArgs(
                    name="Package", actions=[self._build_action("package", {"COMMIT_ID": revision})]
                ),
                aws.codepipeline.PipelineStageArgs(name="Deploy", actions=[self._build_action("deploy")]),
            ],
            tags=self._tags,
            opts=self._child,
        )

    def _failure_notifications(self, args: DeliveryPipelineArgs) -> aws.codestarnotifications.NotificationRule:
        """A failed execution is reported to the alerts topic."""
        return aws.codestarnotifications.NotificationRule(
            f"{self._name}-failures",
            name=f"{self._pipeline_name}-failures",
            detail_type="FULL",
            event_type_ids=[FAILED_EXECUTION_EVENT],
            resource=self.pipeline.arn,
            targets=[aws.codestarnotifications.NotificationRuleTargetArgs(address=args.alert_topic_arn, type="SNS")],
            tags=self._tags,
            opts=self._child,
        )

    def _role(self, role: str, service: str, statements: Sequence[Statement]) -> aws.iam.Role:
        iam_role = aws.iam.Role(
            f"{self._name}-{role}-role",
            # CodeBuild, CodePipeline and EventBridge send aws:SourceAccount when they assume a
            # service role (their "cross-service confused deputy prevention" guides).
            assume_role_policy=account_service_trust(service, self._account),
            description=f"Delivery pipeline: {role}",
            tags=self._tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._name}-{role}-policy",
            role=iam_role.id,
            policy=policy_json(statements),
            opts=self._child,
        )
        self.roles[role] = iam_role
        return iam_role

    def _project(
        self,
        stage: str,
        args: DeliveryPipelineArgs,
        buildspec: str,
        statements: list[Statement],
        variables: Mapping[str, pulumi.Input[str]],
    ) -> aws.codebuild.Project:
        project_name = f"{self._pipeline_name}-{stage}"
        log_group_name = build_log_group_name(args.name_prefix, stage)
        log_group = aws.cloudwatch.LogGroup(
            f"{self._name}-{stage}-logs",
            name=log_group_name,
            retention_in_days=args.log_retention_days,
            # The master key; `build_logs_key_statement` lets CloudWatch Logs use it for these groups.
            kms_key_id=args.kms_key_arn,
            tags=self._tags,
            opts=self._child,
        )
        own_log_streams = args.account.arn("logs", f"log-group:{log_group_name}:log-stream:*")
        role = self._role(
            stage,
            "codebuild.amazonaws.com",
            [statement("WriteOwnBuildLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], own_log_streams), *statements],
        )
        project = aws.codebuild.Project(
            f"{self._name}-{stage}",
            name=project_name,
            description=f"Delivery pipeline stage '{stage}'",
            service_role=role.arn,
            encryption_key=args.kms_key_arn,
            build_timeout=STAGE_BUILD_TIMEOUT_MINUTES,
            queued_timeout=120,
            source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=buildspec),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
            environment=aws.codebuild.ProjectEnvironmentArgs(
                compute_type="BUILD_GENERAL1_SMALL",
                image=args.build_image,
                type="LINUX_CONTAINER",
                image_pull_credentials_type="CODEBUILD",
                environment_variables=[
                    aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name=key, value=value, type="PLAINTEXT")
                    for key, value in variables.items()
                ],
            ),
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                    group_name=log_group.name, status="ENABLED"
                ),
                s3_logs=aws.codebuild.ProjectLogsConfigS3LogsArgs(status="DISABLED"),
            ),
            tags=self._tags,
            opts=self._child,
        )
        self.projects[stage] = project
        return project

    def _s3_trigger(self, args: DeliveryPipelineArgs) -> None:
        """S3 source: a new version of the source object starts the pipeline through EventBridge."""
        aws.s3.BucketNotification(
            f"{self._name}-bucket-events",
            bucket=self.bucket.bucket.id,
            eventbridge=True,
            opts=self._child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-source-changed",
            description="A new source zip starts the delivery pipeline",
            event_pattern=pulumi.Output.json_dumps(
                {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {"bucket": {"name": [self.bucket.name]}, "object": {"key": [args.source_object_key]}},
                }
            ),
            tags=self._tags,
            opts=self._child,
        )
        events_role = self._role(
            "events",
            "events.amazonaws.com",
            [statement("StartDeliveryPipeline", "codepipeline:StartPipelineExecution", self.pipeline.arn)],
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-source-changed-target",
            rule=rule.name,
            arn=self.pipeline.arn,
            role_arn=events_role.arn,
            opts=self._child,
        )
