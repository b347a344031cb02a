"""`python -m acceptance` (`./dev acceptance`): the whole path on a sandbox organization, then teardown.

Exit codes: 0 every step passed and everything was torn down; 1 a step failed (what was created is
torn down unless --keep, and whatever is left is listed); 2 the run refused to start (no CLI, no
credentials, not the management account, bad flags) or the person did not confirm.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import yaml

from components.stack_config import parse_stack_config
from components.shared.errors import ConfigError

from . import aws
from .aws import AcceptanceError
from .plan import DATASET, DEPLOY_ROLE, OPT_OUT_TAG, Settings, render, steps
from .preflight import preflight
from .pulumi_cli import PulumiCli, runner_argv

PROJECT_DIR = Path(__file__).resolve().parent.parent
# What the program needs at `pulumi up` (it reads Lambda, Glue and console files from functions/).
PROGRAM_FILES = ("__main__.py", "program.py", "Pulumi.yaml", "requirements.txt", "components", "functions")
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
FIREHOSE_WAIT_SECONDS = 15 * 60
ETL_WAIT_SECONDS = 60 * 60


# -- the generated stack files --------------------------------------------------------------------


def _shipped(file_name: str, settings: Settings, organization_id: str, silo_ou_path: str, analytics_ou_path: str) -> dict[str, Any]:
    """A shipped stack file's config pointed at the sandbox organization, the run's region and prefix."""
    config = dict(yaml.safe_load((PROJECT_DIR / file_name).read_text())["config"])
    config.update({
        "aws:region": settings.region,
        "datalake:namePrefix": settings.prefix,
        "datalake:organizationId": organization_id,
        "datalake:siloOuPath": silo_ou_path,
        "datalake:analyticsOuPath": analytics_ou_path,
        "datalake:deployRoleName": DEPLOY_ROLE,
        "datalake:tags": {**config.get("datalake:tags", {}), "datalake:acceptance": settings.prefix},
    })
    return config


def master_stack_config(settings: Settings, organization_id: str, silo_ou_path: str, analytics_ou_path: str) -> dict[str, Any]:
    """The shipped master stack file for this run, without the delivery pipeline and with the run's state bucket."""
    config = _shipped("Pulumi.master.yaml", settings, organization_id, silo_ou_path, analytics_ou_path)
    config.pop("datalake:delivery", None)  # its Git connection needs a person's handshake
    runner = dict(config.get("datalake:runner") or {})
    # The schedules would start builds of a bundle nobody uploaded; weekly and no drift keeps that quiet.
    runner.update({"schedule": "rate(7 days)", "driftSchedule": None, "stateBucket": settings.state_bucket})
    config["datalake:runner"] = runner
    return config


def silo_template(settings: Settings, organization_id: str, silo_ou_path: str, analytics_ou_path: str) -> dict[str, Any]:
    """The shipped silo template for this run: the DIY master stack name, a 60 s Firehose buffer."""
    config = _shipped("Pulumi.silo-template.yaml", settings, organization_id, silo_ou_path, analytics_ou_path)
    config["datalake:masterStack"] = settings.master_stack
    config["datalake:ingestion"] = {**(config.get("datalake:ingestion") or {}), "bufferingIntervalSeconds": 60}
    return config


def validate(master: dict[str, Any], template: dict[str, Any], silo_account: str) -> None:
    """Both generated files pass the program's own validation before anything is deployed."""
    parse_stack_config("master", master)
    filled = {k: (silo_account if v == "__ACCOUNT_ID__" else "acceptance" if v == "__SILO_NAME__" else v) for k, v in template.items()}
    parse_stack_config(f"silo-{silo_account}", filled)


