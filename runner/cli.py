"""`python -m runner <command>`: discover, plan, apply, drift, merge-reports, report, demo, bootstrap, restore, whatif, retained, purge.

Exit codes: 0 everything succeeded (for `drift`: no drift); 1 some operation failed, retirements
were held by the safety rules, discovery failed, or drift was found; 2 bad invocation or config.
Logs and live progress go to stderr through `logging`; the final tables go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import yaml

from components.master.config import MasterConfig
from components.stack_config import parse_stack_config
from components.master.delivery import STAGE_BUILD_TIMEOUT_MINUTES
from components.shared.errors import ConfigError, DiscoveryError, RunnerError, StackOperationError, UsageError
from components.shared.pulumi_names import backend_kind_of_url

from . import lifecycle_commands
from .bootstrap.command import add_parser as add_bootstrap_parser, run_bootstrap
from .bookkeeping import LedgerBook, RecordingOperations, coalesced_results
from .catalogs import CatalogUpdate, update_master_catalogs
from .discovery import Backoff, CountingClient, DiscoverySettings, TagReads, describe_outside, discover, with_outside
from .distributed import merge_reports, merged_results, read_plan, select_batch, split_location, write_batch_results, write_plan
from .execution import ExecutionSettings, execute
from .ledger import Ledger, bundle_digest, content_digest
from .lifecycle import apply_lifecycle, only_present, record_run
from .model import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Action, OperationResult, Plan, PlannedOperation, Result
from .partners import AssumedRoleIam, IamFactory, PartnerRevoker
from .planning import PlanSettings, build_plan, load_template, restrict_to_accounts
from .recovery import Recovery
from .recovery import for_run as recovery_for_run
from .unchanged import ALL, DesiredState, declared_versions, mark_unchanged
from .restore import add_parser as add_restore_parser
from .restore import project_name
from .demo import run_demo
from .environments import (
    add_environment_argument,
    check_file_environment,
    check_other_environments,
    environment_of,
    master_config_path,
    template_path,
)
from .silo_config import check_accounts, load_layers
from .report import NotStoredError, ReportStore, build_report, discovery_table, drift_table, plan_table, summary_table, table
from .retained import measure, present_keys
from .silo_access import ClientFactory
from .stack_ops import AutomationStackOperations, FileBackendStacks, OperationTimeouts, StackOperations
from .whatif import plan_organization

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


@dataclass
class Clients:
    """What the runner talks to; tests inject fakes."""

    organizations: Optional[Any] = None
    stack_ops: Optional[StackOperations] = None
    s3: Optional[Callable[[], Any]] = None
    backoff: Backoff = field(default_factory=Backoff)
    iam_for: Optional[IamFactory] = None
    """account id → IAM client in that account, for revoking partners (default: assume the deploy role)."""
    silo_clients: Optional[ClientFactory] = None
    """(account id, service) → client in that account, for retained data and adoption (default: the deploy role)."""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    """The clock of grace periods and of the account-event-to-catalog measurement."""


def _boto(service: str, args: argparse.Namespace) -> Any:
    import boto3
    from botocore.config import Config

    # One retry policy for Organizations: ours (discovery.Backoff), which the tests exercise.
    return boto3.client(
        service, region_name=args.region, endpoint_url=args.endpoint_url, config=Config(retries={"max_attempts": 1, "mode": "standard"})
    )


def _master_config(args: argparse.Namespace) -> MasterConfig:
    path = master_config_path(args)
    try:
        raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    except FileNotFoundError:
        raise UsageError(f"master stack file {path} does not exist; pass --master-config (or --env of an environment that has one)") from None
    check_file_environment(path, raw, environment_of(args))
    # runner.pulumiOrg must suit the backend the silo stacks live in (no URL: the S3 state bucket;
    # `bootstrap` has no --backend-url: it creates that bucket).
    config = parse_stack_config("master", raw, runner_backend=backend_kind_of_url(getattr(args, "backend_url", None)))
    if not isinstance(config, MasterConfig):
        raise UsageError(f"{path} is not a master stack file (datalake:kind is {config.kind!r})")
    return config


def _silo_ou(args: argparse.Namespace, config: MasterConfig) -> str:
    if args.silo_ou:
        if not args.silo_ou.startswith("ou-"):
            raise UsageError(f"--silo-ou {args.silo_ou!r} is not an OU id; for example: ou-ab12-11111111")
        return args.silo_ou
    return config.silo_ou_path.rstrip("/").rsplit("/", 1)[-1]


def _check_numbers(args: argparse.Namespace) -> None:
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


def _stack_ops(args: argparse.Namespace, config: MasterConfig, clients: Clients) -> StackOperations:
    if clients.stack_ops is not None:
        return clients.stack_ops
    if args.stacks_from:
        if args.command in ("apply", "drift") and not getattr(args, "dry_run", False):
            raise UsageError("--stacks-from only reads stacks; apply and drift need the pulumi CLI (or use apply --dry-run)")
        return FileBackendStacks(args.stacks_from)
    runner = config.runner
    backend = _backend_url(args, config)
    secrets_provider = args.secrets_provider or config.runner_secrets_provider()
    return AutomationStackOperations(
        args.project_dir, backend_url=backend, secrets_provider=secrets_provider, org=runner.pulumi_org, timeouts=_timeouts(args),
        environment=environment_of(args),
    )


def _timeouts(args: argparse.Namespace) -> OperationTimeouts:
    update_seconds = args.operation_timeout * 60
    return OperationTimeouts(update_seconds=update_seconds, command_seconds=min(update_seconds, OperationTimeouts.command_seconds))


def _backend_url(args: argparse.Namespace, config: MasterConfig) -> Optional[str]:
    """`--backend-url` / `$PULUMI_BACKEND_URL`, else the `runner.stateBucket` backend, else None (the CLI's login)."""
    runner = config.runner
    return args.backend_url or (f"s3://{runner.state_bucket}?region={config.region}" if runner.state_bucket else None)


EXPORTS_PREFIX = "runner-exports"


def exports_location(args: argparse.Namespace, config: MasterConfig) -> Optional[str]:
    """Where state exports go: `--exports-to`, else beside the backend's state (its bucket or directory)."""
    if args.exports_to:
        return str(args.exports_to)
    backend = _backend_url(args, config) or ""
    if backend.startswith("s3://"):
        bucket = backend[len("s3://"):].split("?", 1)[0].split("/", 1)[0]
        return f"s3://{bucket}/{EXPORTS_PREFIX}" if bucket else None
    if backend.startswith("file://"):
        return str(Path(backend[len("file://"):].split("?", 1)[0]) / EXPORTS_PREFIX)
    return None


def new_run_id() -> str:
    """`20260101T120000123456Z-1a2b3c`: sorts by start time (to the microsecond), unique across runners."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(3)}"


class Run:
    """One invocation: discovery → stacks → plan → (execution) → report."""

    def __init__(self, args: argparse.Namespace, clients: Clients):
        self.args = args
        self.clients = clients
        self.run_id = new_run_id()
        self.timings: dict[str, float] = {}
        self.cpu_timings: dict[str, float] = {}
        """CPU seconds of the process during each phase: what a phase computed rather than waited for."""
        self.plan: Optional[Plan] = None
        self.results: list[OperationResult] = []
        self.organizations: Optional[CountingClient] = None
        self.discovery: Optional[Any] = None
        self.book: Optional[LedgerBook] = None
        self.merged: Optional[dict[str, Any]] = None
        self._s3 = clients.s3 or (lambda: _boto("s3", args))
        self.store = ReportStore(args.report_to, self._s3, args.exports_kms_key)
        self.exports: Optional[ReportStore] = None
        """Where this run's state exports go; None when no durable place is known (retirements then fail)."""
        self.retired_states: dict[str, tuple[dict[str, Any], str]] = {}
        """Stack → (its exported state, where it was stored): what the ledger of retained data reads after the run."""
        self.catalogs: Optional[CatalogUpdate] = None
        self.recovery: Optional[Recovery] = None
        self._cleanup = contextlib.ExitStack()

    def close(self) -> None:
        """Ends what the run started (its run marker's heartbeat: the marker is then `finished`)."""
        self._cleanup.close()

    def start_recovery(self, config: MasterConfig, ops: StackOperations) -> None:
        """Recovery hooks for the executor (runner/recovery.py) and this run's marker, beating until `close`."""
        timeouts = _timeouts(self.args)
        project = getattr(ops, "project", None) or project_name(self.args.project_dir)
        self.recovery, alive = recovery_for_run(
            self.run_id, self.args.command, backend_url=_backend_url(self.args, config), s3_client=self._s3, org=config.runner.pulumi_org,
            project=project, update_seconds=timeouts.update_seconds, kill_grace_seconds=timeouts.kill_grace_seconds,
            build_timeout_minutes=(config.runner.build_timeout_minutes, STAGE_BUILD_TIMEOUT_MINUTES), project_dir=self.args.project_dir,
            environment=environment_of(self.args),
        )
        self._cleanup.enter_context(alive)

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        """Runs one phase, adding its wall time to `timings` and the process's CPU time to `cpu_timings`."""
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return call()
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
            self.cpu_timings[name] = self.cpu_timings.get(name, 0.0) + time.process_time() - cpu

    def execute(self) -> int:
        args = self.args
        _check_numbers(args)
        config = _master_config(args)
        runner = config.runner
        kms_key = args.exports_kms_key or f"alias/{config.name_prefix}-master"
        self.store.kms_key_id = kms_key
        location = exports_location(args, config)
        if location:
            self.exports = ReportStore(location, self._s3, kms_key)
        if args.command == "merge-reports":
            return self._merge_reports(config)
        if getattr(args, "from_plan", None):
            return self._apply_batch(config)
        accounts = targeted_accounts(args)
        if not accounts and (args.account or os.environ.get("RUNNER_ACCOUNTS")):
            log.info("the event named no account: nothing to do")
            return EXIT_OK
        self.organizations = CountingClient(self.clients.organizations or _boto("organizations", args))
        org = self.organizations
        settings = DiscoverySettings(
            silo_ou_id=_silo_ou(args, config),
            opt_out_tag=runner.opt_out_tag,
            opt_out_value=runner.opt_out_value,
            profile_tag=runner.profile_tag,
            allow_accounts=frozenset(runner.allow_accounts + args.allow),
            deny_accounts=frozenset(runner.deny_accounts + args.deny),
        )
        discovered_at = self.clients.now()
        book = self.book = LedgerBook(self._ledger(config), environment_of(args))
        self.timed("ledger", book.load)
        tags = None
        if book.ledger is not None:
            tags = TagReads(known=book.verdicts(), named=frozenset(accounts), sweep_hours=runner.tag_sweep_hours, force_sweep=args.tag_sweep)
        discovery = self.timed(
            "discovery", lambda: discover(org, settings, self.clients.backoff, tags=tags, concurrency=runner.discovery_concurrency)
        )
        self.discovery = discovery
        if args.command == "discover":
            print(discovery_table(discovery.accounts))
            print(f"{len(discovery.accounts)} accounts under {settings.silo_ou_id} ({sum(a.wanted for a in discovery.accounts)} silos)")
            return EXIT_OK

        environment = environment_of(args)
        check_other_environments(Path(args.project_dir), environment, config.silo_ou_path)
        template = load_template(template_path(args))
        check_file_environment(template_path(args), template, environment)
        layers = load_layers(args, template, runner.profile_tag)
        check_accounts(layers, discovery.accounts, environment)  # every silo's config is valid before a stack is listed
        ops = _stack_ops(args, config, self.clients)
        # Only this environment's silo stacks have an account: the others are neither updated nor retired.
        stacks = self.timed("listStacks", lambda: book.stacks(ops))
        found = {a.id for a in discovery.accounts}
        orphans = [s.account_id for s in stacks if s.account_id and s.account_id not in found]
        outside = self.timed(
            "discovery", lambda: describe_outside(org, orphans, settings, self.clients.backoff, concurrency=runner.discovery_concurrency)
        )
        discovery = with_outside(discovery, outside)
        plan_settings = PlanSettings(
            max_retire_share=runner.max_retire_share if args.max_retire_share is None else args.max_retire_share,
            allow_mass_retire=args.allow_mass_retire,
            allow_accounts=settings.allow_accounts,
            deny_accounts=settings.deny_accounts,
            environment=environment,
        )
        opt_out = f"{runner.opt_out_tag}={runner.opt_out_value}"
        grace_days = runner.retire_grace_days if args.retire_grace_days is None else args.retire_grace_days

        def lifecycle(plan: Plan) -> Plan:
            return apply_lifecycle(plan, stacks, book.entries, template, now=discovered_at, grace_days=grace_days)

        if args.command == "whatif":
            return lifecycle_commands.run_whatif(args, org, lambda client: lifecycle(
                plan_organization(client, settings, stacks, layers, plan_settings, opt_out, self.clients.backoff)))
        desired = self.timed("versions", lambda: self._desired(ops, config))

        def plan() -> tuple[Plan, dict[str, str]]:
            whole = lifecycle(build_plan(discovery, stacks, layers, plan_settings, opt_out))
            marked, wanted = mark_unchanged(whole, book.entries, desired, args.force)
            return (restrict_to_accounts(marked, accounts) if accounts else marked), wanted

        self.plan, wanted = self.timed("plan", plan)
        silo_clients = lifecycle_commands.silo_clients(args, self._deploy_role(config, template), self.clients.silo_clients)
        if args.command == "purge":
            ledger = lifecycle_commands.require_ledger(book.ledger, "purge")
            accounts_by_id: dict[str, Any] = {a.id: a for a in discovery.accounts} | dict(discovery.outside)

            def refusal(account_id: str) -> str:
                if account_id not in accounts_by_id:
                    accounts_by_id.update(describe_outside(org, [account_id], settings, self.clients.backoff))
                return lifecycle_commands.purge_refusal(account_id, stacks, self.plan, accounts_by_id, {a.id for a in discovery.accounts})

            return lifecycle_commands.run_purge(args, ledger, refusal, lambda: silo_clients)
        if accounts:
            log.info("targeted run for %s: %d operation(s)", ", ".join(accounts), len(self.plan.operations))
        changes = args.command == "drift" or (args.command == "apply" and not args.dry_run)
        if changes or (args.command == "plan" and args.plan_json):
            # The distributed engine's plan step is a run too: its children do not discover again.
            self.timed("ledger", lambda: book.record_tags(discovery))
        if args.plan_json:
            self._write_plan(args.plan_json, config)

        if args.command in ("drift", "apply") and not getattr(args, "dry_run", False):
            self.start_recovery(config, ops)
        if args.command == "drift":
            return self._drift(ops, runner.max_concurrency if args.max_concurrency is None else args.max_concurrency, wanted)

        print(plan_table(self.plan))
        if self.plan.held_reason:
            log.warning("retirements held: %s", self.plan.held_reason)
        if args.command in ("plan", "demo") or getattr(args, "dry_run", False):
            log.info("dry run: nothing was changed")
            return EXIT_OK

        # A returning account adopts only the retained resources that are still there (cheap reads).
        operations = [only_present(op, lambda account, adopt: present_keys(silo_clients, account, adopt)) for op in self.plan.operations]
        self.plan = Plan(tuple(operations), self.plan.existing_stacks, self.plan.discovered_accounts, self.plan.held_reason)
        self.results = self.timed(
            "execution",
            lambda: self._run_operations(list(self.plan.operations), ops, wanted, config, template, runner.max_concurrency, runner.failure_tolerance),
        )
        self._record_lifecycle(config, template, silo_clients)
        self._update_catalogs(ops, template, lifecycle_commands.event_time(args, discovered_at))
        return self._summarise(self.plan.held_reason)

    def _record_lifecycle(self, config: MasterConfig, template: dict[str, Any], silo_clients: Any) -> None:
        """Lifecycle records of this run's results in the ledger (grace periods, adoptions, retained data)."""
        ledger = self.book.ledger if self.book else None
        if ledger is not None:
            self.timed("ledger", lambda: record_run(
                ledger, self.book.entries, self.results, now=self.clients.now(), region=str(template.get("aws:region") or config.region),
                exports=self.retired_states, measure=lambda account, resources: measure(silo_clients, account, resources),
            ))

    def _update_catalogs(self, ops: StackOperations, template: dict[str, Any], moment: datetime) -> None:
        """The master's catalogs of the accounts this run created or retired (runner/catalogs.py)."""
        (self.args.log_dir / self.run_id).mkdir(parents=True, exist_ok=True)
        with (self.args.log_dir / self.run_id / "master-catalogs.log").open("a") as out:
            self.catalogs = self.timed("catalogs", lambda: update_master_catalogs(
                ops, str(template.get("datalake:masterStack", "master")).rsplit("/", 1)[-1], self.results,
                {r.operation.account_id: moment for r in self.results}, out, now=self.clients.now,
            ))

    def _summarise(self, held_reason: str) -> int:
        print()
        print(summary_table(self.results))
        if self.catalogs is not None:
            print(self.catalogs.error or f"master catalogs of {len(self.catalogs.accounts)} account(s) registered "
                  f"{max(self.catalogs.since_event.values(), default=0.0):.1f}s after the account event")
        failed = [r for r in self.results if r.result is Result.FAILED]
        stale_catalogs = self.catalogs is not None and bool(self.catalogs.error)
        if failed:
            log.error("%d operation(s) failed: %s", len(failed), ", ".join(r.operation.stack for r in failed))
        if held_reason:
            log.error("retirements were held and need a person: %s", held_reason)
        if stale_catalogs:
            log.error("the silos are done, but the master's catalogs are stale: %s", self.catalogs.error)  # type: ignore[union-attr]
        skipped = any(r.result is Result.SKIPPED for r in self.results)
        return EXIT_FAILED if failed or held_reason or skipped or stale_catalogs else EXIT_OK

    def _ledger(self, config: MasterConfig) -> Optional[Ledger]:
        return lifecycle_commands.open_ledger(self.args, self._s3, config.name_prefix)

    def _desired(self, ops: StackOperations, config: MasterConfig) -> DesiredState:
        """What every stack of this run is deployed from: the bundle, the CLI and plugin versions, the master's config."""
        project = self.args.project_dir
        if hasattr(ops, "versions"):
            versions = ops.versions()
            cli, plugins = versions.cli, versions.plugins
        else:  # a file backend read without the CLI: the pinned versions (a plan only predicts)
            cli, plugins = declared_versions(config.runner.pulumi_version, project / "requirements-runtime.txt")
        master_file = master_config_path(self.args)
        # Silo stacks read master outputs through a StackReference; the master's config is what
        # changes them between two bundles, so it is part of every silo's desired state.
        upstream = {"masterConfig": content_digest(yaml.safe_load(master_file.read_text()))}
        return DesiredState(bundle=bundle_digest(project), cli_version=cli, plugins=plugins, upstream=upstream)

    def _run_operations(self, operations: list[PlannedOperation], ops: StackOperations, wanted: dict[str, str], config: MasterConfig,
                        template: dict[str, Any], concurrency: int, tolerance: int) -> list[OperationResult]:
        ledger = self.book.ledger if self.book else None
        recorder = RecordingOperations(ops, ledger, {op.stack: op for op in operations}, wanted) if ledger else None
        results = execute(
            operations,
            recorder or ops,
            self._execution_settings(concurrency, tolerance),
            self._save_export,
            revoke_partners=PartnerRevoker(self.clients.iam_for or self._assume_deploy_role(config, template)),
            recovery=self.recovery,
        )
        return coalesced_results(results, recorder)

    def _write_plan(self, where: str, config: MasterConfig) -> None:
        assert self.plan is not None
        if where.endswith((".yaml", ".yml")):
            path = Path(where)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(self.plan.to_json()))
            return
        location, name = split_location(where)
        batch_size = self.args.batch_size or config.runner.batch_size
        # Plans and batch results are SSE-KMS like the reports: the state machine's role may decrypt with the master key.
        write_plan(ReportStore(location, self._s3, self.store.kms_key_id), name, self.plan, self.run_id, batch_size)

    def _plan_store(self) -> tuple[ReportStore, dict[str, Any]]:
        location, name = split_location(self.args.from_plan)
        store = ReportStore(location, self._s3, self.store.kms_key_id)
        return store, read_plan(store, name)

    def _apply_batch(self, config: MasterConfig) -> int:
        """One child of the distributed engine: a batch of a stored plan, through the same executor."""
        args = self.args
        location, _ = split_location(args.from_plan)
        store = ReportStore(location, self._s3, self.store.kms_key_id)
        index, operations, document = select_batch(store, batch=args.batch, items=args.items)
        log.info("batch %d of plan %s: %d operation(s)", index, args.from_plan, len(operations))
        template = load_template(template_path(args))
        ops = _stack_ops(args, config, self.clients)
        self.book = LedgerBook(self._ledger(config), environment_of(args))
        desired = self.timed("versions", lambda: self._desired(ops, config))
        # What this build deploys is what it records: its own bundle and versions, the plan's configs.
        wanted = {op.stack: desired.of(op) for op in operations if desired.of(op)}
        self.results = self.timed(
            "execution",
            lambda: self._run_operations(operations, ops, wanted, config, template, config.runner.max_concurrency, config.runner.failure_tolerance),
        )
        self._record_lifecycle(config, template, lifecycle_commands.silo_clients(args, self._deploy_role(config, template), self.clients.silo_clients))
        write_batch_results(store, document, index, self.results, self.timings, os.environ.get("CODEBUILD_BUILD_ID", ""))
        return self._summarise("")

    def _merge_reports(self, config: MasterConfig) -> int:
        if not self.args.from_plan:
            raise UsageError("merge-reports needs --from-plan URI (or $RUNNER_FROM_PLAN); for example: s3://my-state-bucket/runner-plans/run-1/plan.json")
        store, document = self._plan_store()
        report = merge_reports(store, document)
        self.merged = report
        # The master's catalogs follow once per rollout, here, not in every child (they would queue on the master's lock).
        self.results = merged_results(document, report)
        template = load_template(template_path(self.args))
        self._update_catalogs(_stack_ops(self.args, config, self.clients), template, lifecycle_commands.event_time(self.args, self.clients.now()))
        report["catalogs"] = self.catalogs.to_json() if self.catalogs is not None else None
        if self.catalogs is not None and self.catalogs.error:
            log.error("the silos are done, but the master's catalogs are stale: %s", self.catalogs.error)
            report["exitCode"] = report["exitCode"] or EXIT_FAILED
        where = self.store.put_json(f"{report['runId']}/report.json", report)
        rows = [(r["accountId"], r["accountName"], r["action"], r["result"], r["error"][:100]) for r in report["results"]]
        print(table(("account", "name", "action", "result", "error"), rows) if rows else "no operations")
        print(", ".join(f"{n} {result}" for result, n in report["counts"].items() if n) or "nothing ran")
        for batch in report["batches"]:
            if batch["problem"]:
                log.error("batch %d: %s", batch["batch"], batch["problem"])
        log.info("merged report of run %s written to %s", report["runId"], where)
        return report["exitCode"]

    def _execution_settings(self, concurrency: int, tolerance: int) -> ExecutionSettings:
        args = self.args
        return ExecutionSettings(
            log_dir=args.log_dir / self.run_id,
            max_concurrency=concurrency if args.max_concurrency is None else args.max_concurrency,
            failure_tolerance=tolerance if args.failure_tolerance is None else args.failure_tolerance,
            lock_retry_seconds=args.lock_retry_seconds,
        )

    @staticmethod
    def _deploy_role(config: MasterConfig, template: dict[str, Any]) -> str:
        """The role silo stacks deploy with: the template's, else the master's."""
        return str(template.get("datalake:deployRoleName") or config.deploy_role_name)

    def _assume_deploy_role(self, config: MasterConfig, template: dict[str, Any]) -> IamFactory:
        """IAM in a silo account through the role its stack deploys with."""
        return AssumedRoleIam(role_name=self._deploy_role(config, template), region=self.args.region, endpoint_url=self.args.endpoint_url)

    def _save_export(self, stack: str, state: dict[str, Any]) -> str:
        """Stores a retiring stack's state durably or raises, and then the stack is not removed."""
        if self.exports is None:
            line = (
                "stack not removed: no durable place for its state export; pass --exports-to s3://<state bucket>/runner-exports "
                "or --backend-url s3://<state bucket>"
            )
            raise StackOperationError(f"{stack}: {line}", line)
        try:
            where = self.exports.put_durable_json(f"{self.run_id}/{stack}.json", state)
        except NotStoredError as exc:
            line = f"stack not removed: its state export was not stored: {exc}"
            raise StackOperationError(f"{stack}: {line}", line) from exc
        self.retired_states[stack] = (state, where)
        return where

    def _drift(self, ops: StackOperations, concurrency: int, wanted: dict[str, str]) -> int:
        assert self.plan is not None
        # Unchanged stacks too: a drift check is what keeps their skip honest.
        checks = [
            replace(op, action=Action.DRIFT, reason="refresh + preview", unchanged="")
            for op in self.plan.operations
            if op.action is Action.UPDATE
        ]
        # A drift check changes nothing, so one failure is no reason to stop checking the others.
        settings = replace(self._execution_settings(concurrency, 0), failure_tolerance=len(checks))
        ledger = self.book.ledger if self.book else None
        recording = RecordingOperations(ops, ledger, {op.stack: op for op in checks}, wanted) if ledger else ops
        self.results = self.timed("execution", lambda: execute(checks, recording, settings, self._save_export, recovery=self.recovery))
        print(drift_table(self.results))
        drifted = [r for r in self.results if r.result is Result.DRIFTED]
        failed = [r for r in self.results if r.result is Result.FAILED]
        print(f"{len(drifted)} of {len(checks)} stacks drifted, {len(failed)} checks failed")
        return EXIT_FAILED if drifted or failed else EXIT_OK

    def write_report(self, exit_code: int, error: str = "") -> Optional[str]:
        options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()}
        if self.merged is not None:
            return None  # merge-reports wrote the merged report under the plan's run id
        exports_to = self.exports.location if self.exports else None
        report = build_report(self.run_id, self.args.command, options, self.plan, self.results, self.timings, exit_code, error, exports_to)
        report["catalogs"] = self.catalogs.to_json() if self.catalogs is not None else None
        if self.organizations is not None:
            report["organizationsCalls"] = dict(sorted(self.organizations.counts.items()))
        if self.discovery is not None:
            report["tags"] = {"read": len(self.discovery.tags_read), "sweep": self.discovery.tag_sweep}
        try:
            where = self.store.put_json(f"{self.run_id}/report.json", report)
        except Exception as exc:  # noqa: BLE001 - the run's outcome stands even when its report cannot be stored
            log.error("could not write the run report to %s: %s", self.args.report_to, exc)
            return None
        log.info("run %s: report written to %s", self.run_id, where)
        return where


