"""Adoption under mocks: `datalake:adopt` import ids reach exactly the retained resources, and no URN changes."""

from __future__ import annotations

import pytest
import pulumi

from offline.fake_stacks import export_of
from offline.stacks import run_silo, silo_config
from runner.lifecycle import ADOPT_KEY
from runner.retained import retained_resources

# What a retire-destroy leaves behind, by type (console on, as the template ships).
RETAINED_TYPES = {
    "aws:s3/bucket:Bucket", "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "aws:s3/bucketLogging:BucketLogging",
    "aws:s3/bucketPolicy:BucketPolicy", "aws:kms/key:Key", "aws:kms/alias:Alias", "aws:cloudwatch/logGroup:LogGroup",
    "aws:iam/policy:Policy",
}


@pytest.fixture(scope="module")
def first_life(evaluations):
    """The silo as first deployed, and what its retirement's export records as retained."""
    recording = evaluations.silo()
    return recording, retained_resources(export_of(recording))


def imported(recording) -> dict[str, str]:
    """`<type>::<logical name>` → import id of every resource the program asked the engine to import."""
    return {f"{r.type}::{r.name}": r.import_id for r in recording.resources if r.import_id}


def test_without_adopt_nothing_is_imported(first_life):
    recording, _ = first_life
    assert imported(recording) == {}


def test_every_retained_resource_is_adopted_with_its_id_and_nothing_else(first_life):
    recording, retained = first_life
    assert {r.type for r in retained} == RETAINED_TYPES
    assert len(retained) == len([r for r in recording.resources if r.retain_on_delete])
    again = run_silo(silo_config(**{ADOPT_KEY: {r.key: r.id for r in retained}}))

    assert imported(again) == {r.key: r.id for r in retained}
    assert sorted(r.urn for r in again.resources) == sorted(r.urn for r in recording.resources)  # no URN changed
    by_key = {f"{r.type}::{r.name}": r for r in again.resources}
    # The ids are the ones the first life's resources had: bucket names, the key id, the alias name.
    raw = next(r for r in retained if r.type == "aws:s3/bucket:Bucket" and r.name.endswith("storage-raw-bucket"))
    assert by_key[raw.key].import_id == "acme-dl-sales-raw-222222222222" == by_key[raw.key].inputs["bucket"]
    key = next(r for r in retained if r.type == "aws:kms/key:Key")
    assert by_key[key.key].import_id == recording.one("aws:kms/key:Key", key.name).outputs["id"]


def test_a_partly_missing_retained_set_imports_only_what_is_there(first_life):
    recording, retained = first_life
    kept = [r for r in retained if r.type in ("aws:kms/key:Key", "aws:cloudwatch/logGroup:LogGroup") or "storage-raw" in r.name]
    assert 2 < len(kept) < len(retained)
    again = run_silo(silo_config(**{ADOPT_KEY: {r.key: r.id for r in kept}}))
    assert imported(again) == {r.key: r.id for r in kept}
    created = [r for r in again.resources if r.retain_on_delete and not r.import_id]
    assert {f"{r.type}::{r.name}" for r in created} == {r.key for r in retained} - {r.key for r in kept}


def test_an_id_for_a_resource_the_program_no_longer_declares_is_named_in_a_warning(first_life, monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, resource=None, *a, **k: warnings.append(message))
    _, retained = first_life
    adopt = {retained[0].key: retained[0].id, "aws:s3/bucket:Bucket::silo-sales-storage-old-bucket": "old-bucket"}
    again = run_silo(silo_config(**{ADOPT_KEY: adopt}))
    assert list(imported(again).values()) == [retained[0].id]
    assert warnings == ["datalake:adopt names aws:s3/bucket:Bucket::silo-sales-storage-old-bucket, which this program does not declare; it is left as it is"]
