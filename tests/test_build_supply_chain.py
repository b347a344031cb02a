"""What the runner and delivery-deploy builds install (issue 10, defect 8).

Both builds hold a role that can assume the deploy role in every silo account. They install the
pinned Pulumi CLI archive only after `sha256sum -c` accepts it, pipe nothing into a shell, and
install the runtime requirements only; `./dev` still sets up everything from two files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from components.master.config import DeliveryConfig, RunnerConfig
from components.shared.errors import ConfigError
from components.master.pulumi_cli import INSTALL_COMMANDS, PULUMI_CLI_SHA256, PULUMI_CLI_VERSION, RUNTIME_REQUIREMENTS
from offline.harness import CLI_SHA256_STAND_IN
from offline.stacks import PROJECT_DIR, master_config, run_master

RUNTIME = {"pulumi", "pulumi-aws", "pulumi-awsx", "boto3", "pydantic", "pyyaml", "protobuf"}
TEST_TOOLCHAIN = {"pytest", "moto", "pyspark", "duckdb", "selenium", "parliament", "statelint", "pulumi-policy"}
PIPE_INTO_SHELL = re.compile(r"\|\s*(sudo\s+)?(ba|z|da)?sh\b")


def requirements(name: str) -> tuple[list[str], dict[str, str]]:
    """(`-r` includes, {normalised package name: pinned version}) of a requirements file."""
    includes, pins = [], {}
    for line in (PROJECT_DIR / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            includes.append(line[3:].strip())
            continue
        package, _, version = line.partition("==")
        assert version, f"{name}: {line!r} is not pinned with =="
        pins[re.sub(r"\[.*\]", "", package).lower()] = version
    return includes, pins


def build_commands(master) -> dict[str, list[str]]:
    """Install and build commands of the runner and the delivery-deploy CodeBuild projects."""
    found = {}
    for project in master.of_type("aws:codebuild/project:Project"):
        name = project.inputs["name"]
        if name.endswith(("-runner", "-delivery-deploy")):
            spec = yaml.safe_load(project.inputs["source"]["buildspec"])
            phases = spec["phases"]
            assert phases["install"].get("on-failure", "ABORT") == "ABORT", name
            found[name] = phases["install"]["commands"] + phases["build"]["commands"]
    assert set(found) == {"acme-dl-runner", "acme-dl-delivery-deploy"}, set(found)
    return found


def test_runtime_requirements_are_the_runtime_set_and_requirements_txt_adds_the_toolchain():
    runtime_includes, runtime = requirements(RUNTIME_REQUIREMENTS)
    assert runtime_includes == [] and set(runtime) == RUNTIME
    includes, full = requirements("requirements.txt")
    assert includes == [RUNTIME_REQUIREMENTS]
    assert not set(full) & set(runtime), "a runtime package is pinned twice"
    assert TEST_TOOLCHAIN <= set(full)


def test_cli_sdk_and_config_versions_agree():
    _, runtime = requirements(RUNTIME_REQUIREMENTS)
    assert runtime["pulumi"] == PULUMI_CLI_VERSION == importlib.metadata.version("pulumi")
    assert RunnerConfig().pulumi_version == PULUMI_CLI_VERSION
    assert DeliveryConfig(repository="acme/datalake").pulumi_version == PULUMI_CLI_VERSION


def test_builds_install_a_checksummed_cli_and_the_runtime_requirements_only(master):
    for name, commands in build_commands(master).items():
        assert all(isinstance(c, str) for c in commands), f"{name}: a command YAML read as a mapping: {commands}"
        assert not [c for c in commands if PIPE_INTO_SHELL.search(c) or "get.pulumi.com |" in c], name
        assert commands[: len(INSTALL_COMMANDS)] == list(INSTALL_COMMANDS), name
        verify = next(i for i, c in enumerate(commands) if "sha256sum -c" in c)
        unpack = next(i for i, c in enumerate(commands) if "tar -xzf" in c)
        assert verify < unpack, f"{name}: the archive is unpacked before its checksum is checked"
        installs = [c for c in commands if "pip install" in c]
        assert installs and all(c.endswith(f"-r {RUNTIME_REQUIREMENTS}") and "--only-binary=:all:" in c for c in installs), installs
        assert not [c for c in commands if "requirements.txt" in c.replace(RUNTIME_REQUIREMENTS, "")], name
        assert not [c for c in commands if "./dev" in c], f"{name}: ./dev installs the test toolchain"


def test_builds_get_the_version_and_its_pinned_checksum():
    config = master_config()
    config["datalake:runner"] = {"pulumiCliSha256": "a" * 64}
    config["datalake:delivery"] = {**config["datalake:delivery"], "pulumiCliSha256": "b" * 64}
    recording = run_master(config, cli_checksum_stand_in=False)
    env = {
        p.inputs["name"]: {v["name"]: v["value"] for v in p.inputs["environment"]["environmentVariables"]}
        for p in recording.of_type("aws:codebuild/project:Project")
    }
    assert env["acme-dl-runner"]["PULUMI_CLI_SHA256"] == "a" * 64
    assert env["acme-dl-delivery-deploy"]["PULUMI_CLI_SHA256"] == "b" * 64
    assert env["acme-dl-runner"]["PULUMI_VERSION"] == env["acme-dl-delivery-deploy"]["PULUMI_VERSION"] == PULUMI_CLI_VERSION


def test_an_unpinned_cli_is_a_config_error_before_anything_is_deployed():
    if PULUMI_CLI_SHA256.get(PULUMI_CLI_VERSION):
        recording = run_master(cli_checksum_stand_in=False)
        project = recording.one("aws:codebuild/project:Project", "master-runner-project")
        env = {v["name"]: v["value"] for v in project.inputs["environment"]["environmentVariables"]}
        assert env["PULUMI_CLI_SHA256"] == PULUMI_CLI_SHA256[PULUMI_CLI_VERSION]
        return
    # components/master/pulumi_cli.py: the 3.272.0 checksum is still TO BE FILLED.
    with pytest.raises(ConfigError) as error:
        run_master(cli_checksum_stand_in=False)
    url = f"https://get.pulumi.com/releases/sdk/pulumi-{PULUMI_CLI_VERSION}-checksums.txt"
    assert [p.split(":", 2)[1] for p in error.value.problems] == ["runner.pulumiCliSha256", "delivery.pulumiCliSha256"]
    for problem in error.value.problems:
        assert f"Pulumi CLI {PULUMI_CLI_VERSION}" in problem and url in problem and "for example: pulumi config set" in problem


@pytest.fixture
def fake_download(tmp_path: Path):
    """A pulumi archive laid out as Pulumi ships it (pulumi/pulumi, ...) and a `curl` that serves it."""
    archive = tmp_path / "served.tar.gz"
    payload = b"#!/bin/sh\necho v3.272.0\n"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("pulumi/pulumi")
        info.size, info.mode = len(payload), 0o755
        tar.addfile(info, io.BytesIO(payload))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    # Records its argv; writes the archive to --output.
    curl.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{tmp_path}/curl-argv"\n'
        'while [ $# -gt 0 ]; do if [ "$1" = --output ]; then shift; out="$1"; fi; shift; done\n'
        f'cp "{archive}" "$out"\n'
    )
    curl.chmod(curl.stat().st_mode | stat.S_IEXEC)
    return tmp_path, hashlib.sha256(archive.read_bytes()).hexdigest()


def run_install(tmp_path: Path, checksum: str) -> subprocess.CompletedProcess:
    """The install commands as CodeBuild runs them: one after another, the first failure stops the phase."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    script = "set -e\n" + "\n".join(INSTALL_COMMANDS)
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HOME": str(home),
        "PULUMI_VERSION": PULUMI_CLI_VERSION,
        "PULUMI_CLI_SHA256": checksum,
        "TMPDIR": str(tmp_path),
    }
    (tmp_path / "curl-argv").unlink(missing_ok=True)
    (tmp_path / f"pulumi-v{PULUMI_CLI_VERSION}-linux-x64.tar.gz").unlink(missing_ok=True)
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not (shutil.which("sha256sum") and shutil.which("tar")), reason="needs coreutils sha256sum and tar")
def test_the_install_commands_refuse_an_archive_whose_checksum_differs(fake_download):
    tmp_path, good = fake_download
    ok = run_install(tmp_path, good)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "home/.pulumi/bin/pulumi").read_text().startswith("#!/bin/sh")
    argv = (tmp_path / "curl-argv").read_text()
    assert f"https://get.pulumi.com/releases/sdk/pulumi-v{PULUMI_CLI_VERSION}-linux-x64.tar.gz" in argv and "--proto =https" in argv
    shutil.rmtree(tmp_path / "home")

    bad = run_install(tmp_path, CLI_SHA256_STAND_IN)  # the offline stand-in never passes a real build
    assert bad.returncode != 0 and "FAILED" in bad.stdout + bad.stderr
    assert (tmp_path / "curl-argv").exists(), "the archive was downloaded"
    assert not (tmp_path / "home/.pulumi/bin/pulumi").exists(), "an archive that failed its checksum was unpacked"

    empty = run_install(tmp_path, "")
    assert empty.returncode != 0 and "PULUMI_CLI_SHA256 is empty" in empty.stderr
    assert not (tmp_path / "curl-argv").exists(), "nothing is downloaded without a pinned checksum"


