"""Fleet simulation: the runner's promises at 1,000 and 5,000 accounts, against today's behaviour.

    python bench/fleet.py [--fleets 1000,5000] [--duration update=240 ...] [--json]

What runs is the production code: `runner.run.Run` (discovery, the ledger, the planner, the
fingerprints, the executor), `runner.shards` / `runner.distributed` (the plan's items, each child's
`apply --from-plan --items`, `merge-reports`). What is simulated is the outside world, each piece
held to its real interface: Organizations (`offline/fake_organizations.py`, pages of 20 and
botocore's parameter model), S3 (`offline/fake_s3.py`, for the ledger and the plans), the Pulumi
backend (`offline/fake_stacks.py`: an `up` takes the no-change, update or create time of the table),
CodeBuild (a build starts after `codebuild_start`; a project runs at most its concurrency) and the
Distributed Map (children `MaxConcurrency` at a time, `ItemBatcher` cutting the items file in order).

Durations (seconds; `--duration key=value` overrides one):

| key | default | what |
| --- | --- | --- |
| noop_up | 40 | `pulumi up` of a stack with nothing to change (issue 11) |
| update | 180 | `pulumi up` that updates a silo (template change) |
| create | 720 | `pulumi up` of a new silo |
| destroy | 360 | `pulumi destroy` (no scenario retires; kept for overrides) |
| codebuild_start | 60 | from StartBuild to the first command (provisioning, source, install) |
| organizations_call | 0.15 | one Organizations API request (assumed) |
| s3_request | 0.02 | one S3 request (assumed) |
| stack_listing | 1 + 0.004 per stack | `pulumi stack ls` on the S3 backend (assumed) |
| silo_name_read | 1.5 | one `pulumi stack tag ls` (a CLI process; today: once per stack, 8 at a time) |
| versions | 2 | `pulumi version` + `pulumi plugin ls --json` (once per run) |
| master_catalogs | 60 | the targeted master `up` that registers new silos' catalogs after a run (assumed; after "deployed") |

Time. Simulated durations are slept divided by a scale factor F (per scenario, shown in the output).
Of each phase the runner waits in (its `ledger`, `discovery`, `listStacks`, `versions`, `execution`,
`reports` phases), the wall time is multiplied back by F, minus the process's CPU time in it when the
run is alone in the process (that is its own computation: parsing entries and pages); what the
runner only computes (planning, fingerprints) counts at its real duration. Builds that run beside
others (a rollout's children, a targeted run during a rollout) share this process and its GIL, so
their CPU time cannot be told apart and is scaled with the waiting: those figures err slow. A build's time is `codebuild_start` plus its
run; a Distributed Map's is the makespan of its children on `MaxConcurrency` slots; a rollout's is
plan + map + merge. The executor's own overhead inside a scaled phase is scaled too (a few per cent
at the factors used), so the figures err on the slow side.

Scenarios, each for the new runner and for today's (no ledger: every stack deployed, every tag
read, discovery sequential, silo names read per stack, one build at a time for everything):

1. no-change run: the organization and the template as last deployed (goal < 60 s);
2. template change reaching every account: stepfunctions engine (plan, `batchSize` per child,
   `mapMaxConcurrency` children, `maxConcurrency` per child) against one local build (goal < 30 min);
3. a new account during a full rollout: event to its silo deployed (goal < 15 min); the new runner
   runs a targeted build on its own project while the rollout goes on; today's apply waits for the
   rollout's build to finish, then runs over every account (creates first).

It prints the figures and asserts nothing (tests/test_fleet_bench.py checks a small fleet by hand).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Optional, TextIO

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from offline.fake_organizations import FakeAccount, FakeOrganizations, fleet  # noqa: E402
from offline.fake_s3 import FakeS3  # noqa: E402
from offline.fake_stacks import FakeStackOperations, deployed_master_export  # noqa: E402
from runner.cli_args import build_parser  # noqa: E402
from runner.run import Clients, Run  # noqa: E402
from runner.discovery import Backoff  # noqa: E402
from runner.model import StackInfo, stack_name  # noqa: E402
from runner.stack_ops import Versions  # noqa: E402

SILO_OU = "ou-silo-00000000"
BUCKET = "acme-dl-master-pulumi-state-111111111111"
# Which scale factor each of the runner's timed phases waits under (`plan` is computation: 1x).
PHASE_FACTORS = {"ledger": "io", "discovery": "io", "reports": "io", "listStacks": "ops", "versions": "ops", "execution": "ops"}
GOALS = {"noChangeSeconds": 60, "templateChangeSeconds": 30 * 60, "newAccountSeconds": 15 * 60}


@dataclass(frozen=True)
class Durations:
    """The duration table (seconds); see the module docstring."""

    noop_up: float = 40
    update: float = 180
    create: float = 720
    destroy: float = 360
    codebuild_start: float = 60
    organizations_call: float = 0.15
    s3_request: float = 0.02
    stack_listing_base: float = 1.0
    stack_listing_per_stack: float = 0.004
    silo_name_read: float = 1.5
    versions: float = 2.0
    master_catalogs: float = 60.0

    def with_overrides(self, pairs: list[str]) -> "Durations":
        names = {f.name for f in fields(self)}
        values = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            if key not in names:
                raise SystemExit(f"--duration {pair!r}: unknown key; one of {', '.join(sorted(names))}")
            values[key] = float(value)
        return replace(self, **values)


@dataclass(frozen=True)
class Engine:
    """The new runner's settings (datalake:runner.*)."""

    batch_size: int = 40
    map_max_concurrency: int = 25
    max_concurrency: int = 8
    targeted_concurrency: int = 4
    discovery_concurrency: int = 4


