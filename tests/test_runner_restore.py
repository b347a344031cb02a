"""`python -m runner restore`: the restore drill on a versioned state bucket (moto), runner exports,
the diff it shows, and the refusals. The CLI is not here: a fake `StackOperations` over the same
bucket stands in for `pulumi stack export/import` and records what was imported."""

from __future__ import annotations

import gzip
import json

import boto3
import pytest
from moto import mock_aws

from components.shared.errors import StackOperationError, UsageError
from runner.cli import main
from runner.run import Clients
from runner.report import ReportStore
from runner.restore import ZSTD_MAGIC, parse_state

REGION = "eu-west-1"
STACK = "silo-123456789012"
PROJECT = "datalake"
KEY = f".pulumi/stacks/{PROJECT}/{STACK}.json"


def urn(name: str, kind: str, stack: str = STACK) -> str:
    parent = "" if kind == "pulumi:pulumi:Stack" else "datalake:silo:SiloAccount$"
    return f"urn:pulumi:{stack}::{PROJECT}::{parent}{kind}::{name}"


def resource(name: str, kind: str = "aws:s3/bucket:Bucket", stack: str = STACK, **outputs) -> dict:
    return {
        "urn": urn(name, kind, stack),
        "custom": kind.startswith("aws:"),
        "type": kind,
        "id": f"{name}-id" if kind.startswith("aws:") else "",
        "outputs": outputs,
        "modified": "2026-01-01T00:00:00Z",
    }


def deployment(*resources: dict) -> dict:
    return {"manifest": {"time": "2026-01-01T00:00:00Z", "version": "v3.272.0"}, "secrets_providers": {"type": "awskms"}, "resources": list(resources)}


def checkpoint(state: dict, stack: str = STACK) -> bytes:
    """What the DIY backend writes to `.pulumi/stacks/<project>/<stack>.json`."""
    return json.dumps({"version": 3, "checkpoint": {"stack": f"organization/{PROJECT}/{stack}", "latest": state}}).encode()


STACK_RESOURCE = resource(f"{PROJECT}-{STACK}", "pulumi:pulumi:Stack")
V1 = deployment(STACK_RESOURCE, resource("silo-sales-raw", bucket="raw-1"), resource("silo-sales-processed"))
V2 = deployment(
    STACK_RESOURCE,
    resource("silo-sales-raw", bucket="raw-2"),
    resource("silo-sales-processed"),
    resource("silo-sales-raw-policy", "aws:s3/bucketPolicy:BucketPolicy"),
)


class BucketStacks:
    """`export` and `import_state` over the state bucket, as the DIY backend reads and writes it.

    `export` fails on a checkpoint it cannot parse or on a missing stack, as `pulumi stack export`
    does; `import_state` records the deployment and writes it back as the stack's checkpoint.
    """

    def __init__(self, s3, bucket: str):
        self.s3, self.bucket = s3, bucket
        self.imported: list[tuple[str, dict]] = []

    def _key(self, stack: str) -> str:
        return f".pulumi/stacks/{PROJECT}/{stack}.json"

    def export(self, stack: str) -> dict:
        try:
            raw = self.s3.get_object(Bucket=self.bucket, Key=self._key(stack))["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            raise StackOperationError(f"{stack}: export failed", f"error: no stack named 'organization/{PROJECT}/{stack}' found") from None
        try:
            document = json.loads(raw)
        except ValueError:
            raise StackOperationError(f"{stack}: export failed", "error: could not deserialize deployment: unexpected end of JSON input") from None
        return {"version": document["version"], "deployment": document["checkpoint"]["latest"]}

    def import_state(self, stack: str, state: dict) -> None:
        self.imported.append((stack, state))
        self.s3.put_object(Bucket=self.bucket, Key=self._key(stack), Body=checkpoint(state["deployment"], stack))


@pytest.fixture
def backend(tmp_path):
    """A versioned, SSE-KMS state bucket on moto, and the fake stacks over it.

    Not bootstrap's bucket with its policy: moto judges a Deny statement whose condition does not
    hold as a denial (moto/iam/access_control.py, `IAMPolicyStatement._check_conditions`), so the
    TLS-only policy would refuse moto's own requests.
    """
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
        bucket = f"acme-dl-master-pulumi-state-{account}"
        key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]},
        )
        yield s3, bucket, BucketStacks(s3, bucket), tmp_path


def put(s3, bucket: str, body: bytes, key: str = KEY) -> str:
    return s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]


def restore(backend, *argv: str) -> int:
    s3, bucket, stacks, tmp_path = backend
    return main(["restore", *argv, f"--report-to={tmp_path / 'reports'}"], Clients(stack_ops=stacks, s3=lambda: s3))