def _json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


def show_report(args: argparse.Namespace, clients: Clients) -> int:
    store = ReportStore(args.report_to, clients.s3 or (lambda: _boto("s3", args)))
    run_id = args.run_id or next(iter(reversed(store.run_ids())), None)
    if run_id is None:
        raise UsageError(f"no run reports under {args.report_to}; run `python -m runner plan` or `apply` first")
    report = store.get_json(f"{run_id}/report.json")
    print(f"run {report['runId']}: {report['command']}, exit code {report['exitCode']}")
    if report.get("error"):
        print(f"error: {report['error']}")
    print(", ".join(f"{key} {value:.1f}s" for key, value in report["timings"].items()))
    rows = [
        (r["accountId"], r["accountName"], r["action"], r["result"], f"{r['seconds']:.1f}s", r["changed"], r["error"][:100])
        for r in report["results"]
    ]
    print(table(("account", "name", "action", "result", "duration", "changed", "error"), rows) if rows else "no operations ran")
    for r in report["results"]:
        for note in r.get("notes", []):
            print(f"{r['accountId']} {r['stack']}: {note}")
    catalogs = report.get("catalogs")
    if catalogs:
        since = catalogs.get("secondsSinceEvent") or {}
        print(catalogs["error"] or f"master catalogs of {', '.join(catalogs['accounts'])} registered at {catalogs['registeredAt']}"
              + (f", {max(since.values()):.1f}s after the account event" if since else ""))
    return EXIT_OK