def write_project(settings: Settings, project: Path, master: dict[str, Any], template: dict[str, Any]) -> None:
    """A copy of the program in the work directory, with the generated stack files (the checkout stays untouched)."""
    project.mkdir(parents=True, exist_ok=True)
    for name in PROGRAM_FILES:
        source, target = PROJECT_DIR / name, project / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    venv = project / ".venv"
    if not venv.exists() and (PROJECT_DIR / ".venv").exists():
        venv.symlink_to((PROJECT_DIR / ".venv").resolve())
    (project / "Pulumi.master.yaml").write_text(yaml.safe_dump({"config": master}, sort_keys=False))
    (project / "Pulumi.silo-template.yaml").write_text(yaml.safe_dump({"config": template}, sort_keys=False))


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class State:
    """What exists, saved to `<work>/run.json` after every step so `--teardown-only` can finish a kept run."""

    settings: dict[str, Any]
    created: list[str] = field(default_factory=list)
    master_outputs: dict[str, Any] = field(default_factory=dict)
    silo_outputs: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    """stack → path of its state export (for the purge of retained resources)."""


class Run:
    def __init__(self, settings: Settings, session: Any, work: Path, out: Callable[[str], None] = print,
                 python: str = sys.executable, state: Optional[State] = None):
        self.settings = settings
        self.session = session
        self.work = work
        self.project = work / "project"
        self.out = out
        self.python = python
        self.state = state or State(settings={k: str(v) for k, v in asdict(settings).items()})
        passphrase_file = work / "passphrase"
        if not passphrase_file.exists():
            work.mkdir(parents=True, exist_ok=True)
            passphrase_file.write_text(secrets.token_urlsafe(32))
            passphrase_file.chmod(0o600)
        self.env = {"PULUMI_CONFIG_PASSPHRASE": passphrase_file.read_text().strip(), "PULUMI_BACKEND_URL": settings.backend_url}
        self.cli = PulumiCli(self.project, work / "logs" / "pulumi.log", self.env)
        self._silo_session: Optional[Any] = None

    def save(self) -> None:
        (self.work / "run.json").write_text(json.dumps(asdict(self.state), indent=2, default=str))

    def created(self, what: str) -> None:
        if what not in self.state.created:
            self.state.created.append(what)
        self.save()

    def gone(self, what: str) -> None:
        if what in self.state.created:
            self.state.created.remove(what)
        self.save()

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=self.settings.region)

    def silo_session(self) -> Any:
        if self._silo_session is None:
            self._silo_session = aws.assumed_session(self.session, self.settings.silo_account, DEPLOY_ROLE, self.settings.region)
        return self._silo_session

    def silo_client(self, service: str) -> Any:
        return self.silo_session().client(service, region_name=self.settings.region)

    # -- steps -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        org = self.client("organizations")
        organization_id = org.describe_organization()["Organization"]["Id"]
        silo_ou = aws.parent_ou(org, self.settings.silo_account)
        master = master_stack_config(self.settings, organization_id, aws.entity_path(org, silo_ou),
                                     aws.entity_path(org, self.settings.analytics_ou))
        template = silo_template(self.settings, organization_id, master["datalake:siloOuPath"], master["datalake:analyticsOuPath"])
        validate(master, template, self.settings.silo_account)
        write_project(self.settings, self.project, master, template)
        self.save()

    def step_state_bucket(self) -> None:
        s3, bucket, region = self.client("s3"), self.settings.state_bucket, self.settings.region
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
        self.created("state-bucket")
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})

    def step_master(self) -> None:
        self.cli.init_stack(self.settings.master_stack)
        self.created("master")
        self.cli.up(self.settings.master_stack)
        self.state.master_outputs = self.cli.outputs(self.settings.master_stack)
        self.save()

    def runner(self, *extra: str) -> dict[str, Any]:
        """Runs `python -m runner apply` for the silo account; returns its report and the silo's result."""
        import subprocess

        reports = self.work / "reports"
        before = set(reports.glob("*/report.json")) if reports.exists() else set()
        argv = runner_argv(self.python, self.project, self.work, self.settings, *extra)
        log = self.work / "logs" / "runner.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(argv)}\n")
            handle.flush()
            code = subprocess.run(argv, cwd=PROJECT_DIR, env={**os.environ, **self.env}, stdout=handle, stderr=subprocess.STDOUT).returncode
        new = sorted(set(reports.glob("*/report.json")) - before)
        if not new:
            raise AcceptanceError(f"the runner wrote no report (exit {code}); see {log}")
        report = json.loads(new[-1].read_text())
        report["path"] = str(new[-1])
        results = [r for r in report["results"] if r["accountId"] == self.settings.silo_account]
        if code != 0 or len(results) != 1 or results[0]["result"] != "succeeded":
            detail = results[0]["error"] if results else report.get("error") or "no operation for the silo account"
            raise AcceptanceError(f"python -m runner apply exited {code}: {detail} (report {new[-1]}, log {log})")
        report["silo"] = results[0]
        return report

    def step_runner_create(self) -> None:
        self.created("silo")  # from here a failure must tear the silo down too
        result = self.runner()["silo"]
        if result["action"] != "create":
            raise AcceptanceError(f"the first apply was a {result['action']}, not a create: does the backend already hold the silo?")
        self.state.silo_outputs = self.cli.outputs(self.settings.silo_stack)
        self.save()

    def step_runner_update(self) -> None:
        result = self.runner()["silo"]
        if result["action"] != "update" or result["changed"] != 0:
            raise AcceptanceError(f"the second apply was a {result['action']} changing {result['changed']} resources; "
                                  "an unchanged silo must update with 0 changes (see its log: a diff on every up)")

    def step_ingest(self) -> None:
        outputs = self.state.silo_outputs
        credentials = self.silo_session().get_credentials()
        singles, batch = aws.sample_records()
        for record in singles:
            status, body = aws.send(aws.signed_post(outputs["ingestionEndpoint"], DATASET, record, credentials, self.settings.region))
            if status != 200:
                raise AcceptanceError(f"POST /{DATASET} answered {status}: {body}")
        status, body = aws.send(aws.signed_post(outputs["ingestionEndpoint"], f"{DATASET}/batch", batch, credentials, self.settings.region))
        if status != 200 or not isinstance(body, dict) or body.get("failed") != 0:
            raise AcceptanceError(f"POST /{DATASET}/batch answered {status}: {body}")
        keys = aws.wait_for_objects(self.silo_client("s3"), outputs["rawBucketName"], f"{DATASET}/", timeout=FIREHOSE_WAIT_SECONDS)
        self.out(f"   Firehose wrote {len(keys)} object(s) under s3://{outputs['rawBucketName']}/{DATASET}/")

    def step_etl(self) -> None:
        described = aws.run_execution(self.silo_client("stepfunctions"), self.state.silo_outputs["etlStateMachineArn"],
                                      f"acceptance-{self.settings.prefix}", timeout=ETL_WAIT_SECONDS)
        self.out(f"   execution {described['executionArn']} SUCCEEDED")

    def step_query(self) -> None:
        outputs = self.state.silo_outputs
        database = outputs["processedDatabase"]
        rows = aws.athena_query(
            self.silo_client("athena"),
            f"SELECT order_id, amount FROM \"{database}\".\"{DATASET}\" WHERE order_id LIKE 'acceptance-%' ORDER BY order_id",
            database=database, workgroup=outputs["athenaWorkgroup"],
        )
        singles, batch = aws.sample_records()
        expected = aws.rows_of(singles + batch)
        if rows != expected:
            raise AcceptanceError(f"Athena returned {rows}, expected {expected}")
        self.out(f"   Athena returned the {len(rows)} records sent")

    def step_retire(self) -> None:
        org = self.client("organizations")
        org.tag_resource(ResourceId=self.settings.silo_account, Tags=[{"Key": OPT_OUT_TAG[0], "Value": OPT_OUT_TAG[1]}])
        self.created("opt-out-tag")
        report = self.runner("--allow-mass-retire")
        result = report["silo"]
        if result["action"] != "retire-destroy":
            raise AcceptanceError(f"the opted-out silo was planned {result['action']}, not retire-destroy")
        self.gone("silo")
        export = Path(report["path"]).parent / "exports" / f"silo-{self.settings.silo_account}.json"
        if export.exists():
            self.state.exports[self.settings.silo_stack] = str(export)
        self.save()
        org.untag_resource(ResourceId=self.settings.silo_account, TagKeys=[OPT_OUT_TAG[0]])
        self.gone("opt-out-tag")
        if self.in_backend(self.settings.silo_stack):
            raise AcceptanceError(f"{self.settings.silo_stack} is still in the backend after retire-destroy")

    # -- teardown ------------------------------------------------------------------------------------

    def in_backend(self, stack: str) -> bool:
        short = stack.rsplit("/", 1)[-1]
        return any(name == stack or name.rsplit("/", 1)[-1] == short for name in self.cli.stacks())

    def _export(self, stack: str) -> None:
        path = self.work / "exports" / f"{stack.rsplit('/', 1)[-1]}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.cli.export(stack)))
        self.state.exports[stack] = str(path)
        self.save()

    def teardown(self) -> list[str]:
        """Removes what this run created, newest first; returns what is left (empty: nothing)."""
        left: list[str] = []
        created = self.state.created

        def attempt(what: str, action: Callable[[], None]) -> bool:
            try:
                action()
                return True
            except Exception as exc:  # noqa: BLE001 - tear down as much as possible, report the rest
                left.append(f"{what}: {exc}")
                self.out(f"   FAILED: {what}: {exc}")
                return False

        if "opt-out-tag" in created and attempt(
            "remove the opt-out tag", lambda: self.client("organizations").untag_resource(
                ResourceId=self.settings.silo_account, TagKeys=[OPT_OUT_TAG[0]])):
            self.gone("opt-out-tag")
        for label, stack in (("silo", self.settings.silo_stack), ("master", self.settings.master_stack)):
            if label not in created:
                continue
            try:
                present = self.in_backend(stack)
            except Exception:  # noqa: BLE001 - cannot tell: try the destroy, which reports its own error
                present = True
            if not present:
                self.gone(label)  # never got as far as the backend (e.g. the runner failed before creating it)
                continue
            attempt(f"export {stack}", lambda stack=stack: self._export(stack))
            if attempt(f"destroy {stack}", lambda stack=stack: self.cli.destroy(stack)) and attempt(
                    f"remove {stack}", lambda stack=stack: self.cli.remove(stack)):
                self.gone(label)
                self.out(f"   destroyed and removed {stack}")
        if not self.settings.keep_retained:
            for stack, path in list(self.state.exports.items()):
                session = self.silo_session() if "/silo-" in stack else self.session
                retained = aws.retained_resources(json.loads(Path(path).read_text()))
                for line in aws.purge(session, self.settings.region, retained):
                    self.out(f"   {line}")
                    if line.startswith("FAILED"):
                        left.append(line)
                del self.state.exports[stack]
                self.save()
        if "state-bucket" in created:
            if {"master", "silo"} & set(created):
                left.append(f"state bucket {self.settings.state_bucket} kept: it still holds a stack's state")
            elif attempt(f"delete the state bucket {self.settings.state_bucket}", self._delete_state_bucket):
                self.gone("state-bucket")
        return left

    def _delete_state_bucket(self) -> None:
        s3 = self.client("s3")
        aws.empty_bucket(s3, self.settings.state_bucket)
        s3.delete_bucket(Bucket=self.settings.state_bucket)


