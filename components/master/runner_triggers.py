"""`RunnerTriggers`: the master account's CodeBuild project that runs `python -m runner`, and what starts it.

- an EventBridge schedule runs `apply` (default hourly) and another runs `drift` (default daily);
- Organizations account events (account created, moved, closed, removed, tagged) start `apply` at
  once. Organizations is a global service whose CloudTrail events reach EventBridge in us-east-1
  only, so when the master lives elsewhere a us-east-1 rule forwards them to the master region's
  default bus (pass `org_events_provider`);
- a failed, stopped or timed-out build publishes to the master alerts topic;
- the build's role may assume only the deploy role, only in accounts of this organization, read
  Organizations, read the project bundle, and read/write the Pulumi state bucket.
The project allows one build at a time: overlapping triggers queue instead of racing for locks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws
import yaml

from .config import RunnerConfig
from .runner_engine import ACCOUNT_EVENT_SHAPES, RunnerEngine, RunnerEngineArgs, account_event_pattern, codebuild_event_input, state_machine_event_input
from .pulumi_cli import INSTALL_COMMANDS, RUNTIME_REQUIREMENTS
from ..shared.iam import AccountContext, Statement, account_service_trust, organizations_arns, policy_json, role_arn_pattern, statement
from ..shared.logs import logs_service_key_statement

BUILD_IMAGE = "aws/codebuild/standard:7.0"
# Organizations API calls (CloudTrail) that change which accounts should have a silo stack; an
# invited account (AcceptHandshake) joins at the root, and its move into the silo OU is a MoveAccount.
ORGANIZATIONS_EVENTS = tuple(event for shape in ACCOUNT_EVENT_SHAPES for event in shape.events)
FAILED_BUILD_STATES = ("FAILED", "STOPPED", "TIMED_OUT")


def runner_buildspec(python_version: str = "3.11") -> str:
    """The build: install the pinned Pulumi CLI and the runtime requirements, then `python -m runner $RUNNER_COMMAND`.

    The CLI archive is checked against PULUMI_CLI_SHA256 (components/master/pulumi_cli.py) and only
    requirements-runtime.txt is installed, from wheels: this role can assume the deploy role in
    every silo account. The command comes from an environment variable so the schedules can
    override it per target.
    """
    path = 'export PATH="$HOME/.pulumi/bin:$PATH"'
    spec = {
        "version": 0.2,
        "env": {"shell": "bash"},
        "phases": {
            "install": {
                "on-failure": "ABORT",
                "runtime-versions": {"python": python_version},
                "commands": [
                    *INSTALL_COMMANDS,
                    "python -m venv .venv",
                    f".venv/bin/pip install --quiet --no-cache-dir --only-binary=:all: -r {RUNTIME_REQUIREMENTS}",
                ],
            },
            "build": {"commands": [path, 'pulumi version', '.venv/bin/python -m runner "$RUNNER_COMMAND"']},
        },
    }
    return yaml.safe_dump(spec, sort_keys=False)


def organizations_event_pattern() -> str:
    return json.dumps(
        {
            "source": ["aws.organizations"],
            "detail-type": ["AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"],
            "detail": {"eventSource": ["organizations.amazonaws.com"], "eventName": list(ORGANIZATIONS_EVENTS)},
        }
    )


def runner_logs_key_statement(account: AccountContext, log_group_name: str) -> Statement:
    """Key policy grant: CloudWatch Logs may encrypt the runner's build log group with the key (the
    named actions every other log group of both programs is granted, no wildcards)."""
    return logs_service_key_statement(
        "AllowRunnerLogGroupEncryption", account, "StringEquals", account.arn("logs", f"log-group:{log_group_name}")
    )


def _default_bus(account: AccountContext) -> pulumi.Output[str]:
    """The master region's default event bus, where forwarded Organizations events arrive."""
    return account.arn("events", "event-bus/default")


def _override(command: str) -> str:
    """Target input: CodeBuild `StartBuild` parameters that pick the runner command."""
    return json.dumps({"environmentVariablesOverride": [{"name": "RUNNER_COMMAND", "value": command, "type": "PLAINTEXT"}]})