def run_command(argv: Sequence[str], *, stack_ops: Optional[StackOperations] = None, report: bool = False) -> int:
    """One command line run as `python -m runner` runs it, minus its error handling (`demo.RunCommand`):
    the demo's way into the runner."""
    run = Run(build_parser().parse_args(list(argv)), Clients(stack_ops=stack_ops))
    code = run.execute()
    if report:
        run.write_report(code)
    return code


def _single_command(args: argparse.Namespace, clients: Clients) -> int:
    """The commands that are not a reconciliation run (no discovery, no run report)."""
    if args.command == "report":
        return show_report(args, clients)
    if args.command == "demo":
        return run_demo(args, run_command)
    args.project_dir = args.project_dir or DEFAULT_PROJECT_DIR
    config = _master_config(args)
    if args.command == "retained":
        template = load_template(args.template or args.project_dir / "Pulumi.silo-template.yaml")
        role = Run._deploy_role(config, template)
        ledger = lifecycle_commands.require_ledger(
            lifecycle_commands.open_ledger(args, clients.s3 or (lambda: _boto("s3", args)), config.name_prefix), "retained")
        return lifecycle_commands.run_retained(args, ledger, lambda: lifecycle_commands.silo_clients(args, role, clients.silo_clients))
    if args.command == "bootstrap":
        return run_bootstrap(args, config)
    from .restore import run_restore

    return run_restore(
        args,
        config,
        lambda: _stack_ops(args, config, clients),
        clients.s3 or (lambda: _boto("s3", args)),
        lambda: str(_boto("sts", args).get_caller_identity()["Account"]),
    )


def main(argv: Optional[Sequence[str]] = None, clients: Optional[Clients] = None) -> int:
    """Runs one command; returns the exit code (never raises for expected errors)."""
    clients = clients or Clients()
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command in ("report", "demo", "bootstrap", "restore", "retained"):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return _single_command(args, clients)
        except (UsageError, ConfigError) as exc:
            log.error("%s", exc)
            return EXIT_USAGE
        except (ClientError, BotoCoreError, DiscoveryError, StackOperationError) as exc:
            log.error("%s failed: %s", args.command, exc)
            return EXIT_FAILED

    run = Run(args, clients)
    try:
        code = run.execute()
        run.write_report(code)
        return code
    except (UsageError, ConfigError) as exc:
        log.error("%s", exc)
        run.write_report(EXIT_USAGE, str(exc))
        return EXIT_USAGE
    except DiscoveryError as exc:
        log.error("discovery failed, so nothing was changed and no stack was retired: %s", exc)
        run.write_report(EXIT_FAILED, str(exc))
        return EXIT_FAILED
    except (StackOperationError, RunnerError) as exc:
        log.error("%s", exc)
        run.write_report(EXIT_FAILED, str(exc))
        return EXIT_FAILED
    finally:
        run.close()