class SimClock:
    """The scale factors in force: a simulated duration is slept as seconds / factor.

    Two factors: `io` for Organizations and S3 requests, `ops` for the Pulumi CLI (stack operations,
    listings, versions). Requests are short and the runner computes between them (parsing ledger
    entries, pages of accounts), so their factor stays small: the computation it magnifies stays
    small. Requests made inside a stack operation (the ledger records each outcome) run on the
    executor's threads and count at the operations' factor, like the operation around them.
    """

    def __init__(self) -> None:
        self.factors = {"io": math.inf, "ops": math.inf}

    def set(self, io: float, ops: float) -> None:
        self.factors = {"io": io, "ops": ops}

    def factor(self, kind: str) -> float:
        if kind == "io" and threading.current_thread().name.startswith("stack-op"):
            kind = "ops"
        return self.factors[kind]

    def sleep(self, seconds: float, kind: str = "ops") -> None:
        factor = self.factor(kind)
        if seconds and factor != math.inf:
            time.sleep(seconds / factor)

    def scale(self, kind: str) -> float:
        factor = self.factors[kind]
        return 1.0 if factor == math.inf else factor


class SimStacks(FakeStackOperations):
    """The fake backend with the table's durations: an `up` is a create, an update or a no-op by what it changes."""

    def __init__(self, durations: Durations, clock: SimClock):
        super().__init__(latency=self._latency, versions=Versions(cli="3.272.0", plugins={"aws": "7.51.1", "awsx": "3.11.0"}),
                         exports={"master": deployed_master_export()})
        self.durations, self.clock = durations, clock
        self.deployed: dict[str, dict[str, Any]] = {}
        self.kind: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.done: dict[str, float] = {}

    def _latency(self, operation: str, stack: str) -> float:
        seconds = {"up": getattr(self.durations, self.kind.get(stack, "noop_up")), "destroy": self.durations.destroy, "drift": self.durations.noop_up}[operation]
        self.clock.sleep(seconds)
        return 0.0

    def create_stack(self, stack: str, tags: Any) -> None:
        self.started[stack] = time.perf_counter()
        super().create_stack(stack, tags)

    def set_config(self, stack: str, config: Any) -> None:
        self.started.setdefault(stack, time.perf_counter())
        super().set_config(stack, config)

    def up(self, stack: str, log: TextIO, *, targets: Sequence[str] = ()) -> int:
        if targets:  # the master's catalogs after a run's creates (runner/catalogs.py); not a silo deployment
            self.kind[stack] = "master_catalogs"
            return super().up(stack, log, targets=targets)
        config = self.configs.get(stack)
        self.kind[stack] = "create" if stack not in self.deployed else ("update" if self.deployed[stack] != config else "noop_up")
        changed = super().up(stack, log)
        self.deployed[stack] = dict(config or {})
        self.done[stack] = time.perf_counter()
        return changed

    def list_stacks(self) -> list[StackInfo]:
        self._listing()
        self.clock.sleep(self.durations.silo_name_read * math.ceil(len(self.stacks) / 8))
        return super().list_stacks()

    def list_stack_names(self) -> list[str]:
        self._listing()
        return super().list_stack_names()

    def _listing(self) -> None:
        self.clock.sleep(self.durations.stack_listing_base + self.durations.stack_listing_per_stack * len(self.stacks))

    def silo_name(self, stack: str) -> Optional[str]:
        self.clock.sleep(self.durations.silo_name_read)
        return super().silo_name(stack)

    def versions(self) -> Versions:
        self.clock.sleep(self.durations.versions)
        return super().versions()


