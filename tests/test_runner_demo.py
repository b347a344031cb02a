"""The README's main job: `python -m runner demo` on moto_server, and the file-backend stack reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runner.demo import write_file_backend
from runner.stack_ops import FileBackendStacks

PROJECT = Path(__file__).resolve().parent.parent


def test_demo_prints_a_plan_with_every_action(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "runner", "demo", "--offline", f"--report-to={tmp_path}"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "== discover" in out and "== plan (dry run" in out
    plan = out.split("== plan (dry run", 1)[1].split("== what if", 1)[0]
    for action, reason in [
        ("create", "new ACTIVE account"),
        ("update", "ACTIVE account with a stack"),
        ("retire-destroy", "account moved out of the silo OU"),
        ("retire-destroy", "account opted out (datalake:silo=false)"),
        ("retire-forget", "account is SUSPENDED"),
        ("retire-forget", "account is no longer in the organization"),
    ]:
        assert any(action in line and reason in line for line in plan.splitlines()), f"no {action} line for {reason!r}"
    assert "silos/emea/prod" in out  # nested OUs were walked
    # One silo with a profile (by tag), one with its own account file, each with its overridden keys.
    rows = {line.split()[1] + (" " + line.split()[2] if line.split()[1] == "Clinical" else ""): line for line in plan.splitlines()[2:] if line[:1].isdigit()}
    assert rows["Genomics"].endswith("big-warehouse  warehouse.baseCapacity, warehouse.maxCapacity (profile)")
    assert rows["Clinical Trials"].endswith("-              aws:region, warehouse.maxCapacity (account file)")
    whatif = out.split("== what if Finance", 1)[1].split("== apply", 1)[0]
    assert "Compared with today's plan:" in whatif
    assert any("Finance" in line and "update: ACTIVE account with a stack" in line and "retire-destroy" in line for line in whatif.splitlines())
    assert "moto_server" in result.stderr and "dry run: nothing was changed" in result.stderr
    assert list(tmp_path.glob("*/report.json"))
    # Then the plan is applied (simulated deployments) and planned again: everything is unchanged.
    applied = out.split("== apply (simulated", 1)[1].split("== plan again", 1)[0]
    assert "22 succeeded" in applied
    again = out.split("== plan again", 1)[1]
    # The two leaving silos are still in their grace period: pending again, nothing else runs.
    assert "20 operations (retire-destroy: 2, unchanged: 18)" in again
    assert again.count("unchanged (since 20") == 18 and "create" not in again and again.count("retire-destroy pending (destroys on") == 2


def test_file_backend_reader_lists_stacks_with_their_silo_names(tmp_path):
    write_file_backend(tmp_path, {"123456789012": "sales", "210987654321": "finance"})
    stacks = FileBackendStacks(tmp_path).list_stacks()
    assert {(s.name, s.silo_name, s.account_id) for s in stacks} == {
        ("silo-123456789012", "sales", "123456789012"),
        ("silo-210987654321", "finance", "210987654321"),
    }


def test_file_backend_reader_refuses_to_change_stacks(tmp_path):
    import io

    import pytest

    from components.shared.errors import UsageError

    reader = FileBackendStacks(tmp_path)
    with pytest.raises(UsageError, match="up needs the pulumi CLI"):
        reader.up("silo-123456789012", io.StringIO())
    with pytest.raises(UsageError, match="no such directory"):
        FileBackendStacks(tmp_path / "missing")