def execute(run: Run, keep: bool) -> int:
    actions = {
        "state-bucket": run.step_state_bucket, "master": run.step_master, "runner-create": run.step_runner_create,
        "runner-update": run.step_runner_update, "ingest": run.step_ingest, "etl": run.step_etl, "query": run.step_query,
        "retire": run.step_retire,
    }
    plan = [s for s in steps(run.settings) if s.name in actions]
    failure: Optional[str] = None
    run.prepare()
    for number, step in enumerate(plan, 2):
        run.out(f"== {number}. {step.name}")
        try:
            actions[step.name]()
        except Exception as exc:  # noqa: BLE001 - any failure stops the run; teardown follows
            failure = f"step {step.name} failed: {exc}"
            run.out(f"   FAILED: {exc}")
            break
    if keep:
        run.out(f"== kept (--keep): {', '.join(run.state.created) or 'nothing'}; tear down later with "
                f"python -m acceptance --teardown-only --work-dir {run.work}")
        return EXIT_FAILED if failure else EXIT_OK
    run.out("== teardown")
    left = run.teardown()
    if left:
        run.out("Left in the organization (remove by hand):")
        for line in left:
            run.out(f"  - {line}")
    if failure:
        run.out(f"acceptance FAILED: {failure}")
        return EXIT_FAILED
    run.out("acceptance passed" + (" (with leftovers above)" if left else ": every step passed and everything was removed"))
    return EXIT_FAILED if left else EXIT_OK


