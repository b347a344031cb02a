"""The `bootstrap` subcommand: its arguments, the run with real boto3 clients, and what it prints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from components.master.config import MasterConfig
from components.shared.environments import master_stack_name
from components.shared.naming import plain_bucket_name

from . import __doc__ as overview
from .resources import Bootstrap
from .settings import BootstrapSettings, default_deployer_role, settings_from


def add_parser(commands: Any) -> None:
    boot = commands.add_parser(
        "bootstrap",
        help="create the Pulumi state bucket, state key and master deployer role (once, in the master account)",
        description=overview.split("\n\n")[0] if overview else None,
    )
    boot.add_argument("--project-dir", type=Path, help="Pulumi project directory (default: this checkout)")
    boot.add_argument("--master-config", type=Path, help="master stack file (default: <project>/Pulumi.master.yaml)")
    boot.add_argument("--region", help="region of the backend (default: aws:region of the master config)")
    boot.add_argument("--endpoint-url", help="AWS endpoint (a local emulator)")
    boot.add_argument("--state-bucket", help="state bucket name (default: runner.stateBucket, else <prefix>-master-pulumi-state-<account>)")
    boot.add_argument("--log-bucket", help="access-log bucket of the state bucket (default <prefix>-master-state-logs-<account>)")
    boot.add_argument("--key-alias", help="alias of the state key, without alias/ (default: runner.secretsProvider's, else <prefix>-pulumi-state)")
    boot.add_argument("--deployer-role", help="master deployer role (default: delivery.masterDeployRoleName, else datalake-master-deployer)")
    boot.add_argument("--operator", action="append", default=[], metavar="ARN", help="IAM role/user ARN (patterns allowed) that may assume the deployer role, e.g. your admin role (repeatable)")
    boot.add_argument("--noncurrent-days", type=int, default=90, help="days superseded state versions are kept for restores (default 90)")
    boot.add_argument("--out-dir", type=Path, default=Path("out/bootstrap"), help="where the documents bootstrap would write are saved for the fixes (default out/bootstrap)")
    boot.add_argument("--dry-run", action="store_true", help="only read: print what would be created and what is weaker")
    boot.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def next_steps(s: BootstrapSettings, config: MasterConfig) -> list[str]:
    """The commands after bootstrap, with the config keys the project reads when a name was overridden."""
    steps = [
        f"pulumi login '{s.backend_url}'",
        f"pulumi stack init {master_stack_name(config.environment)} --secrets-provider '{s.secrets_provider}'",
    ]
    default_bucket = plain_bucket_name(s.name_prefix, "master", "pulumi-state", s.account_id)
    if config.runner.state_bucket is None and s.state_bucket != default_bucket:
        steps.append(f"pulumi config set --path 'datalake:runner.stateBucket' {s.state_bucket} -s master")
    if config.delivery is None and s.deployer_role != default_deployer_role(config):
        steps.append(f"# when you add datalake:delivery, set masterDeployRoleName: {s.deployer_role}")
    steps.append(f"# as the deployer: a profile with role_arn = {s.role_arn(s.deployer_role)} (an --operator may assume it)")
    steps.append(f"pulumi up -s {master_stack_name(config.environment)}")
    return steps


def run_bootstrap(args: argparse.Namespace, config: MasterConfig) -> int:
    """Builds the clients, runs `Bootstrap`, prints the outcome and the next commands; returns the exit code."""
    import boto3

    region = args.region or config.region

    def client(service: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=args.endpoint_url)

    identity = client("sts").get_caller_identity()
    settings = settings_from(
        config,
        identity["Account"],
        region=region,
        state_bucket=args.state_bucket,
        log_bucket=args.log_bucket,
        key_alias=args.key_alias,
        deployer_role=args.deployer_role,
        operators=args.operator,
        noncurrent_days=args.noncurrent_days,
    )
    print(f"bootstrap of account {settings.account_id} ({settings.region}) as {identity['Arn']}{' - dry run, nothing is changed' if args.dry_run else ''}")
    outcome = Bootstrap(settings, s3=client("s3"), kms=client("kms"), iam=client("iam"), dry_run=args.dry_run).run()
    verb = "would create" if args.dry_run else "created"
    for line in outcome.created:
        print(f"  {verb}: {line}")
    for line in outcome.kept:
        print(f"  exists: {line}")
    if not settings.operators:
        print(f"  note: no --operator given: only the delivery pipeline can assume {settings.deployer_role}; "
              f"the first `pulumi up -s master` needs a person (you are {identity['Arn']})")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for file_name, document in outcome.documents.items():
        (args.out_dir / file_name).write_text(json.dumps(document, indent=2) + "\n")
    if outcome.findings:
        print(f"\n{len(outcome.findings)} finding(s): existing resources weaker than bootstrap's; nothing of them was changed.")
        print(f"Fix each (the documents are in {args.out_dir}/; run the fixes from there), then run bootstrap again:")
        for finding in outcome.findings:
            print(f"  - {finding.resource}: {finding.problem}\n      fix: {finding.fix}")
        return 1
    if args.dry_run:
        print("\ndry run: nothing was changed; run without --dry-run to create the above")
        return 0
    print("\nThe backend is ready. Next:")
    for step in next_steps(settings, config):
        print(f"  {step}")
    return 0
