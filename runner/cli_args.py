"""The runner's command line: `build_parser` (every subcommand and flag) and the checks of the numbers and
account ids given, each failing with the flag's name and an example."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from components.shared.errors import UsageError

from . import lifecycle_commands
from .bootstrap.command import add_parser as add_bootstrap_parser
from .unchanged import ALL
from .restore import add_parser as add_restore_parser
from .environments import add_environment_argument

log = logging.getLogger("runner")

DEFAULT_PROJECT_DIR = Path(__file__).resolve().parent.parent


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit code is 2 as well; keep the message short
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project-dir", type=Path, default=DEFAULT_PROJECT_DIR, help="Pulumi project directory (default: this checkout)")
    common.add_argument("--master-config", type=Path, help="master stack file with the runner settings (default: <project>/Pulumi.master.yaml)")
    common.add_argument("--template", type=Path, help="silo stack template (default: <project>/Pulumi.silo-template.yaml)")
    common.add_argument("--silo-settings", type=Path, help="directory of silo profiles and per-account files (default: <project>/silos)")
    common.add_argument("--silo-ou", help="id of the silo OU (default: the last OU of datalake:siloOuPath)")
    common.add_argument("--endpoint-url", help="AWS endpoint for Organizations and S3 (a local emulator)")
    common.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"), help="region of the AWS clients (default $AWS_REGION or us-east-1)")
    common.add_argument("--backend-url", default=os.environ.get("PULUMI_BACKEND_URL"), help="Pulumi backend (default $PULUMI_BACKEND_URL, else s3://<runner.stateBucket>)")
    common.add_argument("--stacks-from", type=Path, help="read stacks from a local file-backend directory without the CLI (plan only)")
    common.add_argument("--secrets-provider", default=os.environ.get("PULUMI_SECRETS_PROVIDER"), help="secrets provider of new stacks (default: runner.secretsProvider or the master key)")
    common.add_argument("--allow", action="append", default=[], metavar="ACCOUNT", help="manage only these accounts (repeatable)")
    common.add_argument("--deny", action="append", default=[], metavar="ACCOUNT", help="never touch these accounts (repeatable)")
    common.add_argument("--max-concurrency", type=int, help="operations at once (default runner.maxConcurrency, 8)")
    common.add_argument("--failure-tolerance", type=int, help="failures before no new operation starts (default runner.failureTolerance, 3)")
    common.add_argument("--max-retire-share", type=float, help="largest share of stacks one run may retire (default runner.maxRetireShare, 0.2)")
    common.add_argument("--allow-mass-retire", action="store_true", help="lift the mass-retire protection for this run")
    common.add_argument(
        "--plan-json",
        default=os.environ.get("RUNNER_PLAN_JSON"),
        help="also write the plan to this JSON file or s3://bucket/key.json (default $RUNNER_PLAN_JSON), with items.json "
        "beside it for the stepfunctions engine (.yaml writes the plan as YAML only)",
    )
    common.add_argument("--batch-size", type=int, help="operations per batch of the plan's items (default runner.batchSize, 40)")
    common.add_argument(
        "--ledger",
        default=os.environ.get("RUNNER_LEDGER"),
        help="the runner's ledger, a directory or s3://bucket/prefix (default $RUNNER_LEDGER, else <report location>/ledger); "
        "`off` runs without it: nothing skipped, every tag read, silo names read per stack",
    )
    common.add_argument("--ledger-kms-key", default=os.environ.get("RUNNER_LEDGER_KMS_KEY"), help="KMS key of S3 ledger entries (default $RUNNER_LEDGER_KMS_KEY, else alias/<namePrefix>-master)")
    common.add_argument(
        "--force",
        nargs="?",
        const=ALL,
        action="append",
        default=[],
        metavar="ACCOUNT",
        help="deploy unchanged stacks too: every stack, or the named account's (repeatable)",
    )
    common.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="ID",
        help="operate on this account only (repeatable; $RUNNER_ACCOUNTS, comma-separated, from account events); "
        "discovery and the safety rules still see the whole organization",
    )
    common.add_argument("--tag-sweep", action="store_true", help="read every account's tags this run (default: new and named accounts, and daily)")
    common.add_argument("--report-to", default=os.environ.get("RUNNER_REPORT_TO", "out/runner"), help="local directory or s3://bucket/prefix for run reports (default out/runner)")
    common.add_argument(
        "--exports-to",
        default=os.environ.get("RUNNER_EXPORTS_TO"),
        help="where retired stacks' state exports are stored before the stack is removed (default $RUNNER_EXPORTS_TO, "
        "else s3://<backend bucket>/runner-exports, else <file backend dir>/runner-exports)",
    )
    common.add_argument(
        "--exports-kms-key",
        default=os.environ.get("RUNNER_EXPORTS_KMS_KEY"),
        help="KMS key of state exports and S3 reports (default $RUNNER_EXPORTS_KMS_KEY, else the master key alias/<namePrefix>-master)",
    )
    common.add_argument("--log-dir", type=Path, default=Path(os.environ.get("RUNNER_LOG_DIR", "out/runner/logs")), help="directory of per-operation logs")
    common.add_argument("--lock-retry-seconds", type=float, default=30.0, help="first delay before retrying a locked stack (default 30)")
    common.add_argument(
        "--operation-timeout",
        type=float,
        default=float(os.environ.get("RUNNER_OPERATION_TIMEOUT_MINUTES", 45)),
        metavar="MINUTES",
        help="minutes one stack's up, destroy or drift check may run before its pulumi process is stopped and it fails "
        "(default $RUNNER_OPERATION_TIMEOUT_MINUTES or 45); other CLI calls get at most 10",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    lifecycle_commands.add_common_flags(common)

    parser = _Parser(prog="python -m runner", description="Reconcile one Pulumi silo stack per account of the silo OU.")
    add_environment_argument(parser, common)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("discover", parents=[common], help="list the silo OU's accounts with status and opt-out")
    commands.add_parser("plan", parents=[common], help="print what apply would do (changes nothing)")
    apply = commands.add_parser("apply", parents=[common], help="create, update and retire silo stacks")
    apply.add_argument("--dry-run", action="store_true", help="stop after the plan; change nothing")
    apply.add_argument("--from-plan", default=os.environ.get("RUNNER_FROM_PLAN"), metavar="URI",
                       help="run one batch of a stored plan (the stepfunctions engine's children; default $RUNNER_FROM_PLAN)")
    apply.add_argument("--batch", type=int, help="with --from-plan: the batch index to run")
    apply.add_argument("--items", default=os.environ.get("RUNNER_ITEMS"),
                       help="with --from-plan: the Distributed Map's batch items as JSON (default $RUNNER_ITEMS)")
    merge = commands.add_parser("merge-reports", parents=[common], help="merge a stored plan's batch results into one run report")
    merge.add_argument("--from-plan", default=os.environ.get("RUNNER_FROM_PLAN"), metavar="URI", help="the plan (default $RUNNER_FROM_PLAN)")
    commands.add_parser("drift", parents=[common], help="refresh + preview every silo stack; exit 1 if any drifted")
    report = commands.add_parser("report", parents=[common], help="print a stored run report (default: the latest)")
    report.add_argument("run_id", nargs="?", help="run id (default: the latest)")
    demo = commands.add_parser("demo", parents=[common], help="the offline demo: a local AWS emulator, an organization, a dry-run plan")
    demo.add_argument("--offline", action="store_true", help="use the emulator even where AWS credentials and the pulumi CLI exist")
    lifecycle_commands.add_parsers(commands, common)
    add_bootstrap_parser(commands)
    add_restore_parser(commands, common)
    return parser



def check_numbers(args: argparse.Namespace) -> None:
    if args.max_concurrency is not None and not 1 <= args.max_concurrency <= 64:
        raise UsageError(f"--max-concurrency {args.max_concurrency}: must be between 1 and 64; for example: 8")
    if args.failure_tolerance is not None and args.failure_tolerance < 0:
        raise UsageError(f"--failure-tolerance {args.failure_tolerance}: must be 0 or more; for example: 3")
    if args.max_retire_share is not None and not 0 <= args.max_retire_share <= 1:
        raise UsageError(f"--max-retire-share {args.max_retire_share}: must be between 0 and 1; for example: 0.2")
    if getattr(args, "retire_grace_days", None) is not None and not 0 <= args.retire_grace_days <= 365:
        raise UsageError(f"--retire-grace-days {args.retire_grace_days}: must be between 0 and 365; for example: 7")
    if not 0 < args.operation_timeout <= 24 * 60:
        raise UsageError(f"--operation-timeout {args.operation_timeout:g}: must be more than 0 and at most 1440 minutes; for example: 45")
    for account in args.allow + args.deny:
        if not (len(account) == 12 and account.isdigit()):
            raise UsageError(f"--allow/--deny {account!r}: not a 12-digit account id; for example: 123456789012")
    for account in args.account + [a for a in args.force if a != ALL]:
        if not _is_account_id(account):
            raise UsageError(f"--account/--force {account!r}: not a 12-digit account id; for example: 123456789012")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: must be 1 or more; for example: 40")


def _is_account_id(value: str) -> bool:
    return len(value) == 12 and value.isdigit()


def targeted_accounts(args: argparse.Namespace) -> list[str]:
    """`--account` ids, else those of $RUNNER_ACCOUNTS (set by the account-event rules).

    An event may name a resource that is not an account (an OU, the root or a policy was tagged):
    such ids are logged and left out; an id of any other shape is an error.
    """
    if args.account:
        return sorted(set(args.account))
    found = []
    for value in filter(None, (part.strip() for part in os.environ.get("RUNNER_ACCOUNTS", "").split(","))):
        if _is_account_id(value):
            found.append(value)
        elif value.startswith(("ou-", "r-", "p-")):
            log.info("RUNNER_ACCOUNTS names %s, which is not an account: nothing to do for it", value)
        else:
            raise UsageError(f"RUNNER_ACCOUNTS {value!r}: not a 12-digit account id; for example: 123456789012")
    return sorted(set(found))
