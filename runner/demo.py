"""The README's main job: discover + plan (dry-run) against an organization, then the skip at work.

Offline (the default on a machine without AWS credentials or the pulumi CLI) it starts `moto_server`
on 127.0.0.1, seeds an organization - a silo OU with nested OUs, active accounts, one suspended, one
moved out, one opted out by tag - and a local file backend whose stacks stand for earlier runs (one
of them for an account that has left the organization), then prints the discovery and plan tables and
a what-if (the plan if one silo account moved out of the silo OU). Then it applies that plan with
simulated deployments (in-memory stacks, `offline/fake_stacks.py`: no pulumi CLI here; the runner's
ledger, partner revocation and state exports are real) and plans again: every stack is
`unchanged (since <date>)`, so a second scheduled run would deploy nothing.
With AWS credentials and a `pulumi` CLI it plans against the real organization instead, read-only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol

from components.shared.errors import UsageError

from .model import EXIT_OK

if TYPE_CHECKING:
    from .stack_ops import StackOperations

log = logging.getLogger("runner.demo")


class RunCommand(Protocol):
    """Runs one runner command line as `python -m runner` does and returns its exit code; with
    `report`, also writes its run report. `runner/cli.py` passes its `run_command`: the demo drives
    the real CLI without importing it."""

    def __call__(self, argv: Sequence[str], *, stack_ops: Optional[StackOperations] = None, report: bool = False) -> int: ...

# Accounts that already have a silo stack from an earlier run, by OU (paths below the silo OU).
EXISTING = {
    "": ["Sales EMEA", "Marketing", "Finance", "Customer 360"],
    "emea": ["Supply Chain", "HR Analytics", "IoT Telemetry", "Retail Stores"],
    "emea/prod": ["Payments", "Logistics"],
    "americas": ["Research Lab", "Clinical Trials", "Energy Grid", "Media Archive"],
    "americas/labs": ["Genomics", "Climate Models"],
}
NEW = {"americas/labs": ["Fraud Detection"], "emea": ["Marketing"]}
SUSPENDED, MOVED_OUT, OPTED_OUT = "Legacy CRM", "Ads Sandbox", "Security Tooling"
GONE_ACCOUNT = "999999999999"
OPT_OUT_TAG = {"Key": "datalake:silo", "Value": "false"}
# One silo gets a profile by tag (a shipped `silos/profiles/` file), another its own account file.
PROFILED, PROFILE = "Genomics", "big-warehouse"
OVERRIDDEN = "Clinical Trials"
ACCOUNT_FILE = """\
# Clinical trial data stays in Frankfurt (data residency) and needs more warehouse.
config:
  aws:region: eu-central-1
  datalake:warehouse:
    maxCapacity: 128
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(
    timeout: float = 15.0,
    *,
    server_args: Sequence[str] = ("-c", "import sys; from moto.server import main; sys.exit(main())"),
    env: Optional[Mapping[str, str]] = None,
) -> Iterator[str]:
    """Starts `moto_server` on a free 127.0.0.1 port; yields its endpoint URL; stops it on exit.

    `server_args` are the interpreter arguments that start the server (default: moto's own
    `moto_server` with this interpreter; one found on PATH may belong to another Python).
    """
    port = free_port()
    command = [sys.executable, *server_args, "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(
        command, env=dict(env) if env is not None else None, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise UsageError(f"moto_server did not start on {url}; is moto[server] installed?") from None
                time.sleep(0.1)
        log.info("local AWS emulator (moto_server) ready on %s", url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class SeededOrg:
    """What `seed_organization` created."""

    silo_ou_id: str
    accounts: dict[str, str] = field(default_factory=dict)
    """Account name → id (later duplicates get ` #2`)."""
    with_stacks: dict[str, str] = field(default_factory=dict)
    """Account id → silo name of the stacks an earlier run left in the backend."""


def seed_organization(org: Any) -> SeededOrg:
    """An organization shaped like a real one, through the Organizations API (moto or real)."""
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    silo = org.create_organizational_unit(ParentId=root, Name="silos")["OrganizationalUnit"]["Id"]
    sandbox = org.create_organizational_unit(ParentId=root, Name="sandbox")["OrganizationalUnit"]["Id"]
    ous = {"": silo}
    for path in sorted({*EXISTING, *NEW} - {""}, key=lambda p: p.count("/")):
        parent = ous[path.rsplit("/", 1)[0] if "/" in path else ""]
        ous[path] = org.create_organizational_unit(ParentId=parent, Name=path.rsplit("/", 1)[-1])["OrganizationalUnit"]["Id"]
    seeded = SeededOrg(silo_ou_id=silo)

    def create(name: str, ou: str) -> str:
        email = f"{name.lower().replace(' ', '.')}.{len(seeded.accounts)}@example.com"
        status = org.create_account(Email=email, AccountName=name)["CreateAccountStatus"]
        account_id = status["AccountId"]
        org.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=ou)
        seeded.accounts[name if name not in seeded.accounts else f"{name} #2"] = account_id
        return account_id

    from .planning import derive_silo_name

    for path, names in EXISTING.items():
        for name in names:
            account_id = create(name, ous[path])
            seeded.with_stacks[account_id] = derive_silo_name(name, account_id, seeded.with_stacks.values())
    for path, names in NEW.items():
        for name in names:
            create(name, ous[path])
    for name in (SUSPENDED, MOVED_OUT, OPTED_OUT):
        account_id = create(name, silo)
        seeded.with_stacks[account_id] = derive_silo_name(name, account_id, seeded.with_stacks.values())
    org.close_account(AccountId=seeded.accounts[SUSPENDED])
    org.move_account(AccountId=seeded.accounts[MOVED_OUT], SourceParentId=silo, DestinationParentId=sandbox)
    org.tag_resource(ResourceId=seeded.accounts[OPTED_OUT], Tags=[OPT_OUT_TAG])
    org.tag_resource(ResourceId=seeded.accounts[PROFILED], Tags=[{"Key": "datalake:profile", "Value": PROFILE}])
    seeded.with_stacks[GONE_ACCOUNT] = "old-warehouse"
    return seeded


def write_file_backend(directory: Path, stacks: dict[str, str], project: str = "datalake") -> Path:
    """A local file backend (`file://<directory>`) holding one checkpoint per stack, as the CLI writes them."""
    root = directory / ".pulumi" / "stacks" / project
    root.mkdir(parents=True, exist_ok=True)
    for account_id, silo_name in stacks.items():
        stack = f"silo-{account_id}"
        checkpoint = {
            "version": 3,
            "checkpoint": {
                "stack": f"organization/{project}/{stack}",
                "latest": {
                    "manifest": {"time": "2026-01-01T00:00:00Z", "magic": "", "version": ""},
                    "resources": [
                        {
                            "urn": f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}",
                            "custom": False,
                            "type": "pulumi:pulumi:Stack",
                            "outputs": {"siloName": silo_name, "accountId": account_id},
                        }
                    ],
                },
            },
        }
        (root / f"{stack}.json").write_text(json.dumps(checkpoint, indent=2))
    return directory


