"""The stack entry point and the offline preview run the same program the tests examine."""

from __future__ import annotations

import json
import runpy

from offline.__main__ import main as offline_main
from offline.harness import run_program
from offline.stacks import PROJECT_DIR, master_config, silo_config


def test_main_module_builds_the_master_component():
    recording = run_program(master_config(), stack="master", program=lambda: runpy.run_path(str(PROJECT_DIR / "__main__.py")))
    assert recording.one("datalake:master:MasterAccount").name == "master"
    assert not recording.of_type("datalake:silo:SiloAccount")


def test_main_module_builds_a_silo_when_the_stack_is_a_silo():
    from offline.stacks import master_stack_outputs

    config = silo_config()
    recording = run_program(
        config,
        stack="silo-222222222222",
        account_id="222222222222",
        stack_outputs={config["datalake:masterStack"]: master_stack_outputs()},
        program=lambda: runpy.run_path(str(PROJECT_DIR / "__main__.py")),
    )
    assert recording.one("datalake:silo:SiloAccount").name == "silo-sales"
    assert not recording.of_type("datalake:master:MasterAccount")


def test_offline_preview_prints_both_stacks(capsys):
    assert offline_main(["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"master", "silo-222222222222"}
    # The five data buckets and the console's.
    assert summary["silo-222222222222"]["resources"]["aws:s3/bucket:Bucket"] == 6
    assert summary["master"]["outputs"]["artifactBucketName"].startswith("acme-dl-master-artifacts-")
