"""The bench's in-memory S3 gives the ledger and the report store what moto's S3 gives them."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ParamValidationError
from moto import mock_aws

from offline.fake_s3 import FakeS3
from runner.ledger import Ledger, LedgerEntry
from runner.report import ReportStore


def exercise(client, entries: int = 30) -> tuple:
    ledger = Ledger("s3://state/runner/ledger", s3_client=lambda: client, kms_key_id="arn:aws:kms:eu-west-1:111111111111:key/k")
    for n in range(1, entries + 1):
        ledger.put(LedgerEntry(stack=f"silo-{n:012d}", account_id=f"{n:012d}", result="succeeded", fingerprint="sha256:f"))
    client.put_object(Bucket="state", Key="runner/ledger/silo-999999999999.json", Body=b"garbage")
    ledger.delete("silo-000000000002")
    store = ReportStore("s3://state/runner-reports", lambda: client)
    store.put_json("run-1/report.json", {"ok": True})
    entries = ledger.entries()
    return (
        len(ledger.stacks()),
        sorted(entries)[:3],
        entries["silo-000000000001"].fingerprint,
        ledger.get("silo-000000000002"),
        store.get_json("run-1/report.json"),
        store.run_ids(),
    )


def test_the_fake_answers_the_ledger_as_moto_does():
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        expected = exercise(s3)
    fake = FakeS3()
    assert exercise(fake) == expected
    assert expected[0] == 30  # 29 entries left plus the garbage one


def conditional_puts(client) -> list[str]:
    """What S3 answers to conditional puts: the outcome of each, in order."""
    outcomes = []
    for params in ({"IfNoneMatch": "*"}, {"IfNoneMatch": "*"}, {"IfMatch": '"0123"'}, {}, {"IfMatch": "LATEST"}):
        if params.get("IfMatch") == "LATEST":
            params = {"IfMatch": client.head_object(Bucket="state", Key="k")["ETag"]}
        try:
            client.put_object(Bucket="state", Key="k", Body=b"x" * len(outcomes), **params)
            outcomes.append("written")
        except client.exceptions.NoSuchKey:
            outcomes.append("NoSuchKey")
        except Exception as exc:  # noqa: BLE001 - the error code is what is compared
            outcomes.append(exc.response["Error"]["Code"])
    try:
        client.put_object(Bucket="state", Key="gone", Body=b"x", IfMatch='"0123"')
    except Exception as exc:  # noqa: BLE001
        outcomes.append(exc.response["Error"]["Code"])
    return outcomes


def test_the_fake_answers_conditional_puts_as_moto_does():
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        expected = conditional_puts(s3)
    assert expected == ["written", "PreconditionFailed", "PreconditionFailed", "written", "written", "NoSuchKey"]
    assert conditional_puts(FakeS3()) == expected


def test_the_fake_pages_listings_as_s3_does(monkeypatch):
    import offline.fake_s3

    monkeypatch.setattr(offline.fake_s3, "LIST_PAGE", 7)  # S3 pages 1,000 keys; a smaller page shows the same paging
    fake = FakeS3()
    assert exercise(fake, entries=30)[0] == 30
    pages = list(fake.get_paginator("list_objects_v2").paginate(Bucket="state", Prefix="runner/ledger/"))
    assert [p["KeyCount"] for p in pages] == [7, 7, 7, 7, 2] and [p["IsTruncated"] for p in pages] == [True] * 4 + [False]


def test_the_fake_refuses_what_botocore_refuses_and_counts_requests():
    waits = []
    fake = FakeS3(latency=0.02, sleep=waits.append)
    with pytest.raises(ParamValidationError, match="Missing required parameter"):
        fake.get_object(Bucket="state")
    with pytest.raises(fake.exceptions.NoSuchKey):
        fake.get_object(Bucket="state", Key="missing")
    assert fake.requests == 1 and waits == [0.02]  # the refused call never reached the "service"
