"""A fake `StackOperations` for the runner's tests and `bench/rollout.py`.

It keeps stacks in memory, sleeps a configurable latency per operation, fails or reports a lock on
chosen stacks, and records every call and how many operations overlapped.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Optional, TextIO, Union

from components.shared.errors import StackLockedError, StackOperationError
from runner.model import StackInfo
from runner.stack_ops import SILO_NAME_READERS, Versions

Latency = Union[float, Callable[[str, str], float]]


class FakeStackOperations:
    """In-memory stacks with latencies and failures.

    - `latency`: seconds each up/destroy/drift takes, or `f(operation, stack) -> seconds`.
    - `failures`: stack → error line; `up`, `destroy` and `preview_drift` of that stack fail with it.
    - `locked`: stack → how many times its next operations find it locked (`StackLockedError`).
    - `drift`: stack → the changes `preview_drift` reports.
    - `export_failures`: stacks whose export fails.
    - `exports`: stack → the state `export` returns (default: a deployment without resources).
    - `versions`: what `versions()` answers (the CLI and plugin versions of fingerprints).
    - `listing_latency`: seconds a backend listing takes; `silo_name_latency`: seconds one stack's
      silo-name read takes (a CLI call per stack in production).
    """

    def __init__(
        self,
        stacks: Iterable[StackInfo] = (),
        *,
        latency: Latency = 0.0,
        failures: Mapping[str, str] | None = None,
        locked: Mapping[str, int] | None = None,
        drift: Mapping[str, list[str]] | None = None,
        export_failures: Iterable[str] = (),
        resources_per_stack: int = 12,
        exports: Mapping[str, dict[str, Any]] | None = None,
        versions: Versions = Versions(cli="3.272.0", plugins={"aws": "7.51.1", "awsx": "3.11.0"}),
        listing_latency: float = 0.0,
        silo_name_latency: float = 0.0,
    ):
        self.stacks = {s.name: s for s in stacks}
        self.latency = latency
        self.failures = dict(failures or {})
        self.locked = dict(locked or {})
        self.drift = dict(drift or {})
        self.export_failures = set(export_failures)
        self.resources_per_stack = resources_per_stack
        self.exports = dict(exports or {})
        self.targets: dict[str, list[str]] = {}
        """Stack → the URNs its last targeted `up` was limited to."""
        self.cli_versions = versions
        self.listing_latency = listing_latency
        self.silo_name_latency = silo_name_latency
        self.calls: list[tuple[str, str]] = []
        self.configs: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.removed: dict[str, bool] = {}
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def _record(self, operation: str, stack: str) -> None:
        with self._lock:
            self.calls.append((operation, stack))

    def _work(self, operation: str, stack: str, log: TextIO) -> None:
        self._record(operation, stack)
        with self._lock:
            if self.locked.get(stack, 0) > 0:
                self.locked[stack] -= 1
                raise StackLockedError(f"{stack}: {operation} found the stack locked by another update")
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            seconds = self.latency(operation, stack) if callable(self.latency) else self.latency
            time.sleep(seconds)
            log.write(f"{operation} {stack}: simulated {seconds:.3f}s\n")
            if stack in self.failures:
                raise StackOperationError(f"{stack}: {operation} failed", self.failures[stack])
        finally:
            with self._lock:
                self.running -= 1

    def list_stacks(self) -> list[StackInfo]:
        """The stacks with their silo names, as the Automation API lists them: one listing, one read per stack."""
        self._record("list", "*")
        time.sleep(self.listing_latency + self.silo_name_latency * math.ceil(len(self.stacks) / SILO_NAME_READERS))
        return list(self.stacks.values())

    def list_stack_names(self) -> list[str]:
        self._record("list", "*")
        time.sleep(self.listing_latency)
        return list(self.stacks)

    def silo_name(self, stack: str) -> Optional[str]:
        self._record("silo-name", stack)
        time.sleep(self.silo_name_latency)
        found = self.stacks.get(stack)
        return found.silo_name if found else None

    def versions(self) -> Versions:
        self._record("versions", "*")
        return self.cli_versions

    def create_stack(self, stack: str, tags: Mapping[str, str]) -> None:
        self._record("create", stack)
        with self._lock:
            self.stacks.setdefault(stack, StackInfo(stack, tags.get("datalake:silo-name")))
            self.tags[stack] = dict(tags)

    def set_config(self, stack: str, config: Mapping[str, Any]) -> None:
        self._record("set_config", stack)
        self.configs[stack] = dict(config)

    def up(self, stack: str, log: TextIO, *, targets: Sequence[str] = ()) -> int:
        if targets:
            self.targets[stack] = list(targets)
        self._work("up", stack, log)
        return self.resources_per_stack

    def preview_drift(self, stack: str, log: TextIO) -> list[str]:
        self._work("drift", stack, log)
        return list(self.drift.get(stack, []))

    def destroy(self, stack: str, log: TextIO) -> int:
        self._work("destroy", stack, log)
        return self.resources_per_stack

    def refresh(self, stack: str, log: TextIO, *, clear_pending_creates: bool = False) -> int:
        self._work("refresh", stack, log)
        return 0

    def export(self, stack: str) -> dict[str, Any]:
        self._record("export", stack)
        if stack in self.export_failures:
            raise StackOperationError(f"{stack}: export failed", "error: access denied reading the state")
        return self.exports.get(stack) or {"version": 3, "deployment": {"stack": stack, "resources": []}}

    def remove(self, stack: str, *, force: bool) -> None:
        self._record("remove", stack)
        with self._lock:
            self.stacks.pop(stack, None)
            self.removed[stack] = force


def deployed_master_export(stack: str = "master") -> dict[str, Any]:
    """The export of a deployed master as far as the runner reads it: its `OrgAnalytics` component,
    under which the runner's targeted update adds or removes per-silo catalogs (runner/catalogs.py)."""
    analytics = "datalake:analytics:OrgAnalytics"
    urn = f"urn:pulumi:{stack}::datalake::datalake:master:MasterAccount${analytics}::master-analytics"
    return {"version": 3, "deployment": {"stack": stack, "resources": [{"urn": urn, "type": analytics, "custom": False}]}}


def export_of(recording: Any) -> dict[str, Any]:
    """What `pulumi stack export` would return after deploying a program recorded under mocks.

    One state entry per recorded resource (custom and component) with the fields the runner reads:
    the engine's URN (full parent type chain, not the mock monitor's), type, id, parent, inputs,
    outputs and `retainOnDelete`, as the engine writes them.
    """
    from offline.urns import registrations

    resources = []
    for r, registration in zip(recording.resources, registrations(recording)):
        if r.type.startswith("pulumi:providers:") or r.type == "pulumi:pulumi:StackReference":
            continue
        entry: dict[str, Any] = {"urn": registration.urn, "custom": r.custom, "type": r.type, "parent": registration.parent or "",
                                 "inputs": r.inputs, "outputs": r.outputs}
        if r.custom:
            entry["id"] = r.outputs.get("id", "")
        if r.retain_on_delete:
            entry["retainOnDelete"] = True
        resources.append(entry)
    return {"version": 3, "deployment": {"manifest": {"time": "2026-01-01T00:00:00Z"}, "resources": resources}}
