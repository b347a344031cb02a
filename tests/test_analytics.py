"""Org-wide analytics: the workgroup, and one GLUE catalog per ACTIVE account of the silo OU."""

from __future__ import annotations

import re

import pytest

from components.master.analytics import OrgAccount, catalog_names, ou_id_of
from offline.harness import DESCENDANT_ACCOUNTS, descendant_accounts
from offline.stacks import master_config, run_master

CATALOG = "aws:athena/dataCatalog:DataCatalog"
# Athena catalog names: up to 128 of letters, digits, `_`, `@`, `-`; ours must be plain SQL identifiers.
PLAIN_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,126}$")


def run_with_accounts(accounts, config=None):
    asked = []

    def handler(args):
        asked.append(dict(args))
        return descendant_accounts(accounts)(args)

    recording = run_master(config, invokes={DESCENDANT_ACCOUNTS: handler})
    return recording, asked


def test_discovery_asks_for_the_last_ou_of_the_silo_path():
    config = master_config()
    config["datalake:siloOuPath"] = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-33333333/"
    _, asked = run_with_accounts([], config)
    assert asked == [{"parentId": "ou-ab12-33333333"}]
    assert ou_id_of("o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/") == "ou-ab12-11111111"


def test_no_silo_accounts_means_no_catalogs_but_a_workgroup():
    recording, _ = run_with_accounts([])
    assert recording.of_type(CATALOG) == []
    assert recording.outputs["siloCatalogs"] == {}
    recording.one("aws:athena/workgroup:Workgroup")


def test_one_account_gets_a_glue_catalog_pointing_at_its_account():
    recording, _ = run_with_accounts([{"id": "333333333333", "name": "Sales EU", "state": "ACTIVE"}])
    (catalog,) = recording.of_type(CATALOG)
    assert catalog.inputs["type"] == "GLUE"
    assert catalog.inputs["parameters"] == {"catalog-id": "333333333333"}
    assert catalog.inputs["name"] == "silo_sales_eu"
    assert catalog.name == "master-analytics-catalog-333333333333"
    assert recording.outputs["siloCatalogs"] == {"333333333333": "silo_sales_eu"}


def test_many_accounts_each_get_one_catalog_and_suspended_ones_are_skipped():
    accounts = [
        {"id": f"3000000000{i:02d}", "name": f"project-{i}", "state": "ACTIVE"} for i in range(12)
    ] + [
        {"id": "399999999991", "name": "gone", "state": "SUSPENDED"},
        {"id": "399999999992", "name": "closing", "state": "PENDING_CLOSURE"},
    ]
    recording, _ = run_with_accounts(accounts)
    catalogs = {c.inputs["parameters"]["catalog-id"]: c.inputs["name"] for c in recording.of_type(CATALOG)}
    assert catalogs == {f"3000000000{i:02d}": f"silo_project_{i}" for i in range(12)}
    assert "399999999991" not in catalogs and "399999999992" not in catalogs


def test_names_are_plain_identifiers_and_collisions_are_disambiguated_by_account():
    names = catalog_names(
        [
            OrgAccount("444444444444", "Data-Lake: Sales!", "ACTIVE"),
            OrgAccount("555555555555", "data lake sales", "ACTIVE"),
            OrgAccount("666666666666", "!!!", "ACTIVE"),
            OrgAccount("777777777777", "x" * 300, "ACTIVE"),
        ],
        "silo_",
    )
    assert names["444444444444"] == "silo_data_lake_sales_444444444444"
    assert names["555555555555"] == "silo_data_lake_sales_555555555555"
    assert names["666666666666"] == "silo_666666666666"
    assert len(names["777777777777"]) == 127
    assert all(PLAIN_IDENTIFIER.match(n) for n in names.values()), names


def test_catalog_prefix_comes_from_config():
    config = master_config()
    config["datalake:analytics"] = {"catalogPrefix": "lake_"}
    recording, _ = run_with_accounts([{"id": "333333333333", "name": "hr", "state": "ACTIVE"}], config)
    assert recording.one(CATALOG).inputs["name"] == "lake_hr"


def test_workgroup_enforces_encrypted_results_in_its_own_bucket(master):
    workgroup = master.one("aws:athena/workgroup:Workgroup").inputs["configuration"]
    key_arn = master.one("aws:kms/key:Key").outputs["arn"]
    results = master.one("aws:s3/bucket:Bucket", "master-analytics-results-bucket").inputs["bucket"]
    assert workgroup["enforceWorkgroupConfiguration"] is True
    assert workgroup["bytesScannedCutoffPerQuery"] == 10 * 1024**3
    result = workgroup["resultConfiguration"]
    assert result["outputLocation"] == f"s3://{results}/results/"
    assert result["encryptionConfiguration"] == {"encryptionOption": "SSE_KMS", "kmsKeyArn": key_arn}
    assert result["expectedBucketOwner"] == "111111111111"


def test_results_bucket_expires_old_results(master):
    bucket = master.one("aws:s3/bucket:Bucket", "master-analytics-results-bucket")
    lifecycle = master.bucket_part(bucket, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    expiry = [r for r in lifecycle.inputs["rules"] if r["id"] == "expire-current-objects"]
    assert expiry and expiry[0]["expiration"]["days"] == 30


@pytest.mark.parametrize("prefix", ["Silo_", "1silo", "silo-", ""])
def test_bad_catalog_prefix_is_rejected_with_the_key(prefix):
    from components.stack_config import parse_stack_config
    from components.shared.errors import ConfigError

    config = master_config()
    config["datalake:analytics"] = {"catalogPrefix": prefix}
    with pytest.raises(ConfigError) as error:
        parse_stack_config("master", config)
    assert "datalake:analytics.catalogPrefix" in str(error.value)
    assert "for example: silo_" in str(error.value)
