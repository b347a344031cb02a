"""The fake CLI's operations (`up`, `destroy`, `preview`, `refresh`, the fake-only `__seed`) and the
scripted failures of `behaviour.json` (locked, fail, delay, hang)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import uuid
from typing import Any, Optional

# Imported by plain name: cli.py runs as a script, so its directory is first on sys.path.
from store import DIY_LOCKED, Context, Fail, dump_yaml, fake_lock, now_iso, pulumi_home, secret, short_name

# Commands that take the DIY backend's stack lock (pkg/backend/diy: Update, Destroy, RemoveStack; Preview does not).
LOCKING = {"up", "destroy", "refresh", "stack rm", "stack import"}
# Pending operation types (sdk/go/common/apitype: OperationType; pkg/resource: also `importing`).
CREATING = "creating"


class Events:
    """The engine event stream: JSON lines into a file, or gRPC to the SDK's server (`tcp://host:port`, CLI > 3.205)."""

    def __init__(self, target: Optional[str]):
        self.target = target
        self.events: list[dict[str, Any]] = []

    def add(self, **event: Any) -> None:
        self.events.append({"sequence": len(self.events) + 1, "timestamp": int(time.time()), **event})

    def send(self) -> None:
        if not self.target:
            return
        if self.target.startswith("tcp://"):
            import grpc
            from pulumi.runtime.proto import events_pb2, events_pb2_grpc

            with grpc.insecure_channel(self.target[len("tcp://"):]) as channel:
                stub = events_pb2_grpc.EventsStub(channel)
                stub.StreamEvents(iter([events_pb2.EventRequest(event=json.dumps(e)) for e in self.events]), timeout=30)
        else:
            with open(self.target, "a", encoding="utf-8") as log:
                for event in self.events:
                    log.write(json.dumps(event) + "\n")


def program_resources(ctx: Context, stack: str) -> list[dict[str, Any]]:
    """What "running the program" yields: the stack resource with outputs from config, and a few children."""
    config = ctx.project.stack_config(stack)
    _, project, name = stack.split("/")
    outputs_from = ctx.behaviour.data.get("outputs", {"siloName": "datalake:siloName"})
    outputs: dict[str, Any] = {out: config[key] for out, key in outputs_from.items() if key in config}
    outputs["fakeSecret"] = secret(f"secret-of-{name}")
    root_urn = f"urn:pulumi:{name}::{project}::pulumi:pulumi:Stack::{project}-{name}"
    resources = [{"urn": root_urn, "custom": False, "type": "pulumi:pulumi:Stack", "outputs": outputs}]
    for index in range(int(ctx.behaviour.data.get("resources_per_stack", 2))):
        resources.append({
            "urn": f"urn:pulumi:{name}::{project}::datalake:fake:Resource::r{index}", "custom": False,
            "type": "datalake:fake:Resource", "parent": root_urn, "inputs": {}, "outputs": {},
        })
    return resources


def summary_line(changes: dict[str, int]) -> str:
    words = {"create": "created", "same": "unchanged", "delete": "deleted", "update": "updated"}
    return ", ".join(f"{n} {words.get(op, op)}" for op, n in changes.items())


def run_operation(ctx: Context, kind: str) -> None:
    """`up`, `destroy` and `preview`: lock (not for preview), change the state, emit events, write history."""
    stack = ctx.stack()
    ctx.backend.require(stack)
    events = Events(ctx.flags.get("--event-log"))
    display = ctx.backend.display(stack)
    heading = {"up": "Updating", "destroy": "Destroying", "preview": "Previewing update", "refresh": "Refreshing"}[kind]
    started = now_iso()
    lock = ctx.backend.locked(stack, ctx.call) if kind in LOCKING else contextlib.nullcontext()
    with lock:
        print(f"{heading} ({display})", flush=True)
        pending_before = ctx.backend.pending_operations(stack)
        if ctx.pending_hang:
            interrupted = list(ctx.pending_hang.get("pending") or [])
            # The engine writes a pending operation into the checkpoint as each step begins; a killed CLI leaves them there.
            ctx.backend.save_resources(stack, ctx.backend.resources(stack), pending=pending_before + interrupted)
            try:
                hang(ctx, ctx.pending_hang)
            finally:
                # A graceful cancel lets in-flight steps finish, so their pending operations are closed.
                ctx.backend.save_resources(stack, ctx.backend.resources(stack), pending=pending_before)
        events.add(preludeEvent={"config": {}})
        old = {r["urn"]: r for r in ctx.backend.resources(stack)}
        if pending_before and kind == "up":
            # pkg/resource/deploy/deployment_executor.go printPendingOperationsWarning
            listing = "".join(f"  * {op['resource']['urn']}, interrupted while {op['type']}\n" for op in pending_before)
            print(f"warning: Attempting to deploy or update resources with {len(pending_before)} pending operations "
                  f"from previous deployment.\n{listing}", file=sys.stderr)
        if kind == "refresh":
            steps = [("refresh", urn) for urn in old]
            new = list(old.values())
        elif kind == "destroy":
            steps = [("delete", urn) for urn in old]
            new: list[dict[str, Any]] = []
        else:
            new = program_resources(ctx, stack)
            drift = {urn: op for op, urn in ctx.behaviour.data.get("drift", {}).get(short_name(stack), [])}
            steps = [(drift.get(r["urn"], "same" if r["urn"] in old else "create"), r["urn"]) for r in new]
        changes: dict[str, int] = {}
        for op, urn in steps:
            counted = "same" if op == "refresh" else op  # a refresh that finds a resource as recorded
            changes[counted] = changes.get(counted, 0) + 1
            events.add(resourcePreEvent={"metadata": {"op": op, "urn": urn, "type": urn.split("::")[2], "provider": ""}})
            print(f"    {op} {urn}")
        events.add(summaryEvent={"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": changes, "PolicyPacks": {}})
        events.add(cancelEvent={})
        if kind != "preview":
            # pkg/backend/snapshot.go: pending CREATEs of the base snapshot are carried into the new one (they need a
            # person); every other pending operation is dropped (refresh re-read those resources).
            kept = [op for op in pending_before if op.get("type") == CREATING]
            if kind == "refresh" and ctx.flag("--clear-pending-creates"):
                kept = []
            ctx.backend.save_resources(stack, new, pending=kept)
            with fake_lock():
                meta = ctx.backend.meta(stack)
                meta["history"].append({
                    "kind": {"up": "update"}.get(kind, kind), "startTime": started, "endTime": now_iso(),
                    "message": ctx.flags.get("--message", ""), "environment": {"exec.kind": ctx.flags.get("--exec-kind", "cli")},
                    "config": {}, "result": "succeeded", "version": len(meta["history"]) + 1, "resourceChanges": changes,
                })
                ctx.backend.save_meta(stack, meta)
            install_plugin_once(ctx)
    events.send()
    print(f"\nResources:\n    {summary_line(changes)}\n\nDuration: 0s")


