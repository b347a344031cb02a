"""The real Automation API implementation on a local file backend (needs the pulumi CLI; skipped here without it).

The inline program creates only a ComponentResource and outputs, so it needs no cloud and no
provider plugin. It runs sequentially: parallel inline programs in one process are unsafe.
"""

from __future__ import annotations

import io
import shutil

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("pulumi") is None, reason="the pulumi CLI is not on PATH (it cannot be installed here)"),
]


def probe_program() -> None:
    import pulumi

    config = pulumi.Config("datalake")

    class Probe(pulumi.ComponentResource):
        def __init__(self, name: str):
            super().__init__("datalake:test:Probe", name, None, None)
            self.register_outputs({"siloName": config.require("siloName")})

    Probe(f"silo-{config.require('siloName')}")
    pulumi.export("siloName", config.require("siloName"))


def test_create_update_list_export_destroy_remove(tmp_path):
    from runner.stack_ops import SILO_NAME_TAG, AutomationStackOperations

    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: runner-it\nruntime: python\n")
    ops = AutomationStackOperations(
        project,
        backend_url=f"file://{tmp_path / 'state'}",
        secrets_provider="passphrase",
        env={"PULUMI_CONFIG_PASSPHRASE": "integration-test"},
        program=probe_program,
    )
    stack = "silo-123456789012"
    ops.create_stack(stack, {SILO_NAME_TAG: "sales"})
    ops.set_config(stack, {"datalake:siloName": "sales", "datalake:storage": {"dropzoneExpirationDays": 30}})
    log = io.StringIO()
    assert ops.up(stack, log) == 2  # the stack and the component
    assert ops.up(stack, log) == 0  # nothing changed
    assert ops.preview_drift(stack, log) == []
    [listed] = [s for s in ops.list_stacks() if s.name == stack]
    assert listed.silo_name == "sales"
    state = ops.export(stack)
    assert any(r["type"] == "datalake:test:Probe" for r in state["deployment"]["resources"])
    ops.import_state(stack, state)  # `runner restore --yes`: the export goes back in unchanged
    assert [r["urn"] for r in ops.export(stack)["deployment"]["resources"]] == [r["urn"] for r in state["deployment"]["resources"]]
    assert ops.destroy(stack, log) == 2
    ops.remove(stack, force=False)
    assert stack not in [s.name for s in ops.list_stacks()]

    # Forget: a stack that still holds resources is removed from state with force.
    ops.create_stack(stack, {SILO_NAME_TAG: "sales"})
    ops.up(stack, log)
    ops.remove(stack, force=True)
    assert stack not in [s.name for s in ops.list_stacks()]
