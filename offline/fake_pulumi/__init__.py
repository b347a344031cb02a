"""A fake `pulumi` executable for testing the real `AutomationStackOperations` without the CLI.

`FakePulumi(root)` writes `<root>/bin/pulumi`, a wrapper that runs `cli.py` with this interpreter.
Put `<root>/bin` first on PATH (`activate(monkeypatch)`), script failures with `rule(...)`, and read
what the SDK asked for with `calls()`. See `README.md` beside this file for the behaviour.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

CLI = Path(__file__).resolve().parent / "cli.py"


@dataclass(frozen=True)
class FakeCall:
    """One recorded invocation of the fake CLI."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    pid: int
    started: float
    ended: Optional[float]
    exit: Optional[int]
    command: Optional[str]
    """The subcommand path, e.g. `stack tag ls`."""
    stack: Optional[str]
    """The fully qualified stack the call named (`--stack` or a positional name), None if none."""
    raw: dict[str, Any]

    @property
    def workspace_writes(self) -> list[str]:
        """Paths of the current-stack workspace file this call wrote or removed."""
        return list(self.raw.get("workspaceWrites", []))

    @property
    def used_current_stack(self) -> bool:
        """The call named no stack and fell back to the workspace's current stack."""
        return bool(self.raw.get("usedCurrentStack"))

    @property
    def children(self) -> list[int]:
        return list(self.raw.get("children", []))


class FakePulumi:
    """Installs and scripts the fake CLI under `root`."""

    def __init__(self, root: Path, *, version: str = "3.272.0"):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.behaviour: dict[str, Any] = {"version": version, "rules": []}
        self._save()
        wrapper = self.bin / "pulumi"
        # `-S` skips `site` (a fifth of the start-up); the packages the fake may import come from PYTHONPATH.
        packages = os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
        wrapper.write_text(
            "#!/bin/sh\n"
            f"FAKE_PULUMI_ROOT={shlex.quote(str(root))} PYTHONPATH={shlex.quote(packages)} "
            f"exec {shlex.quote(sys.executable)} -S {shlex.quote(str(CLI))} \"$@\"\n"
        )
        wrapper.chmod(0o755)

    def activate(self, monkeypatch: Any, *, pulumi_home: Optional[Path] = None) -> Path:
        """Puts the fake first on PATH and points PULUMI_HOME at a directory of the test; returns that home."""
        home = pulumi_home or self.root / "pulumi-home"
        home.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("PULUMI_HOME", str(home))
        return home

    def _save(self) -> None:
        (self.root / "behaviour.json").write_text(json.dumps(self.behaviour, indent=2))

    def configure(self, **settings: Any) -> None:
        """Top-level behaviour: `version`, `resources_per_stack`, `outputs` (output → config key), `drift`."""
        self.behaviour.update(settings)
        self._save()

    def rule(self, command: str, effect: str, *, stack: Optional[str] = None, times: Optional[int] = None, **options: Any) -> None:
        """Scripts `effect` (`locked`, `fail`, `hang`, `delay`) for `command` (e.g. `up`, `stack rm`), optionally one stack, `times` times."""
        rule: dict[str, Any] = {"command": command, "effect": effect, **options}
        if stack:
            rule["stack"] = stack
        if times is not None:
            rule["times"] = times
        self.behaviour["rules"].append(rule)
        self._save()

    def seed(self, project_dir: Path, backend_url: str, stacks: dict[str, dict[str, Any]]) -> None:
        """Creates deployed stacks directly in the backend, `{name: {"tags": {...}, "config": {...}}}` (not recorded)."""
        env = {**os.environ, "PULUMI_BACKEND_URL": backend_url}
        subprocess.run([str(self.bin / "pulumi"), "__seed", json.dumps(stacks)], cwd=project_dir, env=env, check=True,
                       capture_output=True)

    @staticmethod
    def pending_operation(stack: str, kind: str, name: str, *, project: str = "datalake", type_: str = "datalake:fake:Resource",
                          inputs: Optional[dict[str, Any]] = None, id_: str = "") -> dict[str, Any]:
        """A `pending_operations` entry as the engine writes it (`{"resource": {...}, "type": "creating"}`), for
        `seed(..., {stack: {"pending_operations": [...]}})` or a `hang` rule's `pending=[...]`."""
        short = stack.rsplit("/", 1)[-1]
        resource: dict[str, Any] = {
            "urn": f"urn:pulumi:{short}::{project}::{type_}::{name}", "custom": True, "type": type_,
            "inputs": inputs or {}, "outputs": {},
        }
        if id_:
            resource["id"] = id_
        return {"resource": resource, "type": kind}

    def calls(self) -> list[FakeCall]:
        """Every recorded call, in the order they started (`seed` calls left out)."""
        records = [json.loads(p.read_text()) for p in sorted((self.root / "calls").glob("*.json"))]
        records = [r for r in records if r["command"] != "__seed"]
        records.sort(key=lambda r: r["started"])
        return [
            FakeCall(r["argv"], r["cwd"], r["env"], r["pid"], r["started"], r["ended"], r["exit"], r["command"], r["stack"], r)
            for r in records
        ]

    def backend_dir(self, backend_url: str) -> Path:
        """Where a backend's state lives: the directory of a `file://` URL (other URLs map under the root)."""
        if backend_url.startswith("file://"):
            return Path(backend_url[len("file://"):].split("?", 1)[0])
        import hashlib

        return self.root / "backends" / hashlib.sha1(backend_url.encode()).hexdigest()[:12]

    def locks(self, backend_url: str) -> list[Path]:
        """Lock files left in the backend (`.pulumi/locks/organization/<project>/<stack>/*.json`)."""
        return sorted((self.backend_dir(backend_url) / ".pulumi" / "locks").glob("*/*/*/*.json"))