class LatentOrganizations(FakeOrganizations):
    def __init__(self, base: FakeOrganizations, durations: Durations, clock: SimClock):
        super().__init__(base.ous, base.accounts.values())
        self.sleep = lambda _: clock.sleep(durations.organizations_call, "io")
        self.latency = 1.0  # any non-zero value: `sleep` decides


class LatentS3(FakeS3):
    def __init__(self, durations: Durations, clock: SimClock):
        super().__init__(latency=1.0, sleep=lambda _: clock.sleep(durations.s3_request, "io"))


@dataclass
class Measured:
    """One CLI run: its exit code, simulated seconds, Organizations calls."""

    code: int
    seconds: float
    calls: dict[str, int] = field(default_factory=dict)
    run: Any = None
    pre_execution: float = 0.0
    """Simulated seconds before the execution phase started."""


class World:
    """One fleet: the organization, the backend, S3, the files the runs read; runs the CLI against them."""

    def __init__(self, accounts: int, durations: Durations, engine: Engine, workdir: Path):
        self.durations, self.engine, self.workdir = durations, engine, workdir
        self.clock = SimClock()
        self.org = LatentOrganizations(fleet(accounts, silo_ou=SILO_OU), durations, self.clock)
        self.stacks = SimStacks(durations, self.clock)
        self.s3 = LatentS3(durations, self.clock)
        master = yaml.safe_load((ROOT / "Pulumi.master.yaml").read_text())
        self.masters = {}
        for name, concurrency in (("new", engine.discovery_concurrency), ("today", 1)):
            runner = {**master["config"].get("datalake:runner", {}), "discoveryConcurrency": concurrency,
                      "maxConcurrency": engine.max_concurrency, "batchSize": engine.batch_size}
            path = workdir / f"master-{name}.yaml"
            path.write_text(yaml.safe_dump({**master, "config": {**master["config"], "datalake:runner": runner}}))
            self.masters[name] = path
        self.templates: dict[str, Path] = {"v1": ROOT / "Pulumi.silo-template.yaml"}
        self.builds = Builds(durations, self.clock)
        self._lock = threading.Lock()

    def template(self, version: int) -> Path:
        """A template that differs from every other version (a rollout of it updates every stack)."""
        name = f"v{version}"
        if name not in self.templates:
            text = self.templates["v1"].read_text().replace("dropzoneExpirationDays: 30", f"dropzoneExpirationDays: {30 + version}")
            path = self.workdir / f"template-{name}.yaml"
            path.write_text(text)
            self.templates[name] = path
        return self.templates[name]

    def cli(self, argv: list[str], *, behaviour: str = "new", template: int = 1, alone: bool = True) -> Measured:
        """Runs `python -m runner <argv>` in process against this world; simulated seconds from its phases.

        `alone`: no other build runs in this process meanwhile, so the CPU time of a phase is this
        run's own computation (counted at 1x). Beside other builds it could be theirs, and it is
        scaled with the waiting instead: the figure errs slow.
        """
        args = [
            *argv,
            f"--silo-ou={SILO_OU}",
            f"--master-config={self.masters[behaviour]}",
            f"--template={self.template(template)}",
            f"--report-to={self.workdir / 'reports'}",
            f"--log-dir={self.workdir / 'logs'}",
            f"--ledger={'off' if behaviour == 'today' else f's3://{BUCKET}/runner-ledger'}",
        ]
        run = Run(build_parser().parse_args(args), Clients(
            organizations=self.org, stack_ops=self.stacks, s3=lambda: self.s3, backoff=Backoff(), iam_for=lambda account: None,
        ))
        started = time.perf_counter()
        code = run.execute()
        wall = time.perf_counter() - started
        # A scaled phase's wall time is waiting (scaled back) plus computation (counted as it is).
        sim = {phase: self._phase_seconds(run, phase, kind, alone) for phase, kind in PHASE_FACTORS.items()}
        seconds = sum(sim.values()) + (wall - sum(run.timings.get(phase, 0.0) for phase in PHASE_FACTORS))
        before = seconds - sim["execution"]
        calls = dict(run.organizations.counts) if run.organizations else {}
        return Measured(code, seconds, calls, run, before)

    def _phase_seconds(self, run: Any, phase: str, kind: str, alone: bool) -> float:
        wall = run.timings.get(phase, 0.0)
        cpu = min(wall, run.cpu_timings.get(phase, 0.0)) if alone else 0.0
        return (wall - cpu) * self.clock.scale(kind) + cpu

    def deployed_after(self, stack: str, measured: Measured) -> float:
        """Simulated seconds from a run's start to `stack` deployed (its operation began with the execution)."""
        return measured.pre_execution + (self.stacks.done[stack] - self.stacks.started[stack]) * self.clock.scale("ops")

    def add_account(self, name: str) -> str:
        leaf = sorted(ou for ou in self.org.ous if ou.startswith("ou-silo-l"))[0]
        account_id = f"{200000000000 + len(self.org.accounts):012d}"
        self.org.add_account(FakeAccount(account_id, name, leaf))
        return account_id