def write_silo_settings(directory: Path, project_dir: Path, seeded: SeededOrg) -> Path:
    """The project's profiles, plus an account file for the `OVERRIDDEN` account (its id is the emulator's)."""
    shutil.copytree(project_dir / "silos", directory)
    (directory / f"{seeded.accounts[OVERRIDDEN]}.yaml").write_text(ACCOUNT_FILE)
    return directory


def _real_environment() -> bool:
    if shutil.which("pulumi") is None:
        return False
    import boto3

    return boto3.Session().get_credentials() is not None


def run_demo(args: argparse.Namespace, run_command: RunCommand) -> int:
    """Offline: emulator + seeded org + file backend → discovery and plan tables. Real: a dry-run plan."""
    passthrough = [f"--report-to={args.report_to}", f"--project-dir={args.project_dir}"]
    if not args.offline and not args.endpoint_url and _real_environment():
        log.info("AWS credentials and the pulumi CLI found: planning against the real organization (read-only)")
        return run_command(["plan", *passthrough])

    for key, value in {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_SESSION_TOKEN": "demo"}.items():
        os.environ[key] = value
    import boto3

    with moto_server() as endpoint, tempfile.TemporaryDirectory(prefix="runner-demo-") as tmp:
        org = boto3.client("organizations", region_name="us-east-1", endpoint_url=endpoint)
        seeded = seed_organization(org)
        backend = write_file_backend(Path(tmp) / "state", seeded.with_stacks)
        log.info(
            "seeded an organization: %d accounts (one suspended, one moved out, one opted out) and a file backend "
            "with %d silo stacks (one of an account that left the organization)",
            len(seeded.accounts), len(seeded.with_stacks),
        )
        settings = write_silo_settings(Path(tmp) / "silos", Path(args.project_dir), seeded)
        log.info(
            "silo settings: %r is tagged datalake:profile=%s; %r has its own file %s",
            PROFILED, PROFILE, OVERRIDDEN, f"silos/{seeded.accounts[OVERRIDDEN]}.yaml",
        )
        common = [f"--silo-ou={seeded.silo_ou_id}", f"--endpoint-url={endpoint}", "--region=us-east-1", f"--silo-settings={settings}", *passthrough]
        print("== discover")
        code = run_command(["discover", *common])
        if code != EXIT_OK:
            return code
        ledger = [f"--ledger={Path(tmp) / 'ledger'}", f"--exports-to={Path(tmp) / 'exports'}", f"--log-dir={Path(tmp) / 'logs'}"]
        print("\n== plan (dry run: nothing is changed)")
        code = run_command(["plan", f"--stacks-from={backend}", *common, *ledger], report=True)
        if code != EXIT_OK:
            return code
        # What-if against the same emulator: the plan if Finance left for the sandbox OU (read-only).
        root = org.list_roots()["Roots"][0]["Id"]
        sandbox = next(o["Id"] for o in org.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"] if o["Name"] == "sandbox")
        print(f"\n== what if Finance ({seeded.accounts['Finance']}) moved to the sandbox OU (Organizations is not changed)")
        whatif = ["whatif", f"--stacks-from={backend}", f"--move={seeded.accounts['Finance']}", f"--to={sandbox}", *common, *ledger]
        code = run_command(whatif)
        if code != EXIT_OK:
            return code
        return _simulated_apply_then_plan(backend, common + ledger, run_command)


def _simulated_apply_then_plan(backend: Path, common: list[str], run_command: RunCommand) -> int:
    """Applies the plan to in-memory stacks (the runner's ledger is real), then plans again: all unchanged."""
    from offline.fake_stacks import FakeStackOperations, deployed_master_export

    from .stack_ops import FileBackendStacks

    # The master is deployed too: after the creates the runner brings its per-silo catalogs up to date.
    stacks = FakeStackOperations(FileBackendStacks(backend).list_stacks(), exports={"master": deployed_master_export()})
    print("\n== apply (simulated deployments: no pulumi CLI here; the ledger, partner revocation and state exports are real)")
    code = run_command(["apply", *common], stack_ops=stacks, report=True)
    if code != EXIT_OK:
        return code
    print("\n== plan again: the ledger says every stack is unchanged, so the next run deploys nothing")
    return run_command(["plan", *common], stack_ops=stacks, report=True)
