"""Sharing of processed data, read-only (bucket, key, catalog), nothing else: with the analytics OU
by org path, and with the master account (its org-wide Athena catalogs) inside the organization."""

from __future__ import annotations

import json
import re

import pytest

from offline.harness import SILO_ACCOUNT_ID, Recording, run_program
from offline.stacks import master_stack_outputs, run_silo, silo_config

ANALYTICS = {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/*"]}}
PROCESSED_ARN = f"arn:aws:s3:::acme-dl-sales-processed-{SILO_ACCOUNT_ID}"
MASTER_ACCOUNT = master_stack_outputs()["accountId"]
MASTER = {"AWS": f"arn:aws:iam::{MASTER_ACCOUNT}:root"}
IN_ORG = {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
MASTER_QUERIES_OFF = {"datalake:sharing": {"masterQueries": False}}


@pytest.fixture(scope="module")
def silo(evaluations) -> Recording:
    return evaluations.silo()


def bucket_policies(silo: Recording) -> dict[str, dict]:
    found = {}
    for bucket in silo.of_type("aws:s3/bucket:Bucket"):
        purpose = bucket.inputs["tags"]["datalake:purpose"]
        found[purpose] = silo.bucket_part(bucket, "aws:s3/bucketPolicy:BucketPolicy").policy()
    return found


def analytics_statements(document: dict) -> list[dict]:
    return [s for s in document["Statement"] if "aws:PrincipalOrgPaths" in json.dumps(s.get("Condition", {}))]


def master_statements(document: dict) -> list[dict]:
    """Statements naming the master account anywhere (principal, condition, resource)."""
    return [s for s in document["Statement"] if MASTER_ACCOUNT in json.dumps(s)]


def catalog_policy(silo: Recording) -> dict:
    return silo.one("aws:glue/resourcePolicy:ResourcePolicy").policy()


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
    (statement,) = analytics_statements(catalog_policy(silo))
    assert statement["Sid"] == "AnalyticsOuReadsProcessedCatalog" and statement["Principal"] == {"AWS": "*"}
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
    (statement,) = analytics_statements(catalog_policy(silo))
    assert statement["Condition"]["ForAnyValue:StringLike"]["aws:PrincipalOrgPaths"] == [f"{path}*"]


def test_processed_bucket_lets_the_master_list_it_and_get_current_objects_only(silo):
    assert master_statements(bucket_policies(silo)["processed"]) == [
        {
            "Sid": "MasterListsProcessed",
            "Effect": "Allow",
            "Principal": MASTER,
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [PROCESSED_ARN],
            "Condition": IN_ORG,
        },
        {
            "Sid": "MasterReadsProcessed",
            "Effect": "Allow",
            "Principal": MASTER,
            "Action": ["s3:GetObject"],
            "Resource": [f"{PROCESSED_ARN}/*"],
            "Condition": IN_ORG,
        },
    ]


@pytest.mark.parametrize("purpose", ["raw", "dropzone", "athena-results", "access-logs", "console"])
def test_no_other_bucket_mentions_the_master(silo, purpose):
    assert MASTER_ACCOUNT not in json.dumps(bucket_policies(silo)[purpose])


def test_key_lets_the_master_decrypt_only_processed_objects_through_s3(silo):
    (key,) = silo.of_type("aws:kms/key:Key")
    assert master_statements(key.policy()) == [
        {
            "Sid": "MasterDecryptsProcessedObjects",
            "Effect": "Allow",
            "Principal": MASTER,
            "Action": ["kms:Decrypt"],
            "Resource": ["*"],
            "Condition": {
                "StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5", "kms:ViaService": "s3.eu-west-1.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [PROCESSED_ARN, f"{PROCESSED_ARN}/*"]},
            },
        }
    ]


def test_catalog_policy_lets_the_master_read_only_the_processed_database_metadata(silo):
    glue = f"arn:aws:glue:eu-west-1:{SILO_ACCOUNT_ID}"
    assert master_statements(catalog_policy(silo)) == [
        {
            "Sid": "MasterReadsProcessedCatalog",
            "Effect": "Allow",
            "Principal": MASTER,
            "Action": [
                "glue:GetDatabase",
                "glue:GetDatabases",
                "glue:GetTable",
                "glue:GetTables",
                "glue:GetPartition",
                "glue:GetPartitions",
                "glue:BatchGetPartition",
            ],
            "Resource": [f"{glue}:catalog", f"{glue}:database/acme_dl_sales_processed", f"{glue}:table/acme_dl_sales_processed/*"],
            "Condition": IN_ORG,
        }
    ]


def test_the_master_account_comes_from_the_master_stack_outputs():
    config = silo_config()
    outputs = {**master_stack_outputs(), "accountId": "444444444444"}
    silo = run_program(
        config,
        stack=f"silo-{SILO_ACCOUNT_ID}",
        account_id=SILO_ACCOUNT_ID,
        stack_outputs={config["datalake:masterStack"]: outputs},
    )
    (statement,) = [s for s in catalog_policy(silo)["Statement"] if s["Sid"] == "MasterReadsProcessedCatalog"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::444444444444:root"}
    assert MASTER_ACCOUNT not in str([r.inputs for r in silo.resources])


def test_master_queries_off_grants_the_master_nothing_and_leaves_analytics_as_it_was(silo):
    off = run_silo(silo_config(**MASTER_QUERIES_OFF))
    for resource, key, document in off.policies():
        assert MASTER_ACCOUNT not in json.dumps(document), f"{resource.urn}.{key} names the master"
        assert not any(s["Sid"].startswith("Master") for s in document["Statement"]), resource.urn
    # The analytics OU's grants are the same statements with and without the master's.
    assert analytics_statements(catalog_policy(off)) == analytics_statements(catalog_policy(silo))
    assert analytics_statements(bucket_policies(off)["processed"]) == analytics_statements(bucket_policies(silo)["processed"])
    (key_off,), (key_on,) = off.of_type("aws:kms/key:Key"), silo.of_type("aws:kms/key:Key")
    assert key_off.statement("AnalyticsOuDecryptsProcessedObjects") == key_on.statement("AnalyticsOuDecryptsProcessedObjects")


def test_no_policy_names_an_account_but_the_silo_and_the_master_only_in_its_grants(silo):
    master_grants = set()
    for resource, key, document in silo.policies():
        for statement in document["Statement"]:
            accounts = set(re.findall(r"\b\d{12}\b", json.dumps(statement)))
            assert accounts <= {SILO_ACCOUNT_ID, MASTER_ACCOUNT}, f"{resource.urn}.{key} names {accounts}"
            if MASTER_ACCOUNT in accounts:
                master_grants.add((resource.type, statement["Sid"]))
    assert master_grants == {
        ("aws:s3/bucketPolicy:BucketPolicy", "MasterListsProcessed"),
        ("aws:s3/bucketPolicy:BucketPolicy", "MasterReadsProcessed"),
        ("aws:kms/key:Key", "MasterDecryptsProcessedObjects"),
        ("aws:glue/resourcePolicy:ResourcePolicy", "MasterReadsProcessedCatalog"),
    }


def test_conditions_merge_per_operator_and_a_key_set_twice_is_refused():
    from components.shared.iam import merge_conditions

    assert merge_conditions(IN_ORG, {"StringEquals": {"kms:ViaService": "s3"}}, ANALYTICS) == {
        "StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5", "kms:ViaService": "s3"},
        **ANALYTICS,
    }
    with pytest.raises(ValueError, match="aws:PrincipalOrgID set twice under StringEquals"):
        merge_conditions(IN_ORG, IN_ORG)