def urns(state: dict) -> set[str]:
    return {r["urn"] for r in state["deployment"]["resources"]}


def test_drill_corrupt_latest_state_restore_the_previous_version(backend, capsys):
    s3, bucket, stacks, _ = backend
    put(s3, bucket, checkpoint(V1))
    good = put(s3, bucket, checkpoint(V2))
    before = stacks.export(STACK)
    corrupt = put(s3, bucket, checkpoint(V2)[:80])  # an interrupted write: truncated JSON
    with pytest.raises(StackOperationError):
        stacks.export(STACK)

    assert restore(backend, STACK, "--list-versions") == 0
    listing = capsys.readouterr().out
    assert listing.index(corrupt) < listing.index(good) and "current" in listing.splitlines()[3]

    assert restore(backend, STACK, "--from", "version:previous") == 0
    out = capsys.readouterr().out
    assert f"restore {STACK} from s3://{bucket}/{KEY} version {good}" in out
    assert "current state: unreadable" in out and "not a Pulumi state file: it is not JSON" in out
    assert "4 to add, 0 to remove, 0 to change, 0 unchanged" in out
    assert "dry run: nothing was imported" in out
    assert stacks.imported == []

    assert restore(backend, STACK, "--from", f"version:{good}", "--yes") == 0
    out = capsys.readouterr().out
    [(stack, imported)] = stacks.imported
    assert stack == STACK and imported["deployment"] == V2 and imported["version"] == 3
    assert urns(stacks.export(STACK)) == urns(before)
    assert "imported: the stack lists the same 4 resources as the restored state" in out
    assert f"undo with --from version:{corrupt}" in out


def test_restoring_an_older_version_shows_what_goes_and_what_changes(backend, capsys):
    s3, bucket, stacks, _ = backend
    old = put(s3, bucket, checkpoint(V1))
    put(s3, bucket, checkpoint(V2))
    assert restore(backend, STACK, "--from", f"version:{old}") == 0
    out = capsys.readouterr().out
    assert "current state: pulumi stack export" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("- remove", "~ change", "+ add"))]
    assert rows == [
        ["-", "remove", "aws:s3/bucketPolicy:BucketPolicy", "silo-sales-raw-policy", "from", "state", "only:", "the", "cloud", "resource", "stays"],
        ["~", "change", "aws:s3/bucket:Bucket", "silo-sales-raw", "outputs"],
    ]
    assert "0 to add, 1 to remove, 1 to change, 2 unchanged" in out
    assert stacks.imported == []


def test_a_runner_export_restores_a_retired_stack(backend, capsys):
    s3, bucket, stacks, tmp_path = backend
    # The runner's export before a retirement: <exports location>/<run-id>/<stack>.json.
    saved = ReportStore(str(tmp_path / "runner")).put_json(f"20260101T000000000000Z-abc123/{STACK}.json", {"version": 3, "deployment": V1})
    assert restore(backend, STACK, "--from", saved, "--yes") == 0
    out = capsys.readouterr().out
    assert "current state: unreadable (export: " in out and "has no versions" in out
    assert "3 to add" in out
    assert [state["deployment"] for _, state in stacks.imported] == [V1]
    assert urns(stacks.export(STACK)) == urns({"deployment": V1})


def test_the_state_being_replaced_is_saved_first(backend, capsys):
    s3, bucket, stacks, tmp_path = backend
    old = put(s3, bucket, checkpoint(V1))
    put(s3, bucket, checkpoint(V2))
    assert restore(backend, STACK, "--from", f"version:{old}", "--yes") == 0
    [saved] = (tmp_path / "reports" / "restores").glob(f"*-{STACK}/before.json")
    assert json.loads(saved.read_text())["deployment"] == V2


def test_the_saved_state_is_encrypted_with_the_master_key_in_s3(backend, capsys):
    s3, bucket, stacks, tmp_path = backend
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/acme-dl-master", TargetKeyId=key)
    old = put(s3, bucket, checkpoint(V1))
    put(s3, bucket, checkpoint(V2))
    args = ["restore", STACK, "--from", f"version:{old}", "--yes", f"--report-to=s3://{bucket}/runner-reports"]
    assert main(args, Clients(stack_ops=stacks, s3=lambda: s3)) == 0
    [saved] = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="runner-reports/restores/")["Contents"]]
    head = s3.head_object(Bucket=bucket, Key=saved)
    assert saved.endswith(f"-{STACK}/before.json") and head["ServerSideEncryption"] == "aws:kms"
    # The master key, not the bucket's default one (moto answers the key id as sent; S3 answers its ARN).
    assert head["SSEKMSKeyId"] == "alias/acme-dl-master"