@dataclass(frozen=True)
class RunnerTriggersArgs:
    """Arguments of `RunnerTriggers`."""

    account: AccountContext
    """The master account."""
    name_prefix: str
    """Prefix of physical names, e.g. `acme-dl`."""
    organization_id: str
    """The organization whose member accounts the runner may deploy into."""
    management_account_id: str
    """The organization's management account: every Organizations ARN carries its id."""
    deploy_role_name: str
    """Name of the role the runner assumes in silo accounts."""
    pulumi_cli_sha256: str
    """SHA-256 of the CLI archive `runner.pulumi_version` the build installs (refused if it differs)."""
    runner: RunnerConfig
    """Schedules, concurrency, Pulumi CLI version, bundle key, build timeout."""
    state_bucket: pulumi.Input[str]
    """Bucket of the Pulumi state (S3 backend) and of the runner's reports."""
    artifact_bucket: pulumi.Input[str]
    """Bucket that holds the project bundle (`runner.bundle_key`)."""
    key_arn: pulumi.Input[str]
    """Master key: encrypts build output and logs, and is the silo stacks' secrets provider."""
    alert_topic_arn: pulumi.Input[str]
    """Topic that receives failed builds; EventBridge must be allowed to publish to it."""
    secrets_provider: pulumi.Input[str]
    """Secrets provider URL handed to the runner (`awskms://...`)."""
    org_events_provider: Optional[pulumi.ProviderResource] = None
    """A us-east-1 provider when the master region is another one (default None: same region)."""
    catalog_prefix: str = "silo_"
    """Prefix of the master's per-silo Athena catalogs (`analytics.catalogPrefix`), which the runner
    updates after silo changes (default `silo_`)."""
    environment: Optional[str] = None
    """The master's environment (default None: the default one); the build runs `--env <env>`."""
    log_retention_days: int = 90
    """Days the build logs are kept (default 90)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of every resource (default none)."""