# -- command line ------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m acceptance", description="Deploy, exercise and tear down the data lake "
                                "in a sandbox AWS organization (docs/acceptance.md).")
    p.add_argument("--silo-account", default="", help="12-digit id of an ACTIVE member account inside an OU")
    p.add_argument("--analytics-ou", default="", help="id of another OU (may be empty), the silo's analytics OU")
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "eu-west-1"))
    p.add_argument("--prefix", default=None, help="namePrefix of every resource (default: acc + 4 random hex digits)")
    p.add_argument("--work-dir", type=Path, default=PROJECT_DIR / "out" / "acceptance")
    p.add_argument("--keep", action="store_true", help="skip the teardown (inspect, then --teardown-only)")
    p.add_argument("--keep-retained", action="store_true", help="leave what the stacks retain (buckets, keys, ...)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--plan", action="store_true", help="print the step plan and costs, change nothing (no credentials needed)")
    p.add_argument("--teardown-only", action="store_true", help="tear down a kept run (its --work-dir holds run.json)")
    return p


def main(argv: Optional[list[str]] = None, session: Optional[Any] = None, cli_check: Optional[Callable[[], Any]] = None,
         confirm: Optional[Callable[[str], str]] = None, out: Callable[[str], None] = print) -> int:
    args = parser().parse_args(argv)
    settings = Settings(silo_account=args.silo_account, analytics_ou=args.analytics_ou, region=args.region,
                        work_dir=args.work_dir, keep=args.keep, keep_retained=args.keep_retained,
                        **({"prefix": args.prefix} if args.prefix else {}))
    if args.plan:
        out(render(settings))
        return EXIT_OK
    if session is None:
        import boto3

        session = boto3.session.Session(region_name=settings.region)
    if args.teardown_only:
        return teardown_only(args.work_dir, session, out)
    from .preflight import check_cli

    checks, settings = preflight(settings, session, lambda: session.client("organizations", region_name="us-east-1"),
                                 cli_check or check_cli)
    out("Preflight:")
    for check in checks:
        out(str(check))
    failed = [c for c in checks if not c.ok]
    if failed:
        out(f"refusing to start: {len(failed)} check(s) failed; nothing was created")
        return EXIT_REFUSED
    work = settings.work_dir / settings.prefix
    settings = replace(settings, work_dir=work)
    out("")
    out(render(settings))
    if not args.yes:
        ask = confirm or (input if sys.stdin.isatty() else None)
        if ask is None:
            out("refusing to start: not a terminal; pass --yes to run unattended")
            return EXIT_REFUSED
        if ask(f"Type the silo account id ({settings.silo_account}) to create all of the above: ").strip() != settings.silo_account:
            out("not confirmed; nothing was created")
            return EXIT_REFUSED
    try:
        return execute(Run(settings, session, work, out), settings.keep)
    except (ConfigError, AcceptanceError) as exc:
        out(f"acceptance FAILED before any step: {exc}")
        return EXIT_FAILED


def teardown_only(work: Path, session: Any, out: Callable[[str], None]) -> int:
    saved = work / "run.json"
    if not saved.exists():
        out(f"no run.json under {work}: give the --work-dir of a kept run (out/acceptance/<prefix>)")
        return EXIT_REFUSED
    state = State(**json.loads(saved.read_text()))
    raw = state.settings
    settings = Settings(silo_account=raw["silo_account"], analytics_ou=raw["analytics_ou"], region=raw["region"],
                        prefix=raw["prefix"], work_dir=work, keep_retained=raw["keep_retained"] == "True",
                        master_account=raw["master_account"])
    left = Run(settings, session, work, out, state=state).teardown()
    for line in left:
        out(f"  - left: {line}")
    return EXIT_FAILED if left else EXIT_OK
