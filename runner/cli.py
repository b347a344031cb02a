"""`python -m runner <command>`: discover, plan, apply, drift, report, demo, bootstrap, restore.

Exit codes: 0 everything succeeded (for `drift`: no drift); 1 some operation failed, retirements
were held by the safety rules, discovery failed, or drift was found; 2 bad invocation or config.
Logs and live progress go to stderr through `logging`; the final tables go to stdout.
"""

from __future__ import annotations

import argparse
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

from components.config import MasterConfig, parse_stack_config
from components.errors import ConfigError, DiscoveryError, RunnerError, StackOperationError, UsageError
from components.pulumi_names import backend_kind_of_url

from .bootstrap import add_parser as add_bootstrap_parser
from .discovery import Backoff, DiscoverySettings, describe_outside, discover, with_outside
from .execution import ExecutionSettings, execute
from .model import Action, OperationResult, Plan, Result
from .partners import AssumedRoleIam, IamFactory, PartnerRevoker
from .planning import PlanSettings, build_plan, load_template
from .restore import add_parser as add_restore_parser
from .report import ReportStore, build_report, discovery_table, drift_table, plan_table, summary_table, table
from .stack_ops import AutomationStackOperations, FileBackendStacks, StackOperations

log = logging.getLogger("runner")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
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
    common.add_argument("--plan-json", type=Path, help="also write the plan as JSON to this file")
    common.add_argument("--report-to", default=os.environ.get("RUNNER_REPORT_TO", "out/runner"), help="local directory or s3://bucket/prefix for run reports (default out/runner)")
    common.add_argument("--log-dir", type=Path, default=Path(os.environ.get("RUNNER_LOG_DIR", "out/runner/logs")), help="directory of per-operation logs")
    common.add_argument("--lock-retry-seconds", type=float, default=30.0, help="first delay before retrying a locked stack (default 30)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = _Parser(prog="python -m runner", description="Reconcile one Pulumi silo stack per account of the silo OU.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("discover", parents=[common], help="list the silo OU's accounts with status and opt-out")
    commands.add_parser("plan", parents=[common], help="print what apply would do (changes nothing)")
    apply = commands.add_parser("apply", parents=[common], help="create, update and retire silo stacks")
    apply.add_argument("--dry-run", action="store_true", help="stop after the plan; change nothing")
    commands.add_parser("drift", parents=[common], help="refresh + preview every silo stack; exit 1 if any drifted")
    report = commands.add_parser("report", parents=[common], help="print a stored run report (default: the latest)")
    report.add_argument("run_id", nargs="?", help="run id (default: the latest)")
    demo = commands.add_parser("demo", parents=[common], help="the offline demo: a local AWS emulator, an organization, a dry-run plan")
    demo.add_argument("--offline", action="store_true", help="use the emulator even where AWS credentials and the pulumi CLI exist")
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


def _boto(service: str, args: argparse.Namespace) -> Any:
    import boto3
    from botocore.config import Config

    # One retry policy for Organizations: ours (discovery.Backoff), which the tests exercise.
    return boto3.client(
        service, region_name=args.region, endpoint_url=args.endpoint_url, config=Config(retries={"max_attempts": 1, "mode": "standard"})
    )


def _master_config(args: argparse.Namespace) -> MasterConfig:
    path = args.master_config or args.project_dir / "Pulumi.master.yaml"
    try:
        raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    except FileNotFoundError:
        raise UsageError(f"master stack file {path} does not exist; pass --master-config") from None
    # runner.pulumiOrg must suit the backend the silo stacks live in (no URL: the S3 state bucket).
    config = parse_stack_config("master", raw, runner_backend=backend_kind_of_url(args.backend_url))
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
    for account in args.allow + args.deny:
        if not (len(account) == 12 and account.isdigit()):
            raise UsageError(f"--allow/--deny {account!r}: not a 12-digit account id; for example: 123456789012")


def _stack_ops(args: argparse.Namespace, config: MasterConfig, clients: Clients) -> StackOperations:
    if clients.stack_ops is not None:
        return clients.stack_ops
    if args.stacks_from:
        if args.command in ("apply", "drift") and not getattr(args, "dry_run", False):
            raise UsageError("--stacks-from only reads stacks; apply and drift need the pulumi CLI (or use apply --dry-run)")
        return FileBackendStacks(args.stacks_from)
    runner = config.runner
    backend = args.backend_url or (f"s3://{runner.state_bucket}?region={config.region}" if runner.state_bucket else None)
    secrets_provider = args.secrets_provider or config.runner_secrets_provider()
    return AutomationStackOperations(
        args.project_dir, backend_url=backend, secrets_provider=secrets_provider, org=runner.pulumi_org
    )


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
        self.plan: Optional[Plan] = None
        self.results: list[OperationResult] = []
        self.store = ReportStore(args.report_to, clients.s3 or (lambda: _boto("s3", args)))

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started

    def execute(self) -> int:
        args = self.args
        _check_numbers(args)
        config = _master_config(args)
        runner = config.runner
        org = self.clients.organizations or _boto("organizations", args)
        settings = DiscoverySettings(
            silo_ou_id=_silo_ou(args, config),
            opt_out_tag=runner.opt_out_tag,
            opt_out_value=runner.opt_out_value,
            allow_accounts=frozenset(runner.allow_accounts + args.allow),
            deny_accounts=frozenset(runner.deny_accounts + args.deny),
        )
        discovery = self.timed("discovery", lambda: discover(org, settings, self.clients.backoff))
        if args.command == "discover":
            print(discovery_table(discovery.accounts))
            print(f"{len(discovery.accounts)} accounts under {settings.silo_ou_id} ({sum(a.wanted for a in discovery.accounts)} silos)")
            return EXIT_OK

        template = load_template(args.template or args.project_dir / "Pulumi.silo-template.yaml")
        ops = _stack_ops(args, config, self.clients)
        stacks = self.timed("listStacks", ops.list_stacks)
        found = {a.id for a in discovery.accounts}
        orphans = [s.account_id for s in stacks if s.account_id and s.account_id not in found]
        outside = self.timed("discovery", lambda: describe_outside(org, orphans, settings, self.clients.backoff))
        discovery = with_outside(discovery, outside)
        plan_settings = PlanSettings(
            max_retire_share=runner.max_retire_share if args.max_retire_share is None else args.max_retire_share,
            allow_mass_retire=args.allow_mass_retire,
        )
        self.plan = build_plan(discovery, stacks, template, plan_settings, f"{runner.opt_out_tag}={runner.opt_out_value}")
        if args.plan_json:
            args.plan_json.parent.mkdir(parents=True, exist_ok=True)
            args.plan_json.write_text(yaml.safe_dump(self.plan.to_json()) if args.plan_json.suffix in (".yaml", ".yml") else _json(self.plan.to_json()))

        if args.command == "drift":
            return self._drift(ops, runner.max_concurrency if args.max_concurrency is None else args.max_concurrency)

        print(plan_table(self.plan))
        if self.plan.held_reason:
            log.warning("retirements held: %s", self.plan.held_reason)
        if args.command in ("plan", "demo") or getattr(args, "dry_run", False):
            log.info("dry run: nothing was changed")
            return EXIT_OK

        self.results = self.timed(
            "execution",
            lambda: execute(
                self.plan.operations,
                ops,
                self._execution_settings(runner.max_concurrency, runner.failure_tolerance),
                self._save_export,
                revoke_partners=PartnerRevoker(self.clients.iam_for or self._assume_deploy_role(config, template)),
            ),
        )
        print()
        print(summary_table(self.results))
        failed = [r for r in self.results if r.result is Result.FAILED]
        if failed:
            log.error("%d operation(s) failed: %s", len(failed), ", ".join(r.operation.stack for r in failed))
        if self.plan.held_reason:
            log.error("retirements were held and need a person: %s", self.plan.held_reason)
        return EXIT_FAILED if failed or self.plan.held_reason or any(r.result is Result.SKIPPED for r in self.results) else EXIT_OK

    def _execution_settings(self, concurrency: int, tolerance: int) -> ExecutionSettings:
        args = self.args
        return ExecutionSettings(
            log_dir=args.log_dir / self.run_id,
            max_concurrency=concurrency if args.max_concurrency is None else args.max_concurrency,
            failure_tolerance=tolerance if args.failure_tolerance is None else args.failure_tolerance,
            lock_retry_seconds=args.lock_retry_seconds,
        )

    def _assume_deploy_role(self, config: MasterConfig, template: dict[str, Any]) -> IamFactory:
        """IAM in a silo account through the role its stack deploys with (the template's, else the master's)."""
        role = template.get("datalake:deployRoleName") or config.deploy_role_name
        return AssumedRoleIam(role_name=str(role), region=self.args.region, endpoint_url=self.args.endpoint_url)

    def _save_export(self, stack: str, state: dict[str, Any]) -> str:
        return self.store.put_json(f"{self.run_id}/exports/{stack}.json", state)

    def _drift(self, ops: StackOperations, concurrency: int) -> int:
        assert self.plan is not None
        checks = [
            replace(op, action=Action.DRIFT, reason="refresh + preview")
            for op in self.plan.operations
            if op.action is Action.UPDATE
        ]
        # A drift check changes nothing, so one failure is no reason to stop checking the others.
        settings = replace(self._execution_settings(concurrency, 0), failure_tolerance=len(checks))
        self.results = self.timed("execution", lambda: execute(checks, ops, settings, self._save_export))
        print(drift_table(self.results))
        drifted = [r for r in self.results if r.result is Result.DRIFTED]
        failed = [r for r in self.results if r.result is Result.FAILED]
        print(f"{len(drifted)} of {len(checks)} stacks drifted, {len(failed)} checks failed")
        return EXIT_FAILED if drifted or failed else EXIT_OK

    def write_report(self, exit_code: int, error: str = "") -> Optional[str]:
        options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()}
        report = build_report(self.run_id, self.args.command, options, self.plan, self.results, self.timings, exit_code, error)
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
    return EXIT_OK


def _single_command(args: argparse.Namespace, clients: Clients) -> int:
    """The commands that are not a reconciliation run (no discovery, no run report)."""
    if args.command == "report":
        return show_report(args, clients)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args)
    args.project_dir = args.project_dir or DEFAULT_PROJECT_DIR
    config = _master_config(args)
    if args.command == "bootstrap":
        from .bootstrap import run_bootstrap

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
    if args.command in ("report", "demo", "bootstrap", "restore"):
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

