"""The Automation API wrapper's own logic, without the CLI: error mapping, silo names, stack config files."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult
from pulumi.automation.errors import create_command_error

from components.shared.errors import StackLockedError, StackOperationError
from runner import pulumi_process
from runner.stack_ops import AutomationStackOperations, OperationTimeouts, write_stack_config


def ops_with(workspace=None, stack=None, home=None) -> AutomationStackOperations:
    """The real class with its CLI-facing parts replaced: no `pulumi` process is started."""
    ops = object.__new__(AutomationStackOperations)
    ops._auto, ops._cli, ops.org, ops.project = auto, pulumi_process, "organization", "datalake"
    ops.shared_home, ops._local = home or Path(tempfile.mkdtemp(prefix="shared-home-")), threading.local()
    ops.timeouts, ops._command = OperationTimeouts(), SimpleNamespace(deadline=lambda seconds, what: contextlib.nullcontext())
    ops._workspace = lambda: workspace
    ops._stack = lambda name: stack
    return ops


def failing(stderr: str, stdout: str = ""):
    def call():
        raise create_command_error(CommandResult(stdout, stderr, 255))

    return call


def test_a_locked_stack_becomes_stack_locked_error():
    ops = ops_with()
    for text in ("error: the stack is currently locked by 1 lock(s)", "[409] Conflict: Another update is currently in progress."):
        with pytest.raises(StackLockedError, match="silo-1: up found the stack locked"):
            ops._run("up", "silo-1", failing(text))


def test_other_cli_failures_keep_their_error_line():
    ops = ops_with()
    stderr = "Updating (silo-1)\n  aws:s3:Bucket raw creating\nerror: AccessDenied: User is not authorized to perform sts:AssumeRole\n"
    with pytest.raises(StackOperationError) as caught:
        ops._run("up", "silo-1", failing(stderr))
    assert caught.value.log_line == "error: AccessDenied: User is not authorized to perform sts:AssumeRole"
    assert str(caught.value) == "silo-1: up failed: error: AccessDenied: User is not authorized to perform sts:AssumeRole"


def test_silo_name_comes_from_the_tag_then_the_output():
    tagged = SimpleNamespace(list_tags=lambda name: {"datalake:silo-name": "sales"})
    assert ops_with(tagged)._silo_name("silo-123456789012") == "sales"
    untagged = SimpleNamespace(list_tags=lambda name: {"pulumi:project": "datalake"})
    deployed = SimpleNamespace(outputs=lambda: {"siloName": auto.OutputValue("finance", False)})
    assert ops_with(untagged, deployed)._silo_name("silo-123456789012") == "finance"
    never_deployed = SimpleNamespace(outputs=lambda: {})
    assert ops_with(untagged, never_deployed)._silo_name("silo-123456789012") is None


def test_stack_config_keeps_secrets_keys_and_structured_values(tmp_path):
    path = tmp_path / "Pulumi.silo-123456789012.yaml"
    path.write_text("secretsprovider: awskms://alias/acme-dl-master?region=eu-west-1\nencryptedkey: AQICAH...\nconfig:\n  old:key: x\n")
    write_stack_config(tmp_path, "organization/datalake/silo-123456789012", {"datalake:storage": {"dropzoneExpirationDays": 14}})
    written = yaml.safe_load(path.read_text())
    assert written == {
        "secretsprovider": "awskms://alias/acme-dl-master?region=eu-west-1",
        "encryptedkey": "AQICAH...",
        "config": {"datalake:storage": {"dropzoneExpirationDays": 14}},
    }


def test_a_private_pulumi_home_shares_everything_but_the_workspace_files(tmp_path):
    shared = tmp_path / "shared"
    (shared / "workspaces").mkdir(parents=True)
    (shared / "workspaces" / "datalake-abc-workspace.json").write_text('{"stack": "organization/datalake/master"}')
    (shared / "credentials.json").write_text("{}")
    with pulumi_process.private_pulumi_home(shared, tmp_path) as private:
        assert sorted(p.name for p in private.iterdir()) == ["credentials.json", "plugins"]
        assert (private / "plugins").resolve() == (shared / "plugins").resolve() and (private / "plugins").is_symlink()
        (private / "plugins" / "resource-aws-v7").mkdir()  # a download lands in the shared cache
        (private / "workspaces").mkdir()
        (private / "workspaces" / "datalake-abc-workspace.json").write_text("{}")
    assert not private.exists()
    assert (shared / "plugins" / "resource-aws-v7").is_dir() and (shared / "credentials.json").read_text() == "{}"
    assert (shared / "workspaces" / "datalake-abc-workspace.json").read_text() == '{"stack": "organization/datalake/master"}'


def test_import_state_recreates_a_removed_stack_then_imports_the_export_format():
    calls = []
    workspace = SimpleNamespace(
        create_stack=lambda name: calls.append(("create", name)),
        import_stack=lambda name, state: calls.append(("import", name, state.version, state.deployment)),
    )
    state = {"version": 3, "deployment": {"resources": [{"urn": "urn:pulumi:silo-1::datalake::pulumi:pulumi:Stack::datalake-silo-1"}]}}
    ops_with(workspace).import_state("silo-1", state)
    qualified = "organization/datalake/silo-1"
    assert calls == [("create", qualified), ("import", qualified, 3, state["deployment"])]


def test_import_state_keeps_an_existing_stack_and_a_failed_import_keeps_its_error_line():
    imported = []
    workspace = SimpleNamespace(
        create_stack=lambda name: failing("error: stack 'organization/datalake/silo-1' already exists")(),
        import_stack=lambda name, state: imported.append(name),
    )
    ops_with(workspace).import_state("silo-1", {"version": 3, "deployment": {}})
    assert imported == ["organization/datalake/silo-1"]

    workspace.import_stack = lambda name, state: failing("error: resource 'urn:pulumi:other::datalake::x::y' is from a different stack (other != silo-1)")()
    with pytest.raises(StackOperationError, match="silo-1: import failed: error: resource .* is from a different stack"):
        ops_with(workspace).import_state("silo-1", {"version": 3, "deployment": {}})