class Builds:
    """CodeBuild as the runner sees it: projects with a concurrency, builds that start after `codebuild_start`."""

    def __init__(self, durations: Durations, clock: SimClock):
        self.durations, self.clock = durations, clock
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def build(self, work) -> tuple[Any, float]:
        """Runs one build (`work()` → Measured); returns it and its simulated seconds (start included)."""
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            self.clock.sleep(self.durations.codebuild_start)
            measured = work()
        finally:
            with self._lock:
                self.running -= 1
        return measured, self.durations.codebuild_start + measured.seconds


def makespan(durations: list[float], slots: int) -> float:
    """When the last of `durations` ends, started in order on `slots` parallel slots (Distributed Map MaxConcurrency)."""
    free = [0.0] * max(1, min(slots, len(durations) or 1))
    for duration in durations:
        earliest = min(range(len(free)), key=free.__getitem__)
        free[earliest] += duration
    return max(free) if durations else 0.0


def stepfunctions_rollout(world: World, template: int, execution: str, during=None) -> dict[str, Any]:
    """The state machine: plan build, Distributed Map of child builds, merge build. `during()` runs beside it."""
    alone = during is None
    engine = world.engine
    uri = f"s3://{BUCKET}/runner-plans/{execution}/plan.json"
    builds_before = world.builds.peak
    world.builds.peak = 0
    extra = threading.Thread(target=during) if during else None
    if extra:
        extra.start()
    plan, plan_seconds = world.builds.build(
        lambda: world.cli(["plan", f"--plan-json={uri}", f"--batch-size={engine.batch_size}"], template=template, alone=alone)
    )
    items = json.loads(world.s3.get_object(Bucket=BUCKET, Key=f"runner-plans/{execution}/items.json")["Body"].read())
    batches = [items[start:start + engine.batch_size] for start in range(0, len(items), engine.batch_size)]
    children: list[float] = [0.0] * len(batches)
    codes: list[int] = [0] * len(batches)
    slots = threading.Semaphore(engine.map_max_concurrency)

    def child(index: int) -> None:
        with slots:
            batch = json.dumps(batches[index], separators=(",", ":"))
            measured, seconds = world.builds.build(
                lambda: world.cli(["apply", f"--from-plan={uri}", f"--items={batch}"], template=template, alone=False)
            )
            children[index], codes[index] = seconds, measured.code

    threads = [threading.Thread(target=child, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merge, merge_seconds = world.builds.build(lambda: world.cli(["merge-reports", f"--from-plan={uri}"], template=template, alone=alone))
    if extra:
        extra.join()
    peak, world.builds.peak = world.builds.peak, max(builds_before, world.builds.peak)
    return {
        "seconds": plan_seconds + makespan(children, engine.map_max_concurrency) + merge_seconds,
        "planSeconds": plan_seconds,
        "mapSeconds": makespan(children, engine.map_max_concurrency),
        "mergeSeconds": merge_seconds,
        "batches": len(batches),
        "operations": len(items),
        "failedBatches": sum(1 for code in codes if code),
        "mergeExitCode": merge.code,
        "peakBuilds": peak,
    }


def _total(calls: dict[str, int]) -> int:
    return sum(calls.values())


def simulate(accounts: int, durations: Durations, engine: Engine, factors: dict[str, float], event_after: float) -> dict[str, Any]:
    """Every scenario on one fleet of `accounts`; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        world = World(accounts, durations, engine, Path(tmp))
        first = world.cli(["apply"])  # the first deployment of the fleet is set-up, not measured (no sleeps)
        assert first.code == 0, "the initial deployment failed"

        world.clock.set(io=factors["io"], ops=factors["noChange"])
        no_change = world.cli(["apply"])
        sweep = world.cli(["apply", "--tag-sweep"])

        world.clock.set(io=factors["io"], ops=factors["rollout"])
        rollout = stepfunctions_rollout(world, template=2, execution="template-change")

        new_account: dict[str, Any] = {}

        def event() -> None:
            time.sleep(event_after / world.clock.scale("ops"))
            account = world.add_account("Event Account")
            measured, seconds = world.builds.build(lambda: world.cli(["apply", f"--account={account}"], template=3, alone=False))
            new_account.update(
                account=account, code=measured.code, runSeconds=seconds,
                seconds=durations.codebuild_start + world.deployed_after(stack_name(account), measured),
            )

        during = stepfunctions_rollout(world, template=3, execution="rollout-with-event", during=event)

        # Today's behaviour, after the new runner's scenarios (it writes no ledger).
        world.clock.set(io=factors["todayIo"], ops=factors["todayNoChange"])
        today_no_change = world.cli(["apply"], behaviour="today", template=3)
        world.clock.set(io=factors["todayIo"], ops=factors["todayRollout"])
        today_rollout, today_rollout_seconds = world.builds.build(lambda: world.cli(["apply"], behaviour="today", template=4))
        # The event came `event_after` into that rollout; its apply waited on the one-build project until
        # the rollout's build ended, then ran over every account (creates first).
        account = world.add_account("Queued Event Account")
        today_event, _ = world.builds.build(lambda: world.cli(["apply"], behaviour="today", template=4))
        waited = max(0.0, today_rollout_seconds - event_after)
        today_new = waited + durations.codebuild_start + world.deployed_after(stack_name(account), today_event)

    peak = max(rollout["peakBuilds"], during["peakBuilds"])
    return {
        "accounts": accounts,
        "factors": factors,
        "new": {
            "noChangeSeconds": no_change.seconds,
            "noChangeOrganizationsCalls": _total(no_change.calls),
            "noChangeCallsByOperation": no_change.calls,
            "noChangeUnchanged": no_change.run.plan.to_json() and sum(1 for op in no_change.run.plan.operations if op.unchanged),
            "dailySweepSeconds": sweep.seconds,
            "dailySweepOrganizationsCalls": _total(sweep.calls),
            "templateChangeSeconds": rollout["seconds"],
            "templateChange": rollout,
            "codebuildConcurrentBuilds": peak,
            "codebuildQuotaNeeded": engine.map_max_concurrency + engine.targeted_concurrency,
            "newAccountSeconds": new_account.get("seconds"),
            "newAccountExitCode": new_account.get("code"),
        },
        "today": {
            "noChangeSeconds": today_no_change.seconds,
            "noChangeOrganizationsCalls": _total(today_no_change.calls),
            "noChangeCallsByOperation": today_no_change.calls,
            "templateChangeSeconds": today_rollout_seconds,
            "codebuildConcurrentBuilds": 1,
            "codebuildQuotaNeeded": 1,
            "newAccountSeconds": today_new,
            "newAccountWaitedSeconds": waited,
        },
    }


def _minutes(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table(result: dict[str, Any], engine: Engine) -> str:
    new, today = result["new"], result["today"]
    rows = [
        ("no-change run: wall time", "< 60 s", _minutes(new["noChangeSeconds"]), _minutes(today["noChangeSeconds"]),
         new["noChangeSeconds"] < GOALS["noChangeSeconds"]),
        ("no-change run: Organizations calls", "", str(new["noChangeOrganizationsCalls"]), str(today["noChangeOrganizationsCalls"]), None),
        ("daily tag sweep run: wall / calls", "", f"{_minutes(new['dailySweepSeconds'])} / {new['dailySweepOrganizationsCalls']}", "(every run)", None),
        (f"template change to every account ({new['templateChange']['batches']} shards x {engine.max_concurrency})", "< 30 min",
         _minutes(new["templateChangeSeconds"]), _minutes(today["templateChangeSeconds"]),
         new["templateChangeSeconds"] < GOALS["templateChangeSeconds"]),
        ("CodeBuild concurrent builds: seen / quota needed", "", f"{new['codebuildConcurrentBuilds']} / {new['codebuildQuotaNeeded']}", "1 / 1", None),
        ("new account during a rollout: event to deployed", "< 15 min", _minutes(new["newAccountSeconds"]), _minutes(today["newAccountSeconds"]),
         (new["newAccountSeconds"] or math.inf) < GOALS["newAccountSeconds"]),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{result['accounts']} accounts (scale factors: {', '.join(f'{k} {v:g}' for k, v in result['factors'].items())})",
             f"{'figure':<{width}}  {'goal':>8}  {'new':>14}  {'today':>14}  met"]
    for name, goal, new_value, today_value, met in rows:
        lines.append(f"{name:<{width}}  {goal:>8}  {new_value:>14}  {today_value:>14}  {'' if met is None else ('yes' if met else 'NO')}")
    return "\n".join(lines)


def factors_for(accounts: int, durations: Durations, engine: Engine, target: float) -> dict[str, float]:
    """Scale factors that make each scenario take about `target` real seconds.

    Only the factor comes from these estimates; the figures are measured. The smaller the factor,
    the less the runner's own CPU time inside a scaled phase weighs (the no-change run's 20 keeps it
    to well under a second).
    """
    waves = math.ceil(math.ceil(accounts / engine.batch_size) / engine.map_max_concurrency)
    rollout = 3 * durations.codebuild_start + waves * math.ceil(engine.batch_size / engine.max_concurrency) * durations.update
    today_waves = math.ceil(accounts / engine.max_concurrency)
    return {
        "io": 4.0,
        "todayIo": 20.0,
        "noChange": 20.0,
        "rollout": max(50.0, rollout / target),
        "todayNoChange": max(100.0, today_waves * (durations.noop_up + durations.silo_name_read) / target),
        "todayRollout": max(100.0, today_waves * durations.update / target),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--fleets", default="1000,5000", help="fleet sizes, comma-separated (default 1000,5000)")
    parser.add_argument("--duration", action="append", default=[], metavar="KEY=SECONDS", help="override one duration of the table")
    parser.add_argument("--event-after", type=float, default=300.0, help="simulated seconds into the rollout the new account's event comes (default 300)")
    parser.add_argument("--batch-size", type=int, default=Engine.batch_size)
    parser.add_argument("--map-max-concurrency", type=int, default=Engine.map_max_concurrency)
    parser.add_argument("--max-concurrency", type=int, default=Engine.max_concurrency)
    parser.add_argument("--target-seconds", type=float, default=10.0, help="about how long each long scenario takes in real time (default 10)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the runner logs every step; the figures are the output

    durations = Durations().with_overrides(args.duration)
    engine = Engine(batch_size=args.batch_size, map_max_concurrency=args.map_max_concurrency, max_concurrency=args.max_concurrency)
    results = []
    for accounts in (int(n) for n in args.fleets.split(",")):
        # The runs print their plan and summary tables; the bench prints figures.
        with contextlib.redirect_stdout(io.StringIO()):
            results.append(simulate(accounts, durations, engine, factors_for(accounts, durations, engine, args.target_seconds), args.event_after))
    if args.json:
        print(json.dumps({"durations": durations.__dict__, "engine": engine.__dict__, "goals": GOALS, "loadAverage": os.getloadavg()[0],
                          "fleets": results}, default=str))
        return 0
    print("Fleet simulation (bench/fleet.py): simulated time of the production runner code; durations in the module docstring")
    print(f"load average while it ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a loaded machine slows the scaled phases: figures err slow)")
    for result in results:
        print()
        print(table(result, engine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
