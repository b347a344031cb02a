"""`python -m runner <command>`: discover, plan, apply, drift, merge-reports, report, demo, bootstrap, restore, whatif, retained, purge.

Exit codes: 0 everything succeeded (for `drift`: no drift); 1 some operation failed, retirements
were held by the safety rules, discovery failed, or drift was found; 2 bad invocation or config.
Logs and live progress go to stderr through `logging`; the final tables go to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Optional

from components.shared.errors import ConfigError, DiscoveryError, RunnerError, StackOperationError, UsageError

from . import lifecycle_commands
from .bootstrap.command import run_bootstrap
from .cli_args import DEFAULT_PROJECT_DIR, build_parser
from .model import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .planning import load_template
from .demo import run_demo
from .report import ReportStore, table
from .run import Clients, Run, boto_client, load_master_config, stack_operations
from .stack_ops import StackOperations

log = logging.getLogger("runner")


def show_report(args: argparse.Namespace, clients: Clients) -> int:
    store = ReportStore(args.report_to, clients.s3 or (lambda: boto_client("s3", args)))
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
    config = load_master_config(args)
    if args.command == "retained":
        template = load_template(args.template or args.project_dir / "Pulumi.silo-template.yaml")
        role = Run._deploy_role(config, template)
        ledger = lifecycle_commands.require_ledger(
            lifecycle_commands.open_ledger(args, clients.s3 or (lambda: boto_client("s3", args)), config.key_alias), "retained")
        return lifecycle_commands.run_retained(args, ledger, lambda: lifecycle_commands.silo_clients(args, role, clients.silo_clients))
    if args.command == "bootstrap":
        return run_bootstrap(args, config)
    from .restore import run_restore

    return run_restore(
        args,
        config,
        lambda: stack_operations(args, config, clients),
        clients.s3 or (lambda: boto_client("s3", args)),
        lambda: str(boto_client("sts", args).get_caller_identity()["Account"]),
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
