"""`Run`: one reconciliation run (discovery → stacks → plan → execution → report) and what it is built
from: the injectable `Clients`, the master config, the stack operations, the backend and exports locations."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import yaml

from components.master.config import MasterConfig
from components.stack_config import parse_stack_config
from components.master.delivery import STAGE_BUILD_TIMEOUT_MINUTES
from components.shared.errors import StackOperationError, UsageError
from components.shared.pulumi_names import backend_kind_of_url

from . import lifecycle_commands
from .bookkeeping import LedgerBook, RecordingOperations, coalesced_results
from .catalogs import CatalogUpdate, update_master_catalogs
from .cli_args import check_numbers, targeted_accounts
from .discovery import Backoff, CountingClient, DiscoverySettings, TagReads, describe_outside, discover, with_outside
from .distributed import merge_reports, merged_results, read_plan, select_batch, split_location, write_batch_results, write_plan
from .execution import ExecutionSettings, execute
from .ledger import Ledger, bundle_digest, content_digest
from .lifecycle import apply_lifecycle, only_present, record_run
from .model import EXIT_FAILED, EXIT_OK, Action, OperationResult, Plan, PlannedOperation, Result
from .partners import AssumedRoleIam, IamFactory, PartnerRevoker
from .planning import PlanSettings, build_plan, load_template, restrict_to_accounts
from .recovery import Recovery
from .recovery import for_run as recovery_for_run
from .unchanged import DesiredState, declared_versions, mark_unchanged
from .restore import project_name
from .environments import check_file_environment, check_other_environments, environment_of, master_config_path, template_path
from .silo_config import check_accounts, load_layers
from .report import NotStoredError, ReportStore, build_report, discovery_table, drift_table, plan_table, summary_table, table
from .retained import measure, present_keys
from .silo_access import ClientFactory
from .stack_ops import AutomationStackOperations, FileBackendStacks, OperationTimeouts, StackOperations
from .whatif import plan_organization

log = logging.getLogger("runner")


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


def boto_client(service: str, args: argparse.Namespace) -> Any:
    import boto3
    from botocore.config import Config

    # One retry policy for Organizations: ours (discovery.Backoff), which the tests exercise.
    return boto3.client(
        service, region_name=args.region, endpoint_url=args.endpoint_url, config=Config(retries={"max_attempts": 1, "mode": "standard"})
    )


def load_master_config(args: argparse.Namespace) -> MasterConfig:
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


def stack_operations(args: argparse.Namespace, config: MasterConfig, clients: Clients) -> StackOperations:
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
        self._s3 = clients.s3 or (lambda: boto_client("s3", args))
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
        check_numbers(args)
        config = load_master_config(args)
        runner = config.runner
        kms_key = args.exports_kms_key or f"alias/{config.key_alias}"
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
        self.organizations = CountingClient(self.clients.organizations or boto_client("organizations", args))
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
        ops = stack_operations(args, config, self.clients)
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
        return lifecycle_commands.open_ledger(self.args, self._s3, config.key_alias)

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
        ops = stack_operations(args, config, self.clients)
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
        self._update_catalogs(stack_operations(self.args, config, self.clients), template, lifecycle_commands.event_time(self.args, self.clients.now()))
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