def test_the_bundle_carries_the_runtime_requirements(master):
    projects = {p.name: p.inputs for p in master.of_type("aws:codebuild/project:Project")}
    zip_line = next(line for line in projects["master-delivery-package"]["source"]["buildspec"].splitlines() if "zip -qr" in line)
    assert f" {RUNTIME_REQUIREMENTS} " in zip_line, "the runner build installs requirements-runtime.txt from the bundle"


def test_dev_reinstalls_when_either_requirements_file_changes(tmp_path: Path):
    """`./dev test` with a recording stand-in for the venv's python: which runs install, which do not."""
    for name in ("dev", "requirements.txt", RUNTIME_REQUIREMENTS):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    python = tmp_path / ".venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/calls"\nexit 0\n')
    python.chmod(0o755)

    def installs() -> int:
        (tmp_path / "calls").write_text("")
        subprocess.run(["bash", str(tmp_path / "dev"), "test"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
        return sum("-r requirements.txt" in line for line in (tmp_path / "calls").read_text().splitlines())

    assert installs() == 1  # first run installs
    assert installs() == 0  # nothing changed
    with (tmp_path / RUNTIME_REQUIREMENTS).open("a") as handle:
        handle.write("# a runtime pin changed\n")
    assert installs() == 1
    with (tmp_path / "requirements.txt").open("a") as handle:
        handle.write("# a test tool changed\n")
    assert installs() == 1


def test_a_malformed_cli_pin_names_the_key():
    from components.stack_config import parse_stack_config

    config = master_config()
    config["datalake:runner"] = {"pulumiCliSha256": "XYZ"}
    config["datalake:delivery"] = {**config["datalake:delivery"], "pulumiVersion": "v3"}
    with pytest.raises(ConfigError) as error:
        parse_stack_config("master", config)
    assert sorted(error.value.problems) == [
        "datalake:delivery.pulumiVersion: got 'v3', which is not a Pulumi CLI version such as 3.272.0; for example: 3.272.0",
        "datalake:runner.pulumiCliSha256: got 'XYZ', which is not a SHA-256 (64 lowercase hex digits); "
        "for example: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]