class RunnerTriggers(pulumi.ComponentResource):
    """The runner's CodeBuild project, its schedules and Organizations trigger, and failure alerts."""

    project: aws.codebuild.Project
    role: aws.iam.Role

    def __init__(self, name: str, args: RunnerTriggersArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:runner:RunnerTriggers", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._project_name = f"{args.name_prefix}-runner"

        logs = self._log_group(args)
        self.role = self._build_role(args)
        self._projects(args, logs)
        events_role = self._events_role(args)
        self.state_machine = self._engine(args)
        self._events_policy(args, events_role)
        self._schedules(args, events_role)
        self._account_event_rules(args, events_role)
        if args.org_events_provider is not None:
            self._forward_organizations_events(args, events_role)
        self._failure_alerts(args)

        self.project_name = self.project.name
        outputs = {"projectName": self.project.name, "targetedProjectName": self.targeted.name, "roleArn": self.role.arn, "logGroup": logs.name}
        if self.state_machine is not None:
            outputs["stateMachineArn"] = self.state_machine.arn
        self.register_outputs(outputs)

    def _log_group(self, args: RunnerTriggersArgs) -> aws.cloudwatch.LogGroup:
        """The build log group, encrypted with the master key (`runner_logs_key_statement`)."""
        return aws.cloudwatch.LogGroup(
            f"{self._name}-logs",
            name=self.log_group_name(args.name_prefix),
            retention_in_days=args.log_retention_days,
            kms_key_id=args.key_arn,
            tags=args.tags,
            opts=self._child,
        )

    def _build_role(self, args: RunnerTriggersArgs) -> aws.iam.Role:
        """The role every runner build runs as, with `build_statements` as its policy."""
        role = aws.iam.Role(
            f"{self._name}-role",
            name=self._project_name,
            description="Runs python -m runner: deploys silo stacks through the deploy role of member accounts",
            assume_role_policy=account_service_trust("codebuild.amazonaws.com", args.account),
            tags=args.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._name}-policy",
            role=role.id,
            policy=policy_json(self.build_statements(args, self.log_group_name(args.name_prefix))),
            opts=self._child,
        )
        return role

    @staticmethod
    def _build_environment(args: RunnerTriggersArgs) -> dict[str, pulumi.Input[str]]:
        """The variables every runner build starts with (the schedules override `RUNNER_COMMAND`)."""
        account, runner = args.account, args.runner
        return {
            "RUNNER_COMMAND": "apply",
            "PULUMI_VERSION": runner.pulumi_version,
            "PULUMI_CLI_SHA256": args.pulumi_cli_sha256,
            "PULUMI_BACKEND_URL": pulumi.Output.concat("s3://", args.state_bucket, "?region=", account.region),
            "RUNNER_REPORT_TO": pulumi.Output.concat("s3://", args.state_bucket, "/runner-reports"),
            # Exports and reports are encrypted with, and checked against, this exact key.
            "RUNNER_EXPORTS_KMS_KEY": args.key_arn,
            # The ledger (one entry per stack: fingerprint, last result, silo name, tag verdict).
            "RUNNER_LEDGER": pulumi.Output.concat("s3://", args.state_bucket, "/runner-ledger"),
            "RUNNER_LEDGER_KMS_KEY": args.key_arn,
            "PULUMI_SECRETS_PROVIDER": args.secrets_provider,
            "AWS_REGION": account.region,
            # The master of environment <env> runs that environment's runner only.
            **({"DATALAKE_ENVIRONMENT": args.environment} if args.environment else {}),
        }

    def _projects(self, args: RunnerTriggersArgs, logs: aws.cloudwatch.LogGroup) -> None:
        """The runner project, the targeted project and (stepfunctions engine) the shard project."""
        runner = args.runner
        environment = self._build_environment(args)

        def project(resource: str, physical: str, description: str, concurrency: int) -> aws.codebuild.Project:
            return aws.codebuild.Project(
                resource,
                name=physical,
                description=description,
                service_role=self.role.arn,
                encryption_key=args.key_arn,
                build_timeout=runner.build_timeout_minutes,
                queued_timeout=480,
                concurrent_build_limit=concurrency,
                source=aws.codebuild.ProjectSourceArgs(
                    type="S3",
                    location=pulumi.Output.concat(args.artifact_bucket, "/", runner.bundle_key),
                    buildspec=runner_buildspec(),
                ),
                artifacts=aws.codebuild.ProjectArtifactsArgs(type="NO_ARTIFACTS"),
                environment=aws.codebuild.ProjectEnvironmentArgs(
                    compute_type=runner.build_compute_type,
                    image=BUILD_IMAGE,
                    type="LINUX_CONTAINER",
                    image_pull_credentials_type="CODEBUILD",
                    environment_variables=[
                        aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name=key, value=value) for key, value in environment.items()
                    ],
                ),
                logs_config=aws.codebuild.ProjectLogsConfigArgs(
                    cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(group_name=logs.name, status="ENABLED"),
                    s3_logs=aws.codebuild.ProjectLogsConfigS3LogsArgs(status="DISABLED"),
                ),
                tags=args.tags,
                opts=self._child,
            )

        name, project_name = self._name, self._project_name
        # Full runs (the schedule; the plan and merge steps of the stepfunctions engine) and drift
        # checks: one build at a time, so two full runs never race for the same stacks.
        self.project = project(f"{name}-project", project_name, "Reconciles one Pulumi stack per account of the silo OU (python -m runner)", 1)
        # Account events: their own project, so an event is never queued behind a full rollout.
        self.targeted = project(
            f"{name}-targeted-project", f"{project_name}-targeted",
            "Runs python -m runner apply --account <id> for one Organizations account event", runner.targeted_concurrency,
        )
        self.shard: Optional[aws.codebuild.Project] = None
        if runner.engine == "stepfunctions":
            self.shard = project(
                f"{name}-shard-project", f"{project_name}-shard",
                "Runs one batch of a stored runner plan (python -m runner apply --from-plan)", runner.map_max_concurrency,
            )

    def _events_role(self, args: RunnerTriggersArgs) -> aws.iam.Role:
        """The role EventBridge starts builds and executions as (its policy: `_events_policy`)."""
        return aws.iam.Role(
            f"{self._name}-events-role",
            name=f"{self._project_name}-events",
            description="Lets EventBridge start the runner and forward Organizations events",
            assume_role_policy=account_service_trust("events.amazonaws.com", args.account),
            tags=args.tags,
            opts=self._child,
        )

    def _engine(self, args: RunnerTriggersArgs) -> Optional[aws.sfn.StateMachine]:
        """The stepfunctions engine's state machine; None for the local engine."""
        if self.shard is None:
            return None
        engine = RunnerEngine(
            f"{self._name}-engine",
            RunnerEngineArgs(
                account=args.account,
                state_machine_name=self._project_name,
                runner=args.runner,
                plan_project=self.project,
                targeted_project=self.targeted,
                shard_project=self.shard,
                state_bucket=args.state_bucket,
                key_arn=args.key_arn,
                alert_topic_arn=args.alert_topic_arn,
                tags=args.tags,
            ),
            opts=self._child,
        )
        return engine.state_machine

    def _events_policy(self, args: RunnerTriggersArgs, events_role: aws.iam.Role) -> None:
        """EventBridge may start the runner builds (and the rollout) and forward Organizations events."""
        starts = [statement("StartRunnerBuild", "codebuild:StartBuild", [self.project.arn, self.targeted.arn])]
        if self.state_machine is not None:
            starts.append(statement("StartRunnerRollout", "states:StartExecution", self.state_machine.arn))
        aws.iam.RolePolicy(
            f"{self._name}-events-policy",
            role=events_role.id,
            policy=policy_json([*starts, statement("ForwardOrganizationsEvents", "events:PutEvents", _default_bus(args.account))]),
            opts=self._child,
        )

    def _start_runner(self, rule_name: str, rule: aws.cloudwatch.EventRule, events_role: aws.iam.Role, command: str, *, full_run: bool = False) -> None:
        """The rule's target: a full run starts the state machine when there is one, else a build running `command`."""
        if full_run and self.state_machine is not None:
            target, target_input = self.state_machine.arn, "{}"
        else:
            target, target_input = self.project.arn, _override(command)
        aws.cloudwatch.EventTarget(
            f"{rule_name}-target",
            rule=rule.name,
            arn=target,
            role_arn=events_role.arn,
            input=target_input,
            opts=self._child,
        )

    def _schedules(self, args: RunnerTriggersArgs, events_role: aws.iam.Role) -> None:
        """The `apply` schedule and, when configured, the `drift` schedule."""
        runner = args.runner
        self.schedule = self._scheduled_run(
            args, events_role, "schedule", physical_suffix="schedule", expression=runner.schedule, command="apply",
            description="Runs python -m runner apply on a schedule", full_run=True,
        )
        if runner.drift_schedule:
            self._scheduled_run(
                args, events_role, "drift-schedule", physical_suffix="drift", expression=runner.drift_schedule, command="drift",
                description="Runs python -m runner drift: the build fails (and alerts) when a silo drifted",
            )

    def _scheduled_run(
        self, args: RunnerTriggersArgs, events_role: aws.iam.Role, suffix: str, *, physical_suffix: str,
        expression: str, command: str, description: str, full_run: bool = False,
    ) -> aws.cloudwatch.EventRule:
        """A schedule rule (`<name>-<suffix>`, physically `<project>-<physical_suffix>`) that starts `command`."""
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-{suffix}",
            name=f"{self._project_name}-{physical_suffix}",
            description=description,
            schedule_expression=expression,
            tags=args.tags,
            opts=self._child,
        )
        self._start_runner(f"{self._name}-{suffix}", rule, events_role, command, full_run=full_run)
        return rule

    def _account_event_rules(self, args: RunnerTriggersArgs, events_role: aws.iam.Role) -> None:
        """One rule per account event shape, starting a targeted run for the event's account."""
        name = self._name
        for shape in ACCOUNT_EVENT_SHAPES:
            rule = aws.cloudwatch.EventRule(
                f"{name}-account-{shape.name}",
                name=f"{self._project_name}-account-{shape.name}",
                description=f"Starts a targeted runner apply for the account of {', '.join(shape.events)}",
                event_pattern=json.dumps(account_event_pattern(shape)),
                tags=args.tags,
                opts=self._child,
            )
            paths, template = state_machine_event_input(shape) if self.state_machine is not None else codebuild_event_input(shape)
            aws.cloudwatch.EventTarget(
                f"{name}-account-{shape.name}-target",
                rule=rule.name,
                arn=self.state_machine.arn if self.state_machine is not None else self.targeted.arn,
                role_arn=events_role.arn,
                input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(input_paths=paths, input_template=template),
                opts=self._child,
            )

    def _forward_organizations_events(self, args: RunnerTriggersArgs, events_role: aws.iam.Role) -> None:
        """A us-east-1 rule that forwards Organizations events to the master region's default bus."""
        forward = pulumi.ResourceOptions(parent=self, provider=args.org_events_provider)
        source = aws.cloudwatch.EventRule(
            f"{self._name}-account-events-us-east-1",
            name=f"{self._project_name}-account-events",
            description="Forwards Organizations account events (sent to us-east-1 only) to the master region",
            event_pattern=organizations_event_pattern(),
            tags=args.tags,
            opts=forward,
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-account-events-us-east-1-target",
            rule=source.name,
            arn=_default_bus(args.account),
            role_arn=events_role.arn,
            opts=forward,
        )

    def _failure_alerts(self, args: RunnerTriggersArgs) -> None:
        """A failed, stopped or timed-out build of the runner or targeted project publishes to the alerts topic."""
        failed = aws.cloudwatch.EventRule(
            f"{self._name}-failed",
            name=f"{self._project_name}-failed",
            description="A runner build failed: some silo stacks were not reconciled, drifted or were held",
            event_pattern=pulumi.Output.json_dumps(
                {
                    "source": ["aws.codebuild"],
                    "detail-type": ["CodeBuild Build State Change"],
                    # Not the shard project: a rollout's state machine alerts once for all its builds.
                    "detail": {"build-status": list(FAILED_BUILD_STATES), "project-name": [self.project.name, self.targeted.name]},
                }
            ),
            tags=args.tags,
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(f"{self._name}-failed-target", rule=failed.name, arn=args.alert_topic_arn, opts=self._child)

    @staticmethod
    def log_group_name(name_prefix: str) -> str:
        return f"/aws/codebuild/{name_prefix}-runner"

    @staticmethod
    def build_statements(args: RunnerTriggersArgs, log_group_name: str) -> list[Statement]:
        """The build role's policy: deploy roles of member accounts, Organizations reads, state, bundle, key, logs."""
        account = args.account
        org = args.organization_id
        state = pulumi.Output.concat("arn:", account.partition, ":s3:::", args.state_bucket)
        artifacts = pulumi.Output.concat("arn:", account.partition, ":s3:::", args.artifact_bucket)
        return [
            statement(
                "AssumeDeployRoleInMemberAccounts",
                "sts:AssumeRole",
                role_arn_pattern(account.partition, args.deploy_role_name),
                conditions={"StringEquals": {"aws:ResourceOrgID": org}},
            ),
            statement(
                "ReadOrganizationAccounts",
                [
                    "organizations:DescribeOrganizationalUnit",
                    "organizations:ListAccountsForParent",
                    "organizations:ListOrganizationalUnitsForParent",
                    "organizations:ListTagsForResource",
                    "organizations:DescribeAccount",
                ],
                organizations_arns(account.partition, args.management_account_id, org),
            ),
            statement("ListStateBucket", ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning"], state),
            statement(
                "ReadWriteState",
                ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                pulumi.Output.concat(state, "/*"),
            ),
            statement("ReadBundleBucket", ["s3:GetBucketAcl", "s3:GetBucketLocation"], artifacts),
            statement(
                "ReadBundle",
                ["s3:GetObject", "s3:GetObjectVersion"],
                pulumi.Output.concat(artifacts, "/", args.runner.bundle_key),
            ),
            statement(
                "UseMasterKey",
                ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                args.key_arn,
            ),
            # After silo changes the runner updates the master's per-silo catalogs, and only those
            # (a targeted `pulumi up`, runner/catalogs.py).
            statement(
                "UpdateMasterCatalogs",
                [
                    "athena:CreateDataCatalog",
                    "athena:DeleteDataCatalog",
                    "athena:GetDataCatalog",
                    "athena:UpdateDataCatalog",
                    "athena:TagResource",
                    "athena:UntagResource",
                    "athena:ListTagsForResource",
                ],
                account.arn("athena", f"datacatalog/{args.catalog_prefix}*"),
            ),
            statement(
                "WriteBuildLogs",
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                [
                    account.arn("logs", f"log-group:{log_group_name}"),
                    account.arn("logs", f"log-group:{log_group_name}:log-stream:*"),
                ],
            ),
        ]

