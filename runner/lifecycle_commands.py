"""The silo-lifecycle commands and flags of `python -m runner`: whatif, retained, purge.

`runner/run.py` owns the run (discovery, stacks, plan, execution, report); this module adds the
parsers, the ledger location and the three commands, so the CLI only dispatches to them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Optional

from components.shared.errors import UsageError

from .ledger import Ledger
from .model import Action, Plan, StackInfo
from .report import plan_table
from .retained import DEFAULT_KEY_DELETION_DAYS, find_retained, measure, purge_command, record_usage, retained_details, retained_silos, retained_table
from .silo_access import AssumedRoleClients, ClientFactory
from .whatif import differences_table, parse_changes, what_if

log = logging.getLogger(__name__)


def add_common_flags(common: argparse.ArgumentParser) -> None:
    common.add_argument("--retire-grace-days", type=int, help="days between revoking partners and destroying a leaving silo (default runner.retireGraceDays, 7)")
    common.add_argument("--event-time", default=os.environ.get("RUNNER_EVENT_TIME"),
                        help="ISO 8601 time of the Organizations event that started the run (default $RUNNER_EVENT_TIME, else the discovery time)")


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    whatif = commands.add_parser("whatif", parents=[common], help="the plan after a hypothetical change of the organization (changes nothing)")
    whatif.add_argument("--move", action="append", default=[], metavar="ACCOUNT", help="move ACCOUNT (with --to)")
    whatif.add_argument("--to", action="append", default=[], metavar="OU", help="the OU or root id a --move goes to")
    whatif.add_argument("--close", action="append", default=[], metavar="ACCOUNT", help="close ACCOUNT")
    whatif.add_argument("--tag", action="append", default=[], nargs=2, metavar=("ACCOUNT", "KEY=VALUE"), help="tag ACCOUNT")
    whatif.add_argument("--untag", action="append", default=[], nargs=2, metavar=("ACCOUNT", "KEY"), help="remove a tag of ACCOUNT")
    retained = commands.add_parser("retained", parents=[common], help="list what retired silos left behind, with cost and totals")
    retained.add_argument("--details", action="store_true", help="every retained resource and cost line per silo")
    retained.add_argument("--refresh", action="store_true", help="measure the retained buckets again (assumes the deploy role in each account)")
    retained.add_argument("--json", action="store_true", help="print the ledger's retained records as JSON")
    purge = commands.add_parser("purge", parents=[common], help="delete a retired silo's retained resources (dry run without --confirm)")
    purge.add_argument("silo", help="silo name (or account id) of a retired silo")
    purge.add_argument("--confirm", metavar="SILO", help="the silo name again: without it nothing is deleted")
    purge.add_argument("--key-deletion-days", type=int, default=DEFAULT_KEY_DELETION_DAYS,
                       help=f"KMS key deletion waiting period, 7-30 days (default {DEFAULT_KEY_DELETION_DAYS})")


def ledger_location(args: argparse.Namespace) -> str:
    return args.ledger or f"{str(args.report_to).rstrip('/')}/ledger"


def open_ledger(args: argparse.Namespace, s3: Callable[[], Any], master_key_alias: str) -> Optional[Ledger]:
    """The run's ledger (`--ledger`), None for `--ledger off`; S3 entries are SSE-KMS with `--ledger-kms-key`
    (default the master key, `alias/<namePrefix>-master`)."""
    location = ledger_location(args)
    if location == "off":
        log.warning("--ledger off: nothing is skipped, every account's tags are read, silo names are read per stack")
        return None
    key = getattr(args, "ledger_kms_key", None) or f"alias/{master_key_alias}"
    return Ledger(location, s3_client=s3, kms_key_id=key if location.startswith("s3://") else None)


def require_ledger(ledger: Optional[Ledger], command: str) -> Ledger:
    if ledger is None:
        raise UsageError(f"{command} reads the runner's ledger: drop --ledger off (or set --ledger to its location)")
    return ledger


def event_time(args: argparse.Namespace, discovered_at: datetime) -> datetime:
    if not args.event_time:
        return discovered_at
    try:
        moment = datetime.fromisoformat(str(args.event_time).replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--event-time {args.event_time!r} is not an ISO 8601 time; for example: 2026-03-10T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def silo_clients(args: argparse.Namespace, role_name: str, given: Optional[ClientFactory]) -> ClientFactory:
    """Clients in silo accounts: the injected factory, else the deploy role assumed with the runner's credentials."""
    return given or AssumedRoleClients(role_name, args.region, args.endpoint_url, purpose="runner")


def run_whatif(args: argparse.Namespace, org: Any, plan: Callable[[Any], Plan]) -> int:
    changes = parse_changes(args.move, args.to, args.close, args.tag, args.untag)
    result = what_if(org, changes, plan)
    print(f"What if: {'; '.join(c.describe() for c in changes)} (Organizations and the stacks are not changed)")
    print(plan_table(result.after))
    print()
    print("Compared with today's plan:")
    print(differences_table(result))
    if args.plan_json:
        args.plan_json.parent.mkdir(parents=True, exist_ok=True)
        args.plan_json.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True))
    return 0


def run_retained(args: argparse.Namespace, ledger: Ledger, clients: Callable[[], ClientFactory]) -> int:
    entries = ledger.entries()
    silos = retained_silos(entries.values())
    if args.refresh and silos:
        factory = clients()
        for silo in silos:
            record_usage(ledger, entries[silo.stack], measure(factory, silo.account_id, list(silo.resources)))
        silos = retained_silos(ledger.entries().values())
    if args.json:
        print(json.dumps({s.silo_name: {"accountId": s.account_id, **s.to_json()} for s in silos}, indent=2, sort_keys=True, default=str))
        return 0
    if not silos:
        print(f"no retired silo holds retained resources (ledger {ledger.location})")
        return 0
    print(retained_table(silos))
    if args.details:
        for silo in silos:
            print()
            print(retained_details(silo))
    return 0


def purge_refusal(account_id: str, stacks: Sequence[StackInfo], plan: Plan, accounts: dict[str, Any], in_silo_ou: set[str]) -> str:
    """Why `purge` must not touch the account ('' when it may): active silo, a stack, unreachable.

    `accounts` maps account ids to what Organizations says (None: no longer in the organization);
    `in_silo_ou` holds the accounts discovery found under the silo OU.
    """
    account = accounts.get(account_id)
    if account is not None and account_id in in_silo_ou and account.wanted:
        return "is an active silo (ACTIVE in the silo OU and not opted out); retire it first"
    if any(s.account_id == account_id for s in stacks):
        pending = next((op for op in plan.operations if op.account_id == account_id and op.action is Action.RETIRE_DESTROY), None)
        when = f" (retire-destroy pending, destroys on {pending.destroys_on})" if pending and pending.destroys_on else ""
        return f"still has its stack silo-{account_id}{when}; purge only deletes what a finished retirement left"
    if account is not None and account.closed:
        return f"is {account.status}: the deploy role cannot be assumed in it; AWS deletes a closed account's resources 90 days after closure"
    if account_id in accounts and account is None:
        return "is no longer in the organization, so the runner cannot reach it"
    return ""


def run_purge(args: argparse.Namespace, ledger: Ledger, refusal_of: Callable[[str], str], clients: Callable[[], ClientFactory]) -> int:
    silo = find_retained(retained_silos(ledger.entries().values()), args.silo)
    return purge_command(ledger, args.silo, args.confirm, refusal_of(silo.account_id), clients(), sys.stdout, args.key_deletion_days)
