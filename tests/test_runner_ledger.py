"""The runner's ledger: fingerprints, atomic entries on disk and on S3 (moto), and the never-skip-on-doubt rule."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from components.shared.errors import RunnerError, UsageError
from runner.ledger import DriftCheck, Ledger, LedgerEntry, bundle_digest, fingerprint

BASE = {"bundle": "sha256:aa", "config": {"aws:region": "eu-west-1", "datalake:siloName": "sales"}, "cli_version": "3.272.0",
        "plugins": {"aws": "7.51.1", "awsx": "3.11.0"}}


def test_fingerprint_changes_with_each_input_and_not_with_mapping_order():
    reference = fingerprint(**BASE)
    assert reference.startswith("sha256:") and len(reference) == len("sha256:") + 64
    assert fingerprint(**{**BASE, "config": dict(reversed(list(BASE["config"].items())))}) == reference
    assert fingerprint(**{**BASE, "plugins": {"awsx": "3.11.0", "aws": "7.51.1"}}) == reference
    changed = [
        {**BASE, "bundle": "sha256:ab"},
        {**BASE, "config": {**BASE["config"], "datalake:siloName": "sales2"}},
        {**BASE, "config": {**BASE["config"], "datalake:sftp": {"enabled": True}}},
        {**BASE, "cli_version": "3.273.0"},
        {**BASE, "plugins": {**BASE["plugins"], "aws": "7.52.0"}},
    ]
    assert len({fingerprint(**inputs) for inputs in changed} | {reference}) == len(changed) + 1


def test_fingerprint_keeps_list_order_because_lists_are_data():
    columns = [{"name": "a", "type": "string"}, {"name": "b", "type": "int"}]
    one = fingerprint(**{**BASE, "config": {"datalake:datasets": [{"columns": columns}]}})
    other = fingerprint(**{**BASE, "config": {"datalake:datasets": [{"columns": columns[::-1]}]}})
    assert one != other


def test_bundle_digest_follows_program_files_only(tmp_path):
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "silo.py").write_text("A = 1\n")
    (tmp_path / "__main__.py").write_text("import program\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("x = 1\n")
    first = bundle_digest(tmp_path)

    (tmp_path / "tests" / "test_x.py").write_text("x = 2\n")
    (tmp_path / "components" / "__pycache__").mkdir()
    (tmp_path / "components" / "__pycache__" / "silo.cpython-311.pyc").write_bytes(b"\0")
    assert bundle_digest(tmp_path) == first

    (tmp_path / "components" / "silo.py").write_text("A = 2\n")
    assert bundle_digest(tmp_path) != first
    # Moving content between files is a change too (names are part of the digest).
    (tmp_path / "components" / "silo.py").write_text("A = 1\n")
    assert bundle_digest(tmp_path) == first
    (tmp_path / "components" / "silo.py").rename(tmp_path / "components" / "storage.py")
    assert bundle_digest(tmp_path) != first


def test_project_bundle_digest_is_stable_across_two_reads():
    root = Path(__file__).resolve().parents[1]
    assert bundle_digest(root) == bundle_digest(root)


def entry(**overrides) -> LedgerEntry:
    values = dict(stack="silo-111111111111", account_id="111111111111", silo_name="sales", action="update",
                  result="succeeded", fingerprint="sha256:f1", deployed_at="2026-11-30T10:00:00+00:00")
    values.update(overrides)
    return LedgerEntry(**values)


@pytest.mark.parametrize(
    "overrides, wanted, skipped",
    [
        ({}, "sha256:f1", True),
        ({}, "sha256:f2", False),
        ({}, "", False),
        ({"result": "failed"}, "sha256:f1", False),
        ({"fingerprint": ""}, "", False),
        ({"drift": DriftCheck("2026-11-30T11:00:00+00:00", clean=False)}, "sha256:f1", False),
        ({"drift": DriftCheck("2026-11-30T11:00:00+00:00", clean=True)}, "sha256:f1", True),
    ],
)
def test_skip_only_for_a_clean_successful_matching_entry(overrides, wanted, skipped):
    reason = entry(**overrides).skip_reason(wanted)
    assert (reason == "unchanged (since 2026-11-30T10:00:00+00:00)") is skipped
    assert bool(reason) is skipped


def test_local_entries_round_trip_atomically(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger"))
    assert ledger.get("silo-111111111111") is None
    written = ledger.put(entry(extra={"retained": ["acme-sales-raw-111111111111"]}))
    assert written.updated_at
    assert ledger.get("silo-111111111111") == written
    assert sorted(p.name for p in (tmp_path / "ledger").iterdir()) == ["silo-111111111111.json"]  # no temp file left
    ledger.put(entry(stack="silo-222222222222", account_id="222222222222"))
    assert ledger.stacks() == ["silo-111111111111", "silo-222222222222"]
    assert set(ledger.entries()) == {"silo-111111111111", "silo-222222222222"}
    ledger.delete("silo-222222222222")
    assert ledger.stacks() == ["silo-111111111111"]


def corrupt_documents(good: dict) -> dict[str, bytes]:
    tampered = {**good, "fingerprint": "sha256:forged"}
    newer = {**good, "version": 2}
    foreign = dict(good)
    foreign.pop("digest")
    return {
        "not json": b"{\"stack\": ",
        "not an object": b"[]",
        "binary": b"\xff\xfe\x00",
        "content changed after the digest": json.dumps(tampered).encode(),
        "another version": json.dumps(newer).encode(),
        "no digest": json.dumps(foreign).encode(),
        "empty": b"",
    }


def test_every_unreadable_entry_reads_as_missing_so_it_is_never_skipped(tmp_path):
    ledger = Ledger(str(tmp_path))
    good = ledger.put(entry()).to_json()
    for label, body in corrupt_documents(good).items():
        (tmp_path / "silo-111111111111.json").write_bytes(body)
        assert ledger.get("silo-111111111111") is None, label
        assert ledger.entries() == {}, label


def test_an_entry_copied_under_another_stack_name_is_refused(tmp_path):
    ledger = Ledger(str(tmp_path))
    ledger.put(entry())
    (tmp_path / "silo-222222222222.json").write_bytes((tmp_path / "silo-111111111111.json").read_bytes())
    assert ledger.get("silo-222222222222") is None
    assert set(ledger.entries()) == {"silo-111111111111"}


def test_deployment_and_drift_records_move_the_skip(tmp_path):
    with_memory = Ledger(str(tmp_path))

    done = with_memory.record_deployment(stack="silo-1", account_id="1", silo_name="s", action="create", succeeded=True, wanted="sha256:f")
    assert done.skip_reason("sha256:f").startswith("unchanged (since ")
    drifted = with_memory.record_drift(stack="silo-1", account_id="1", clean=False)
    assert drifted.skip_reason("sha256:f") == ""
    failed = with_memory.record_deployment(stack="silo-1", account_id="1", silo_name="s", action="update", succeeded=False, wanted="sha256:f")
    assert (failed.result, failed.fingerprint, failed.skip_reason("sha256:f")) == ("failed", "", "")
    again = with_memory.record_deployment(stack="silo-1", account_id="1", silo_name="s", action="update", succeeded=True, wanted="sha256:f")
    assert again.drift is None and again.skip_reason("sha256:f")
    assert with_memory.get("silo-1") == again


def test_stack_names_that_would_escape_the_prefix_are_refused(tmp_path):
    ledger = Ledger(str(tmp_path))
    for bad in ("", "../silo-1", "a/b", ".hidden"):
        with pytest.raises(UsageError, match="is not a stack name"):
            ledger.get(bad)


@mock_aws
def test_s3_entries_are_kms_encrypted_and_listed_in_one_pass():
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    key = boto3.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["Arn"]
    ledger = Ledger("s3://state/runner/ledger", s3_client=lambda: s3, kms_key_id=key)
    assert ledger.get("silo-111111111111") is None
    for account in ("111111111111", "222222222222", "333333333333"):
        ledger.put(entry(stack=f"silo-{account}", account_id=account))
    s3.put_object(Bucket="state", Key="runner/ledger/silo-444444444444.json", Body=b"garbage")
    s3.put_object(Bucket="state", Key="runner/ledger/nested/silo-555555555555.json", Body=b"{}")

    head = s3.head_object(Bucket="state", Key="runner/ledger/silo-111111111111.json")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key)
    assert ledger.stacks() == ["silo-111111111111", "silo-222222222222", "silo-333333333333", "silo-444444444444"]
    entries = ledger.entries()
    assert sorted(entries) == ["silo-111111111111", "silo-222222222222", "silo-333333333333"]
    assert entries["silo-222222222222"].account_id == "222222222222"
    ledger.delete("silo-333333333333")
    assert "silo-333333333333" not in ledger.stacks()


def test_s3_location_without_bucket_is_a_usage_error():
    with pytest.raises(UsageError, match="names no bucket; for example: s3://"):
        Ledger("s3:///ledger")


def test_tag_verdicts_are_kept_across_deployments_and_entries_written_before_them_still_read(tmp_path):
    ledger = Ledger(str(tmp_path))
    tagged = ledger.record_tags(stack="silo-1", account_id="1", opted_out=False)
    assert (tagged.opted_out, tagged.result, tagged.skip_reason("sha256:f")) == (False, "", "")  # a tag read alone skips nothing
    deployed = ledger.record_deployment(stack="silo-1", account_id="1", silo_name="s", action="create", succeeded=True, wanted="sha256:f")
    assert deployed.opted_out is False and deployed.tags_read_at == tagged.tags_read_at
    assert ledger.get("silo-1") == deployed
    # An entry written before the tag fields existed (same digest rule, no such keys) reads with no verdict.
    older = entry().to_json()
    for key in ("opted_out", "tags_read_at"):
        older.pop(key)
    body = {k: v for k, v in older.items() if k not in ("version", "digest")}
    import hashlib
    older["digest"] = "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    (tmp_path / "silo-111111111111.json").write_text(json.dumps(older))
    read = ledger.get("silo-111111111111")
    assert read is not None and read.opted_out is None and read.tags_read_at == ""


def racing_change(competitor: Ledger, stack: str):
    """A `change` during whose first call another run records the account's tags (the race a plain
    read-then-put loses): the deployment record must keep that verdict."""
    calls = []

    def change(current):
        calls.append(current)
        if len(calls) == 1:
            competitor.record_tags(stack=stack, account_id="1", opted_out=True, profile="big")
        base = current or LedgerEntry(stack=stack, account_id="1")
        return replace(base, result="succeeded", fingerprint="sha256:f")

    return change, calls


def test_a_concurrent_write_in_s3_is_read_again_not_overwritten():
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        ledger, other = (Ledger("s3://state/ledger", s3_client=lambda: s3) for _ in range(2))
        for existing in (False, True):  # a new entry (If-None-Match) and an existing one (If-Match)
            stack = f"silo-{int(existing)}"
            if existing:
                ledger.put(LedgerEntry(stack=stack, account_id="1", silo_name="s"))
            change, calls = racing_change(other, stack)
            written = ledger.update(stack, change)
            assert len(calls) == 2  # the first write met the competitor's and was refused
            stored = ledger.get(stack)
            assert stored == written and (stored.fingerprint, stored.opted_out, stored.tag_profile) == ("sha256:f", True, "big")
            assert stored.silo_name == ("s" if existing else None)


def test_concurrent_records_in_a_directory_lose_nothing(tmp_path):
    ledger = Ledger(str(tmp_path))
    ledger.put(LedgerEntry(stack="silo-1", account_id="1", extra={"n": 0}))

    def bump(_):
        for _ in range(40):
            ledger.update("silo-1", lambda e: replace(e, extra={"n": e.extra["n"] + 1}))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(bump, range(4)))
    assert ledger.get("silo-1").extra["n"] == 160


def test_an_update_that_keeps_meeting_other_writers_gives_up_with_a_clear_error():
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        ledger, other = (Ledger("s3://state/ledger", s3_client=lambda: s3) for _ in range(2))

        races = []

        def always_raced(current):
            races.append(current)  # each time another run writes something new in between
            other.put(LedgerEntry(stack="silo-1", account_id="1", extra={"race": len(races)}))
            return LedgerEntry(stack="silo-1", account_id="1", result="succeeded")

        with pytest.raises(RunnerError, match="ledger entry of silo-1: 8 conditional writes in a row met another writer's change"):
            ledger.update("silo-1", always_raced)
        assert len(races) == 8