def test_pending_operations_of_the_restored_state_are_named_with_what_the_import_does_to_them(backend, capsys, tmp_path):
    source = tmp_path / "interrupted.json"
    create = {"resource": {**resource("silo-sales-curated"), "id": ""}, "type": "creating"}
    update = {"resource": resource("silo-sales-raw", bucket="raw-1"), "type": "updating"}
    source.write_text(json.dumps({"version": 3, "deployment": {**V1, "pending_operations": [create, update]}}))
    assert restore(backend, STACK, "--from", str(source)) == 0
    out = capsys.readouterr().out
    # `pulumi stack import` drops every pending operation (pkg/cmd/pulumi/stack/io.go): a pending create would be forgotten.
    assert ("the restored state has 2 pending operation(s) (an interrupted update): pending create of aws:s3/bucket:Bucket "
            "'silo-sales-curated'; pending update of aws:s3/bucket:Bucket 'silo-sales-raw' (id silo-sales-raw-id)") in out
    assert "`pulumi stack import` drops them" in out
    assert "1 pending create(s) may exist in AWS unknown to the stack after the import: look for aws:s3/bucket:Bucket 'silo-sales-curated'" in out


def test_another_stacks_state_is_refused(backend, caplog, tmp_path):
    _, _, stacks, _ = backend
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"version": 3, "deployment": deployment(resource("x", stack="silo-999999999999"))}))
    assert restore(backend, STACK, "--from", str(other), "--yes") == 2
    err = caplog.text
    assert "holds resources of stack 'silo-999999999999' of project 'datalake', not of 'silo-123456789012'" in err
    assert stacks.imported == []


def test_a_state_equal_to_the_current_one_is_not_imported(backend, capsys):
    s3, bucket, stacks, _ = backend
    put(s3, bucket, checkpoint(V2))
    same = put(s3, bucket, checkpoint(V2))
    assert restore(backend, STACK, "--from", f"version:{same}", "--yes") == 0
    assert "nothing to import" in capsys.readouterr().out
    assert stacks.imported == []


def test_an_unknown_version_lists_the_ones_that_exist(backend, caplog):
    s3, bucket, _, _ = backend
    first = put(s3, bucket, checkpoint(V1))
    assert restore(backend, STACK, "--from", "version:nope") == 2
    err = caplog.text
    assert f"version 'nope' is not a version of s3://{bucket}/{KEY}; newest ones: {first}" in err


def test_gzipped_checkpoints_and_their_bak_files(backend, capsys):
    s3, bucket, stacks, _ = backend
    gz = f"{KEY}.gz"
    put(s3, bucket, gzip.compress(checkpoint(V1)), gz)
    put(s3, bucket, gzip.compress(checkpoint(V2)), gz)
    put(s3, bucket, gzip.compress(checkpoint(V1)), f"{gz}.bak")
    assert restore(backend, STACK, "--from", "version:previous") == 0
    assert f"from s3://{bucket}/{gz} version" in capsys.readouterr().out
    # The fake's export reads .json only, so the current state comes from the bucket's newest .json.gz.
    assert restore(backend, STACK, "--from", f"s3://{bucket}/{gz}.bak") == 0
    out = capsys.readouterr().out
    assert f"current state: s3://{bucket}/{gz} (latest," in out
    assert "0 to add, 1 to remove, 1 to change, 2 unchanged" in out


def test_a_resource_pending_deletion_is_not_confused_with_its_replacement():
    from runner.restore import diff_states

    replacement = resource("silo-sales-raw", bucket="raw-3")
    old = {**resource("silo-sales-raw", bucket="raw-2"), "delete": True}
    diff = diff_states({"deployment": deployment(STACK_RESOURCE, replacement, old)}, {"deployment": deployment(STACK_RESOURCE, replacement)})
    assert (len(diff.added), [r["outputs"] for r in diff.removed], diff.changed, diff.unchanged) == (0, [{"bucket": "raw-2"}], [], 2)


def test_unreadable_sources_name_the_problem():
    with pytest.raises(UsageError, match="zstd-compressed; decompress it"):
        parse_state(ZSTD_MAGIC + b"\x00", "state.json.zst")
    with pytest.raises(UsageError, match="is not a Pulumi state file"):
        parse_state(b"<html>", "s3://b/k")


def test_bad_invocations_exit_2(backend, caplog):
    assert restore(backend, "silo/../x", "--from", "version:previous") == 2
    assert "only letters, digits" in caplog.text
    assert restore(backend, STACK, "--from", "missing.json") == 2
    assert "--from 'missing.json': no such file" in caplog.text
