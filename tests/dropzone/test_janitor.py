"""The scheduled janitor against moto: expired partners lose their keys, others keep theirs."""

from __future__ import annotations

import types

from credential_vending import janitor

from conftest import SSH_KEY_FOR_TESTS, Silo, new_partner


def statuses(zone: Silo, name: str) -> tuple[list[str], list[str]]:
    iam = zone.client("iam")
    keys = [k["Status"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]
    ssh = [k["Status"] for k in iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"]]
    return keys, ssh


def test_janitor_deactivates_expired_partners_only_and_reports_it(zone: Silo):
    expiring = new_partner(zone, "acme", expires_in_days=1)
    new_partner(zone, "globex", expires_in_days=30)
    zone.call("POST", "/partners/acme/ssh-keys", {"public_key": SSH_KEY_FOR_TESTS})
    iam = zone.client("iam")

    assert janitor.run(iam, zone.api.audit, zone.dropzone, "run-0", clock=zone.clock) == {"checked": 2, "deactivated": [], "retired": []}
    zone.clock.advance(days=1, minutes=1)
    report = janitor.run(iam, zone.api.audit, zone.dropzone, "run-1", clock=zone.clock)
    assert report["checked"] == 2
    (done,) = report["deactivated"]
    assert done["partner"] == "acme"
    assert done["access_key_ids"] == [expiring["credentials"]["access_key_id"]]
    assert len(done["ssh_key_ids"]) == 1
    assert statuses(zone, "acme") == (["Inactive"], ["Inactive"])
    assert statuses(zone, "globex") == (["Active"], [])

    record = zone.audit_records()[-1]
    assert (record["action"], record["actor"], record["partner"], record["request_id"]) == ("partner.expire", "janitor", "acme", "run-1")
    # A second pass finds nothing left to do and writes nothing.
    count = len(zone.audit_records())
    assert janitor.run(iam, zone.api.audit, zone.dropzone, "run-2", clock=zone.clock)["deactivated"] == []
    assert len(zone.audit_records()) == count


def test_a_partner_without_a_readable_expiry_counts_as_expired(zone: Silo):
    new_partner(zone, "acme")
    iam = zone.client("iam")
    iam.tag_user(UserName="acme", Tags=[{"Key": "datalake:expires", "Value": "soon"}])
    report = janitor.run(iam, zone.api.audit, zone.dropzone, "run", clock=zone.clock)
    assert [d["partner"] for d in report["deactivated"]] == ["acme"]


def test_janitor_leaves_other_silos_and_other_users_alone(zone: Silo):
    from conftest import make_silo

    other = make_silo("other")
    new_partner(other, "initech", expires_in_days=1)
    iam = zone.client("iam")
    iam.create_user(UserName="ci-bot", Path="/")
    iam.create_access_key(UserName="ci-bot")
    zone.clock.advance(days=400)
    assert janitor.run(iam, zone.api.audit, zone.dropzone, "run", clock=zone.clock) == {"checked": 0, "deactivated": [], "retired": []}
    assert statuses(zone, "initech")[0] == ["Active"] and statuses(zone, "ci-bot")[0] == ["Active"]


def test_lambda_entry_point_reads_its_settings_from_the_environment(zone: Silo, monkeypatch):
    for key, value in {"SILO_NAME": "sales", "DROPZONE_BUCKET": zone.dropzone.bucket, "KMS_KEY_ARN": zone.dropzone.key_arn,
                       "AUDIT_LOG_GROUP": zone.settings.audit_log_group}.items():
        monkeypatch.setenv(key, value)
    new_partner(zone, "acme")
    report = janitor.handler({"id": "event-1"}, types.SimpleNamespace(aws_request_id="lambda-1"), session=zone.session)
    assert report == {"checked": 1, "deactivated": [], "retired": []}
