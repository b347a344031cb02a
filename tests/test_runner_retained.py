"""The ledger of retained data on moto: what a retirement leaves, its figures and cost, and the purge across the silo account."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from components.shared.errors import UsageError
from runner.ledger import Ledger
from runner.retained import (
    GIB,
    RETAINED,
    BucketUsage,
    Usage,
    measure,
    monthly_cost,
    purge_command,
    purge_steps,
    record_retirement,
    retained_resources,
    retained_silos,
    retained_table,
)
from runner.silo_access import AssumedRoleClients

SILO, OTHER = "333333333333", "444444444444"
REGION = "eu-west-1"
STACK = f"silo-{SILO}"
PREFIX = f"urn:pulumi:{STACK}::datalake::datalake:silo:SiloAccount$datalake:storage:SiloStorage"


def urn(chain: str, type_: str, name: str) -> str:
    return f"{PREFIX}{chain}${type_}::{name}"


class CountingClients:
    """The runner's assume-role factory, recording every (account, service, operation) it is used for."""

    def __init__(self, region: str = REGION):
        self.real = AssumedRoleClients("OrganizationAccountAccessRole", region)
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, account_id: str, service: str) -> Any:
        client, calls = self.real(account_id, service), self.calls

        class Recorder:
            def __getattr__(self, name: str) -> Any:
                attribute = getattr(client, name)
                if name == "get_paginator":
                    return lambda operation: (calls.append((account_id, service, f"paginate {operation}")), attribute(operation))[1]
                if name in ("exceptions", "meta") or not callable(attribute):
                    return attribute

                def call(**kwargs: Any) -> Any:
                    calls.append((account_id, service, name))
                    return attribute(**kwargs)

                return call

        return Recorder()


