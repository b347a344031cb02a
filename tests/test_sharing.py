"""Analytics OU: read-only on processed data (bucket, key, catalog), nothing else, no account lists."""

from __future__ import annotations

import json
import re

import pytest

from offline.harness import SILO_ACCOUNT_ID, Recording
from offline.stacks import run_silo, silo_config

ANALYTICS = {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/*"]}}
PROCESSED_ARN = f"arn:aws:s3:::acme-dl-sales-processed-{SILO_ACCOUNT_ID}"


@pytest.fixture(scope="module")
def silo() -> Recording:
    return run_silo()


def bucket_policies(silo: Recording) -> dict[str, dict]:
    found = {}
    for bucket in silo.of_type("aws:s3/bucket:Bucket"):
        purpose = bucket.inputs["tags"]["datalake:purpose"]
        found[purpose] = silo.bucket_part(bucket, "aws:s3/bucketPolicy:BucketPolicy").policy()
    return found


def analytics_statements(document: dict) -> list[dict]:
    return [s for s in document["Statement"] if "aws:PrincipalOrgPaths" in json.dumps(s.get("Condition", {}))]


def test_processed_bucket_grants_list_and_get_to_the_analytics_ou_only(silo):
    statements = analytics_statements(bucket_policies(silo)["processed"])
    assert {s["Sid"] for s in statements} == {"AnalyticsOuListsProcessed", "AnalyticsOuReadsProcessed"}
    for statement in statements:
        assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": "*"}
        assert statement["Condition"] == ANALYTICS
        assert all(a.startswith(("s3:Get", "s3:List")) for a in statement["Action"])
    reads = next(s for s in statements if s["Sid"] == "AnalyticsOuReadsProcessed")
    assert reads["Resource"] == [f"{PROCESSED_ARN}/*"]


@pytest.mark.parametrize("purpose", ["raw", "dropzone", "athena-results", "access-logs"])
def test_no_other_bucket_is_shared(silo, purpose):
    assert analytics_statements(bucket_policies(silo)[purpose]) == []


def test_key_lets_analytics_decrypt_only_processed_objects_through_s3(silo):
    grant = silo.one("aws:kms/key:Key").statement("AnalyticsOuDecryptsProcessedObjects")
    assert grant["Action"] == ["kms:Decrypt"]
    assert grant["Condition"] == {
        **ANALYTICS,
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [PROCESSED_ARN, f"{PROCESSED_ARN}/*"]},
    }


def test_catalog_policy_shares_only_the_processed_database_read_only(silo):
    (statement,) = silo.one("aws:glue/resourcePolicy:ResourcePolicy").policy()["Statement"]
    assert statement["Condition"] == ANALYTICS
    assert all(a.startswith(("glue:Get", "glue:BatchGet")) for a in statement["Action"])
    glue = f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}"
    assert statement["Resource"] == [
        f"{glue}:catalog",
        f"{glue}:database/acme_dl_sales_processed",
        f"{glue}:table/acme_dl_sales_processed/*",
    ]


def test_sharing_follows_the_configured_analytics_ou():
    path = "o-a1b2c3d4e5/r-ab12/ou-ab12-33333333/"
    silo = run_silo(silo_config(**{"datalake:analyticsOuPath": path}))
    (statement,) = silo.one("aws:glue/resourcePolicy:ResourcePolicy").policy()["Statement"]
    assert statement["Condition"]["ForAnyValue:StringLike"]["aws:PrincipalOrgPaths"] == [f"{path}*"]


def test_no_policy_names_an_account_other_than_the_silo(silo):
    for resource, key, document in silo.policies():
        text = json.dumps(document)
        for account in {a for a in re.findall(r"\b\d{12}\b", text)}:
            assert account == SILO_ACCOUNT_ID, f"{resource.urn}.{key} names {account}"
