"""Partner keys are confined to their own prefix, with moto evaluating IAM policies on S3 calls.

Setup runs without authentication; the checks run inside `set_initial_no_auth_action_count(0)`,
where every request is signed-checked and authorized against the caller's IAM policies.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import set_initial_no_auth_action_count

from conftest import REGION, Silo, make_silo, new_partner


def s3_as(credentials: dict) -> "boto3.client":
    return boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id=credentials["access_key_id"],
        aws_secret_access_key=credentials["secret_access_key"],
    )


def put(s3, bucket: str, key: str, kms_key: str) -> str:
    """'allowed' or the error code of an SSE-KMS upload."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"rows", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key)
        return "allowed"
    except ClientError as error:
        return error.response["Error"]["Code"]


def test_partner_key_reaches_only_its_own_prefix(zone: Silo):
    acme = new_partner(zone, "acme")["credentials"]
    new_partner(zone, "globex")
    other_silo = make_silo("other")
    key = zone.dropzone.key_arn
    bucket = zone.dropzone.bucket

    @set_initial_no_auth_action_count(0)
    def attempts() -> dict[str, str]:
        s3 = s3_as(acme)
        return {
            "own prefix": put(s3, bucket, "dropzone/acme/orders.csv", key),
            "own prefix, nested": put(s3, bucket, "dropzone/acme/2026/11/orders.csv", key),
            "other partner's prefix": put(s3, bucket, "dropzone/globex/orders.csv", key),
            "prefix that only starts alike": put(s3, bucket, "dropzone/acme-evil/orders.csv", key),
            "internal uploads": put(s3, bucket, "dropzone/internal/orders.csv", key),
            "bucket root": put(s3, bucket, "orders.csv", key),
            "raw bucket": put(s3, zone.raw_bucket, "dropzone/acme/orders.csv", key),
            "another silo's dropzone": put(s3, other_silo.dropzone.bucket, "dropzone/acme/orders.csv", other_silo.dropzone.key_arn),
        }

    assert attempts() == {
        "own prefix": "allowed",
        "own prefix, nested": "allowed",
        "other partner's prefix": "AccessDenied",
        "prefix that only starts alike": "AccessDenied",
        "internal uploads": "AccessDenied",
        "bucket root": "AccessDenied",
        "raw bucket": "AccessDenied",
        "another silo's dropzone": "AccessDenied",
    }
    stored = zone.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in stored) == ["dropzone/acme/2026/11/orders.csv", "dropzone/acme/orders.csv"]


def test_partner_can_read_back_its_own_files_only(zone: Silo):
    acme = new_partner(zone, "acme")["credentials"]
    s3_admin = zone.client("s3")
    s3_admin.put_object(Bucket=zone.dropzone.bucket, Key="dropzone/acme/a.csv", Body=b"a")
    s3_admin.put_object(Bucket=zone.dropzone.bucket, Key="dropzone/globex/b.csv", Body=b"b")

    @set_initial_no_auth_action_count(0)
    def reads() -> tuple[bytes, str]:
        s3 = s3_as(acme)
        own = s3.get_object(Bucket=zone.dropzone.bucket, Key="dropzone/acme/a.csv")["Body"].read()
        with pytest.raises(ClientError) as denied:
            s3.get_object(Bucket=zone.dropzone.bucket, Key="dropzone/globex/b.csv")
        return own, denied.value.response["Error"]["Code"]

    assert reads() == (b"a", "AccessDenied")


def test_a_rotated_out_or_deleted_key_no_longer_works(zone: Silo):
    old = new_partner(zone, "acme")["credentials"]
    new = zone.call("POST", "/partners/acme/rotate", {})[1]["credentials"]
    key, bucket = zone.dropzone.key_arn, zone.dropzone.bucket

    @set_initial_no_auth_action_count(0)
    def attempts() -> tuple[str, str]:
        return put(s3_as(old), bucket, "dropzone/acme/x", key), put(s3_as(new), bucket, "dropzone/acme/x", key)

    assert attempts() == ("InvalidAccessKeyId", "allowed")
    zone.call("DELETE", "/partners/acme")
    assert set_initial_no_auth_action_count(0)(lambda: put(s3_as(new), bucket, "dropzone/acme/y", key))() == "InvalidAccessKeyId"