def make_silo(clients: Any, account: str, silo: str) -> dict[str, Any]:
    """A retired silo's leftovers, made through the deploy role, and the exported state that described them."""
    s3, kms, logs, iam = (clients.real(account, s) for s in ("s3", "kms", "logs", "iam"))
    raw, access = f"datalake-{silo}-raw-{account}", f"datalake-{silo}-access-logs-{account}"
    for bucket in (raw, access):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=raw, Key="a.csv", Body=b"x" * 1000)
    s3.put_object(Bucket=raw, Key="a.csv", Body=b"y" * 2000)  # the 1000 bytes stay as a noncurrent version
    s3.put_object(Bucket=raw, Key="b.csv", Body=b"z" * 500, StorageClass="STANDARD_IA")
    s3.put_object(Bucket=raw, Key="c.csv", Body=b"w" * 10)
    s3.delete_object(Bucket=raw, Key="c.csv")  # a delete marker over a 10-byte version
    s3.put_object(Bucket=access, Key=f"{raw}/log", Body=b"l" * 100)
    key = kms.create_key(Description=f"silo {silo}")["KeyMetadata"]
    kms.create_alias(AliasName=f"alias/datalake-{silo}", TargetKeyId=key["KeyId"])
    logs.create_log_group(logGroupName=f"/datalake/{silo}/dropzone-audit")
    policy = iam.create_policy(PolicyName=f"datalake-{silo}-partner-boundary", Path="/datalake/", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{raw}/*"}]}
    ))["Policy"]["Arn"]
    stack = f"silo-{account}"
    base = f"urn:pulumi:{stack}::datalake::datalake:silo:SiloAccount"
    storage = f"{base}$datalake:storage:SiloStorage::silo-{silo}-storage"

    def bucket_resources(purpose: str, name: str, logs_to: str = "") -> list[dict[str, Any]]:
        parent = f"{base}$datalake:storage:SiloStorage$datalake:storage:SecureBucket::silo-{silo}-storage-{purpose}"
        chain = f"{base}$datalake:storage:SiloStorage$datalake:storage:SecureBucket"
        found = [
            {"urn": parent, "custom": False, "type": "datalake:storage:SecureBucket", "parent": storage},
            {"urn": f"{chain}$aws:s3/bucket:Bucket::silo-{silo}-storage-{purpose}-bucket", "custom": True, "type": "aws:s3/bucket:Bucket",
             "id": name, "parent": parent, "retainOnDelete": True, "outputs": {"bucket": name}},
            {"urn": f"{chain}$aws:s3/bucketVersioning:BucketVersioning::silo-{silo}-storage-{purpose}-versioning", "custom": True,
             "type": "aws:s3/bucketVersioning:BucketVersioning", "id": name, "parent": parent, "retainOnDelete": True},
        ]
        if logs_to:
            found.append({"urn": f"{chain}$aws:s3/bucketLogging:BucketLogging::silo-{silo}-storage-{purpose}-access-logging", "custom": True,
                          "type": "aws:s3/bucketLogging:BucketLogging", "id": name, "parent": parent, "retainOnDelete": True,
                          "inputs": {"bucket": name, "targetBucket": logs_to}})
        return found

    key_chain = f"{base}$datalake:storage:SiloStorage$datalake:encryption:EncryptionKey"
    dropzone = f"{base}$datalake:dropzone:Dropzone"
    resources = [
        *bucket_resources("raw", raw, logs_to=access),
        *bucket_resources("access-logs", access),
        {"urn": f"{key_chain}$aws:kms/key:Key::silo-{silo}-storage-key-key", "custom": True, "type": "aws:kms/key:Key", "id": key["KeyId"],
         "retainOnDelete": True, "outputs": {"arn": key["Arn"], "keyId": key["KeyId"]}},
        {"urn": f"{key_chain}$aws:kms/alias:Alias::silo-{silo}-storage-key-alias", "custom": True, "type": "aws:kms/alias:Alias",
         "id": f"alias/datalake-{silo}", "retainOnDelete": True, "outputs": {"name": f"alias/datalake-{silo}"}},
        {"urn": f"{dropzone}$aws:cloudwatch/logGroup:LogGroup::silo-{silo}-dropzone-audit-log", "custom": True,
         "type": "aws:cloudwatch/logGroup:LogGroup", "id": f"/datalake/{silo}/dropzone-audit", "retainOnDelete": True},
        {"urn": f"{dropzone}$aws:iam/policy:Policy::silo-{silo}-dropzone-partner-boundary", "custom": True, "type": "aws:iam/policy:Policy",
         "id": policy, "retainOnDelete": True},
        # Not retained, replaced-and-pending-delete, and read-only: none of them stays behind.
        {"urn": f"{dropzone}$aws:lambda/function:Function::silo-{silo}-dropzone-api", "custom": True, "type": "aws:lambda/function:Function", "id": "fn"},
        {"urn": f"{dropzone}$aws:iam/policy:Policy::silo-{silo}-old", "custom": True, "type": "aws:iam/policy:Policy", "id": "old",
         "retainOnDelete": True, "delete": True},
        {"urn": f"{dropzone}$aws:s3/bucket:Bucket::silo-{silo}-external", "custom": True, "type": "aws:s3/bucket:Bucket", "id": "ext",
         "retainOnDelete": True, "external": True},
    ]
    return {"state": {"version": 3, "deployment": {"resources": resources}}, "raw": raw, "access": access, "key": key, "policy": policy}


@pytest.fixture
def world(tmp_path):
    with mock_aws():
        clients = CountingClients()
        yield clients, make_silo(clients, SILO, "sales"), make_silo(clients, OTHER, "marketing"), Ledger(str(tmp_path / "ledger"))


def test_only_retained_resources_of_the_export_are_recorded(world):
    _, sales, _, _ = world
    found = retained_resources(sales["state"])
    assert sorted(r.type for r in found) == sorted(
        ["aws:s3/bucket:Bucket"] * 2 + ["aws:s3/bucketVersioning:BucketVersioning"] * 2
        + ["aws:s3/bucketLogging:BucketLogging", "aws:kms/key:Key", "aws:kms/alias:Alias", "aws:cloudwatch/logGroup:LogGroup", "aws:iam/policy:Policy"]
    )
    by_type = {r.type: r for r in found}
    assert by_type["aws:kms/key:Key"].physical == sales["key"]["Arn"]
    assert by_type["aws:kms/alias:Alias"].key == "aws:kms/alias:Alias::silo-sales-storage-key-alias"
    assert {r.id: r.receives_logs for r in found if r.type == "aws:s3/bucket:Bucket"} == {sales["raw"]: False, sales["access"]: True}


def test_figures_come_from_cheap_reads_in_the_silo_account(world):
    clients, sales, _, _ = world
    usage = measure(clients, SILO, retained_resources(sales["state"]))
    assert usage.error == ""
    raw = usage.buckets[sales["raw"]]
    assert (raw.objects, raw.noncurrent_versions, raw.delete_markers, raw.bytes) == (2, 2, 1, 3510)
    assert raw.bytes_by_class == {"STANDARD": 3010, "STANDARD_IA": 500}
    assert usage.buckets[sales["access"]].bytes == 100
    assert usage.key_states == {sales["key"]["KeyId"]: "Enabled"}
    assert usage.log_group_bytes == {"/datalake/sales/dropzone-audit": 0}
    # Reads only, and only in the silo's own account.
    assert {(a, s) for a, s, _ in clients.calls} == {(SILO, "s3"), (SILO, "logs"), (SILO, "kms")}
    assert {op for _, _, op in clients.calls} == {"paginate list_object_versions", "describe_log_groups", "describe_key"}


def test_an_unreachable_account_is_recorded_as_not_measured():
    def denied(account: str, service: str) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized to perform sts:AssumeRole"}}, "AssumeRole")

    usage = measure(denied, SILO, [])
    assert usage.error == f"could not measure in {SILO}: AccessDenied: not authorized to perform sts:AssumeRole"


def test_monthly_cost_is_priced_per_storage_class_from_the_price_table(world):
    _, sales, _, _ = world
    resources = retained_resources(sales["state"])
    usage = Usage(
        buckets={"a": BucketUsage(bytes_by_class={"STANDARD": 100 * GIB, "STANDARD_IA": 50 * GIB}), "b": BucketUsage(bytes_by_class={"GLACIER": 10 * GIB})},
        log_group_bytes={"/x": 2 * GIB}, key_states={sales["key"]["KeyId"]: "Enabled"},
    )
    lines = {line.what: round(line.usd_per_month, 4) for line in monthly_cost(resources, usage, "eu-central-1")}
    assert lines == {
        "S3 STANDARD": round(100 * 0.0245, 4),
        "S3 STANDARD_IA": round(50 * 0.0135, 4),
        "S3 GLACIER (priced as STANDARD)": round(10 * 0.0245, 4),
        "CloudWatch Logs storage": round(2 * 0.0324, 4),
        "KMS customer managed keys": 1.0,
    }
    # A key already pending deletion is not billed.
    usage.key_states = {sales["key"]["KeyId"]: "PendingDeletion"}
    assert "KMS customer managed keys" not in {line.what for line in monthly_cost(resources, usage, "eu-central-1")}


def test_retirements_are_recorded_in_the_ledger_and_listed_with_totals(world):
    clients, sales, marketing, ledger = world
    for account, silo, made in ((SILO, "sales", sales), (OTHER, "marketing", marketing)):
        resources = retained_resources(made["state"])
        record_retirement(ledger, stack=f"silo-{account}", account_id=account, silo_name=silo, action="retire-destroy",
                          state=made["state"], region=REGION, exported_to=f"out/exports/silo-{account}.json",
                          usage=measure(clients, account, resources))
    entry = ledger.get(STACK)
    assert entry.extra[RETAINED]["action"] == "retire-destroy" and entry.silo_name == "sales"
    silos = retained_silos(ledger.entries().values())
    assert [s.silo_name for s in silos] == ["marketing", "sales"]
    assert silos[1].adoptable["aws:kms/key:Key::silo-sales-storage-key-key"] == sales["key"]["KeyId"]
    text = retained_table(silos)
    total = text.splitlines()[-1].split()
    # 2 silos, 4 buckets, 2 x (4 raw versions + 1 log object) = 10 objects, 2 x 3610 bytes = 7.1 KiB, 2 keys, 2 x 1.00 USD (the bytes cost ~0).
    assert total == ["total", "2", "silos", "4", "10", "7.1", "KiB", "2", "2.00"]
    assert "sales  " in text and "retire-destroy" in text


def _retire_sales(world) -> None:
    clients, sales, _, ledger = world
    record_retirement(ledger, stack=STACK, account_id=SILO, silo_name="sales", action="retire-destroy", state=sales["state"],
                      region=REGION, exported_to="x", usage=measure(clients, SILO, retained_resources(sales["state"])))
    clients.calls.clear()


def test_purge_without_confirmation_lists_every_deletion_and_deletes_nothing(world):
    clients, sales, _, ledger = world
    _retire_sales(world)
    out = io.StringIO()
    assert purge_command(ledger, "sales", None, "", clients, out) == 0
    text = out.getvalue()
    assert text.splitlines()[1:7] == [
        f"  1. empty bucket {sales['raw']} (2 objects, 2 noncurrent versions, 1 delete markers, 3510 bytes) of every version and delete marker, then delete it with its settings",
        f"  2. empty bucket {sales['access']} (1 objects, 0 noncurrent versions, 0 delete markers, 100 bytes) of every version and delete marker, then delete it with its settings",
        "  3. delete log group /datalake/sales/dropzone-audit",
        f"  4. delete IAM policy {sales['policy']} (and its non-default versions)",
        "  5. delete KMS alias alias/datalake-sales",
        f"  6. schedule deletion of KMS key {sales['key']['KeyId']} in 30 days (KMS cannot delete a key at once)",
    ]
    assert "dry run: nothing was deleted. To delete, run: python -m runner purge sales --confirm sales" in text
    assert clients.calls == []
    assert ledger.get(STACK).extra[RETAINED]["resources"]


def test_purge_refuses_a_wrong_confirmation_and_an_active_silo(world):
    clients, _, _, ledger = world
    _retire_sales(world)
    with pytest.raises(UsageError, match="--confirm 'marketing' does not match the silo 'sales'"):
        purge_command(ledger, "sales", "marketing", "", clients, io.StringIO())
    with pytest.raises(UsageError, match=f"purge sales: refused, account {SILO} is an active silo"):
        purge_command(ledger, SILO, "sales", "is an active silo (ACTIVE in the silo OU)", clients, io.StringIO())
    with pytest.raises(UsageError, match="no retired silo of that name or account holds retained resources; retained silos: sales"):
        purge_command(ledger, "finance", "finance", "", clients, io.StringIO())
    assert clients.calls == []


def _gone(call) -> bool:
    try:
        call()
    except ClientError:
        return True
    return False


def test_purge_deletes_exactly_what_it_listed_in_the_silo_account(world):
    clients, sales, marketing, ledger = world
    _retire_sales(world)
    out = io.StringIO()
    assert purge_command(ledger, "sales", "sales", "", clients, out, key_deletion_days=7) == 0, out.getvalue()
    s3, kms, logs, iam = (clients.real(SILO, s) for s in ("s3", "kms", "logs", "iam"))
    assert _gone(lambda: s3.head_bucket(Bucket=sales["raw"])) and _gone(lambda: s3.head_bucket(Bucket=sales["access"]))
    assert logs.describe_log_groups(logGroupNamePrefix="/datalake/sales/")["logGroups"] == []
    assert _gone(lambda: iam.get_policy(PolicyArn=sales["policy"]))
    assert [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/datalake-sales"] == []
    key = kms.describe_key(KeyId=sales["key"]["KeyId"])["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
    # Everything was done in the silo's account; the other silo's leftovers are untouched.
    assert {a for a, _, _ in clients.calls} == {SILO}
    other_s3 = clients.real(OTHER, "s3")
    assert other_s3.head_bucket(Bucket=marketing["raw"]) and clients.real(OTHER, "kms").describe_key(KeyId=marketing["key"]["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    # The ledger forgets them: nothing left to list or adopt.
    record = ledger.get(STACK).extra[RETAINED]
    assert record["resources"] == [] and record["purged_at"] and len(record["purged"]) == 6
    assert retained_silos(ledger.entries().values()) == []


def test_a_purge_that_fails_stops_there_and_a_rerun_resumes(world):
    clients, sales, _, ledger = world
    _retire_sales(world)
    iam = clients.real(SILO, "iam")
    iam.create_user(UserName="acme", Path="/datalake/partners/sales/")
    iam.attach_user_policy(UserName="acme", PolicyArn=sales["policy"])
    out = io.StringIO()
    assert purge_command(ledger, "sales", "sales", "", clients, out) == 1
    assert f"FAILED delete IAM policy {sales['policy']}: IAM policy {sales['policy']} is still attached to acme" in out.getvalue()
    kms = clients.real(SILO, "kms")
    assert kms.describe_key(KeyId=sales["key"]["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"  # later steps did not run
    left = {r["type"] for r in ledger.get(STACK).extra[RETAINED]["resources"]}
    assert left == {"aws:iam/policy:Policy", "aws:kms/alias:Alias", "aws:kms/key:Key"}

    iam.detach_user_policy(UserName="acme", PolicyArn=sales["policy"])
    out = io.StringIO()
    assert purge_command(ledger, "sales", "sales", "", clients, out) == 0
    assert "empty bucket" not in out.getvalue() and "1. delete IAM policy" in out.getvalue()  # the buckets are not listed again
    assert kms.describe_key(KeyId=sales["key"]["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_the_key_deletion_window_is_what_kms_allows():
    from runner.retained import RetainedSilo

    silo = RetainedSilo(STACK, SILO, "sales", "retire-destroy", "", REGION, (), Usage())
    with pytest.raises(UsageError, match="--key-deletion-days 3: KMS allows 7 to 30 days"):
        purge_steps(silo, 3)


def test_only_retained_resources_still_there_count_as_adoptable(world):
    from runner.retained import present_keys

    clients, sales, _, _ = world
    adopt = {r.key: r.id for r in retained_resources(sales["state"])}
    assert present_keys(clients, SILO, adopt) == set(adopt)
    s3, kms = clients.real(SILO, "s3"), clients.real(SILO, "kms")
    for version in s3.list_object_versions(Bucket=sales["access"]).get("Versions", []):
        s3.delete_object(Bucket=sales["access"], Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket=sales["access"])  # deleted by hand
    kms.schedule_key_deletion(KeyId=sales["key"]["KeyId"], PendingWindowInDays=7)
    gone = set(adopt) - present_keys(clients, SILO, adopt)
    assert gone == {
        "aws:s3/bucket:Bucket::silo-sales-storage-access-logs-bucket",
        "aws:s3/bucketVersioning:BucketVersioning::silo-sales-storage-access-logs-versioning",
        "aws:kms/key:Key::silo-sales-storage-key-key",
        "aws:kms/alias:Alias::silo-sales-storage-key-alias",  # its key is pending deletion
    }


def test_a_refresh_replaces_the_figures_with_what_the_buckets_hold_now(world):
    from runner.retained import record_usage

    clients, sales, _, ledger = world
    _retire_sales(world)
    clients.real(SILO, "s3").put_object(Bucket=sales["raw"], Key="d.csv", Body=b"n" * 4000)
    [silo] = retained_silos(ledger.entries().values())
    record_usage(ledger, ledger.get(STACK), measure(clients, SILO, list(silo.resources)))
    [silo] = retained_silos(ledger.entries().values())
    assert (silo.usage.buckets[sales["raw"]].objects, silo.usage.buckets[sales["raw"]].bytes) == (3, 7510)
    assert [r.id for r in silo.resources] == [r.id for r in retained_resources(sales["state"])]  # the resources stay as recorded