def install_plugin_once(ctx: Context) -> None:
    """What a first `up` does on a fresh machine: download the provider plugin into `$PULUMI_HOME/plugins`."""
    plugin = pulumi_home() / "plugins" / "resource-aws-v7.51.1"
    with fake_lock():
        if not plugin.exists():
            plugin.mkdir(parents=True)
            (plugin / "pulumi-resource-aws").write_text(f"installed by pid {os.getpid()}\n")
            ctx.call.record["pluginInstalled"] = str(plugin)
            ctx.call.save()


def cmd_seed(ctx: Context) -> None:
    """Fake-only `pulumi __seed '<json>'`: creates deployed stacks in one call, `{stack: {"tags": {...}, "config": {...}}}`."""
    for name, spec in json.loads(ctx.positionals[0]).items():
        stack = ctx.backend.parse(name)
        if spec.get("config"):
            dump_yaml(ctx.project.stack_file(stack), {"config": spec["config"]})
        ctx.backend.save_resources(stack, program_resources(ctx, stack), {"type": "passphrase", "state": {}},
                                   pending=list(spec.get("pending_operations") or []))
        entry = {"kind": "update", "startTime": now_iso(), "endTime": now_iso(), "message": "seeded", "environment": {},
                 "config": {}, "result": "succeeded", "version": 1, "resourceChanges": {"create": 1 + int(ctx.behaviour.data.get("resources_per_stack", 2))}}
        ctx.backend.save_meta(stack, {"tags": dict(spec.get("tags", {})), "history": [entry]})


def hang(ctx: Context, rule: dict[str, Any]) -> None:
    """Hangs like a stuck update, with a child process (a language host or provider plugin) beside it."""
    ignore = bool(rule.get("ignore_sigint"))
    code = "import signal, time\n" + ("signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if ignore else "") + "time.sleep(3600)\n"
    import subprocess

    child = subprocess.Popen([sys.executable, "-S", "-c", code])
    ctx.call.record["children"].append(child.pid)
    ctx.call.record["hanging"] = True
    ctx.call.save()

    def cancelled(signum: int, frame: Any) -> None:
        # The real CLI's first SIGINT cancels gracefully: the update stops and its lock is released.
        child.terminate()
        raise Fail("update canceled")

    signal.signal(signal.SIGINT, signal.SIG_IGN if ignore else cancelled)
    print("  creating (hanging, as scripted)...", flush=True)
    time.sleep(float(rule.get("seconds", 3600)))
    child.terminate()


def apply_rule(ctx: Context, stack: Optional[str]) -> None:
    """Applies the first matching rule of `behaviour.json`; a hang of up/destroy/preview waits until the lock is held."""
    rule = ctx.behaviour.rule_for(ctx.command, stack)
    if rule is None:
        return
    ctx.call.record["rule"] = rule
    ctx.call.save()
    effect = rule.get("effect")
    if effect == "locked":
        where = f"{(os.environ.get('PULUMI_BACKEND_URL') or '').rstrip('/')}/.pulumi/locks/{stack}/{uuid.uuid4()}.json"
        raise Fail(DIY_LOCKED[len("error: "):] + f"\n  {where}: created by runner@elsewhere (pid 4242) at {now_iso()}")
    if effect == "fail":
        raise Fail(rule.get("message", "scripted failure"))
    if effect == "delay":
        time.sleep(float(rule.get("seconds", 1)))
    elif effect == "hang":
        if ctx.command in ("up", "destroy", "preview", "refresh") and rule.get("after_lock", True):
            ctx.pending_hang = rule
        else:
            hang(ctx, rule)
    elif effect is not None:
        raise Fail(f"fake pulumi: unknown effect {effect!r} in behaviour.json")
