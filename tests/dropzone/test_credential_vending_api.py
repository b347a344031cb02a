"""The credential-vending API against moto: every route, its errors, audit records and rollback."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
import requests

from credential_vending.api import CredentialVendingApi
from credential_vending.audit import AuditLog
from credential_vending.handler import proxy_response, request_of
from dropzone_partners.partners import TAG_RETIRE_PREFIX
from offline.boto_faults import fail_with_error

from conftest import ADMIN, MEMBER, REGION, SSH_KEY_FOR_TESTS, RecordingClient, Silo, make_silo, new_partner, partner_policy


def user_tags(zone: Silo, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in zone.client("iam").list_user_tags(UserName=name)["Tags"]}


def identity_arn(key_id: str, secret: str) -> str:
    sts = boto3.client("sts", aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION)
    return sts.get_caller_identity()["Arn"]


# -- POST /partners -----------------------------------------------------------------------------


def test_create_partner_makes_a_confined_user_and_returns_the_key_once(zone: Silo):
    payload = new_partner(zone, "acme", allowed_cidrs=["203.0.113.0/24"])
    iam = zone.client("iam")
    user = iam.get_user(UserName="acme")["User"]
    assert user["Path"] == "/datalake/partners/sales/"
    # moto does not keep permissions boundaries: assert on the request the API sent.
    (create_user,) = zone.iam.called("create_user")
    assert create_user["PermissionsBoundary"] == zone.settings.permissions_boundary_arn
    tags = user_tags(zone, "acme")
    assert tags["datalake:partner"] == "acme"
    assert tags["datalake:creator"] == "alice"
    assert tags["datalake:expires"] == "2026-12-25T12:00:00Z"
    assert tags["datalake:allowed-cidrs"] == "203.0.113.0/24"

    policy = iam.get_user_policy(UserName="acme", PolicyName="dropzone-access")["PolicyDocument"]
    statements = {s["Sid"]: s for s in (policy if isinstance(policy, dict) else json.loads(policy))["Statement"]}
    bucket_arn = f"arn:aws:s3:::{zone.dropzone.bucket}"
    assert statements["ReadWriteOwnPrefix"] == {
        "Sid": "ReadWriteOwnPrefix", "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
        "Resource": [f"{bucket_arn}/dropzone/acme/*"],
    }
    assert statements["ListOwnPrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["dropzone/acme/", "dropzone/acme/*"]}}
    # The CIDRs once, in a Deny of every S3 call from elsewhere (session policies are capped at 2,048 characters).
    assert statements["DenyOutsideAllowedCidrs"] == {
        "Sid": "DenyOutsideAllowedCidrs", "Effect": "Deny", "Action": ["s3:*"], "Resource": ["*"],
        "Condition": {"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24"]}},
    }
    assert statements["UseSiloKeyThroughS3"] == {
        "Sid": "UseSiloKeyThroughS3", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": [zone.dropzone.key_arn],
        "Condition": {
            "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]},
        },
    }
    assert statements["DenyStaffObjects"]["Effect"] == "Deny"
    assert statements["DenyStaffObjects"]["Resource"] == [f"{bucket_arn}/dropzone/_staff/*"]

    credentials = payload["credentials"]
    assert identity_arn(credentials["access_key_id"], credentials["secret_access_key"]) == user["Arn"]
    assert payload["partner"]["access_keys"][0]["access_key_id"] == credentials["access_key_id"]
    assert "secret_access_key" not in json.dumps(payload["partner"])
    # The secret is returned once: reading the partner again never shows it.
    status, again = zone.call("GET", "/partners/acme", claims=MEMBER)
    assert status == 200 and credentials["secret_access_key"] not in json.dumps(again)


def test_create_partner_writes_one_audit_record_without_the_secret(zone: Silo):
    payload = new_partner(zone, "acme")
    records = zone.audit_records()
    assert len(records) == 1
    record = records[0]
    assert record["action"] == "partner.create"
    assert record["actor"] == "alice"
    assert record["partner"] == "acme"
    assert record["time"] == "2026-11-25T12:00:00Z"
    assert record["request_id"]
    assert record["details"]["access_key_id"] == payload["credentials"]["access_key_id"]
    assert payload["credentials"]["secret_access_key"] not in json.dumps(records)


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        ({"name": "acme", "contact": "a@b.c", "expires_in_days": 30, "role": "admin"}, "role", "not a known field"),
        ({"name": "Acme", "contact": "a@b.c", "expires_in_days": 30}, "name", "lowercase"),
        ({"name": "a", "contact": "a@b.c", "expires_in_days": 30}, "name", "2-63"),
        ({"name": "-acme", "contact": "a@b.c", "expires_in_days": 30}, "name", "starting with"),
        ({"name": "a" * 64, "contact": "a@b.c", "expires_in_days": 30}, "name", "2-63"),
        ({"name": "acme_co", "contact": "a@b.c", "expires_in_days": 30}, "name", "acme-logistics"),
        ({"name": 7, "contact": "a@b.c", "expires_in_days": 30}, "name", "string"),
        ({"name": "acme", "contact": "a@b.c", "expires_in_days": 0}, "expires_in_days", "from 1 to 365"),
        ({"name": "acme", "contact": "a@b.c", "expires_in_days": 366}, "expires_in_days", "from 1 to 365"),
        ({"name": "acme", "contact": "a@b.c", "expires_in_days": "30"}, "expires_in_days", "whole number"),
        ({"name": "acme", "contact": "a@b.c", "expires_in_days": True}, "expires_in_days", "whole number"),
        ({"name": "acme", "contact": "a@b.c", "expires_in_days": 3, "allowed_cidrs": ["10.0.0.0/33"]}, "allowed_cidrs", "not a CIDR"),
        ({"name": "acme", "contact": "a@b.c", "expires_in_days": 3, "allowed_cidrs": ["10.0.0.1/8"]}, "allowed_cidrs", "not a CIDR"),
        ({"name": "acme", "contact": "a@b.c", "expires_in_days": 3, "allowed_cidrs": "10.0.0.0/8"}, "allowed_cidrs", "list"),
        ({"name": "acme", "contact": "<script>", "expires_in_days": 3}, "contact", "letters, digits"),
        ({"contact": "a@b.c", "expires_in_days": 3}, "name", "is required"),
        ({"name": "acme", "expires_in_days": 3}, "contact", "is required"),
    ],
)
def test_create_partner_rejects_bad_fields_naming_the_field(zone: Silo, body, field, fragment):
    status, payload = zone.call("POST", "/partners", body)
    assert status == 400, payload
    assert payload["error"]["field"] == field
    assert fragment in payload["error"]["message"]
    assert zone.client("iam").list_users(PathPrefix="/datalake/")["Users"] == []
    assert zone.audit_records() == []


@pytest.mark.parametrize("raw, code", [("{not json", "invalid_json"), ("[1, 2]", "invalid_json"), ('"x"', "invalid_json")])
def test_a_body_that_is_not_a_json_object_is_a_400(zone: Silo, raw, code):
    status, payload = zone.call("POST", "/partners", raw)
    assert (status, payload["error"]["code"], payload["error"]["field"]) == (400, code, "body")


def test_create_an_existing_partner_is_a_409_and_changes_nothing(zone: Silo):
    first = new_partner(zone, "acme")
    status, payload = zone.call("POST", "/partners", {"name": "acme", "contact": "x@y.z", "expires_in_days": 5})
    assert (status, payload["error"]["code"], payload["error"]["field"]) == (409, "partner_exists", "name")
    keys = zone.client("iam").list_access_keys(UserName="acme")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [first["credentials"]["access_key_id"]]


def test_a_name_used_by_an_unrelated_iam_user_is_refused_and_that_user_untouched(zone: Silo):
    iam = zone.client("iam")
    iam.create_user(UserName="deploy-bot", Path="/")
    status, payload = zone.call("POST", "/partners", {"name": "deploy-bot", "contact": "x@y.z", "expires_in_days": 5})
    assert (status, payload["error"]["code"]) == (409, "name_taken")
    assert iam.get_user(UserName="deploy-bot")["User"]["Path"] == "/"
    assert iam.list_user_policies(UserName="deploy-bot")["PolicyNames"] == []


@pytest.mark.parametrize("fail_on", ["put_user_policy", "create_access_key"])
def test_a_failure_midway_rolls_the_partner_back_and_leaks_no_aws_error(zone: Silo, fail_on):
    iam = zone.client("iam")
    # As AWS would fail midway through a request; botocore validates the call first (offline.boto_faults).
    fail_with_error(iam, fail_on, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2", status=409)
    api = CredentialVendingApi(
        zone.settings, iam=iam, sts=zone.client("sts"), s3=zone.client("s3"),
        audit=zone.api.audit, clock=zone.clock,
    )
    response = api.dispatch("POST", "/partners", json.dumps({"name": "acme", "contact": "x@y.z", "expires_in_days": 5}), ADMIN, "req-1")
    assert response.status == 500
    assert response.body == {"error": {"code": "internal_error", "message": "the request failed; quote the request id", "request_id": "req-1"}}
    assert iam.list_users(PathPrefix="/datalake/")["Users"] == []
    assert zone.audit_records() == []
    # The name is free again: a retry succeeds.
    new_partner(zone, "acme")


# -- authorization and routing ------------------------------------------------------------------


def test_members_may_list_but_not_manage_partners(zone: Silo):
    new_partner(zone, "acme")
    assert zone.call("GET", "/partners", claims=MEMBER)[0] == 200
    for method, path in [("POST", "/partners"), ("DELETE", "/partners/acme"), ("POST", "/partners/acme/rotate"),
                         ("POST", "/partners/acme/session"), ("POST", "/partners/acme/ssh-keys")]:
        status, payload = zone.call(method, path, {}, claims=MEMBER)
        assert (status, payload["error"]["code"]) == (403, "forbidden"), (method, path)
    assert zone.client("iam").get_user(UserName="acme")


@pytest.mark.parametrize("claims", [None, {}, {"cognito:groups": "admin"}])
def test_calls_without_an_identity_are_401(zone: Silo, claims):
    status, payload = zone.call("GET", "/partners", claims=claims)
    assert (status, payload["error"]["code"]) == (401, "unauthenticated")


@pytest.mark.parametrize("groups", ["admin", "member,admin", ["member", "admin"]])
def test_group_claims_in_the_forms_the_api_receives(zone: Silo, groups):
    status, _ = zone.call("POST", "/partners", {"name": "acme", "contact": "a@b.c", "expires_in_days": 1},
                          claims={"cognito:username": "carol", "cognito:groups": groups})
    assert status == 201


def test_a_user_in_no_group_is_forbidden_everywhere(zone: Silo):
    status, _ = zone.call("GET", "/partners", claims={"cognito:username": "eve"})
    assert status == 403


def test_unknown_routes_and_methods(zone: Silo):
    assert zone.call("GET", "/nothing")[0] == 404
    status, payload = zone.call("PUT", "/partners")
    assert status == 405 and "GET, POST" in payload["error"]["message"]


def test_cors_preflight_needs_no_identity_and_every_answer_carries_the_origin(zone: Silo):
    preflight = zone.api.dispatch("OPTIONS", "/partners/acme/rotate", None, None)
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://console.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "DELETE" in preflight.headers["Access-Control-Allow-Methods"]
    error = zone.api.dispatch("GET", "/partners", None, None)
    assert error.status == 401 and error.headers["Access-Control-Allow-Origin"] == "https://console.example"
    assert error.headers["Cache-Control"] == "no-store"


def test_without_a_configured_origin_there_are_no_cors_headers(aws_env):
    zone = make_silo(allowed_origin="")
    response = zone.api.dispatch("OPTIONS", "/partners", None, None)
    assert response.status == 204 and not any(h.startswith("Access-Control") for h in response.headers)


# -- GET /partners, GET /partners/{name} --------------------------------------------------------


def test_list_and_get_partners_read_iam_by_path(zone: Silo):
    new_partner(zone, "acme")
    zone.clock.advance(days=1)
    new_partner(zone, "globex", expires_in_days=1, allowed_cidrs=["198.51.100.7/32"])
    zone.client("iam").create_user(UserName="someone-else", Path="/")
    other = make_silo("other")
    new_partner(other, "initech")

    status, payload = zone.call("GET", "/partners", claims=MEMBER)
    assert status == 200
    assert [p["name"] for p in payload["partners"]] == ["acme", "globex"]
    globex = payload["partners"][1]
    assert globex["expires"] == "2026-11-27T12:00:00Z"
    assert globex["expired"] is False
    assert globex["contact"] == "ops@acme.example"
    assert globex["creator"] == "alice"
    assert globex["allowed_cidrs"] == ["198.51.100.7/32"]
    assert globex["prefix"] == f"s3://{zone.dropzone.bucket}/dropzone/globex/"
    assert [k["status"] for k in globex["access_keys"]] == ["Active"]

    zone.clock.advance(days=2)
    status, payload = zone.call("GET", "/partners/globex", claims=MEMBER)
    assert status == 200 and payload["partner"]["expired"] is True


@pytest.mark.parametrize("name, status, code", [("nobody", 404, "partner_not_found"), ("initech", 404, "partner_not_found"),
                                                 ("Bad_Name", 400, "invalid_field")])
def test_get_unknown_or_foreign_partner(zone: Silo, name, status, code):
    other = make_silo("other")
    new_partner(other, "initech")
    got, payload = zone.call("GET", f"/partners/{name}", claims=MEMBER)
    assert (got, payload["error"]["code"], payload["error"]["field"]) == (status, code, "name")


# -- rotate -------------------------------------------------------------------------------------


def test_rotate_without_grace_deletes_the_old_key_at_once(zone: Silo):
    old = new_partner(zone, "acme")["credentials"]
    status, payload = zone.call("POST", "/partners/acme/rotate", {})
    assert status == 200
    new = payload["credentials"]
    assert new["access_key_id"] != old["access_key_id"]
    keys = zone.client("iam").list_access_keys(UserName="acme")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [new["access_key_id"]]
    assert identity_arn(new["access_key_id"], new["secret_access_key"]).endswith("/acme")
    record = zone.audit_records()[-1]
    assert record["action"] == "partner.rotate"
    assert record["details"]["deleted_access_key_ids"] == [old["access_key_id"]]
    assert new["secret_access_key"] not in json.dumps(zone.audit_records())


def test_rotate_with_grace_keeps_the_old_key_until_the_janitor_retires_it(zone: Silo):
    from credential_vending import janitor

    old = new_partner(zone, "acme")["credentials"]
    status, payload = zone.call("POST", "/partners/acme/rotate", {"grace_period_hours": 24})
    assert status == 200
    assert payload["retiring"] == [{"access_key_id": old["access_key_id"], "retires": "2026-11-26T12:00:00Z"}]
    iam = zone.client("iam")
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName="acme")["AccessKeyMetadata"]}
    assert statuses == {old["access_key_id"]: "Active", payload["credentials"]["access_key_id"]: "Active"}
    assert user_tags(zone, "acme")[TAG_RETIRE_PREFIX + old["access_key_id"]] == "2026-11-26T12:00:00Z"

    # A second rotation with a grace period while the first one runs would need a third key.
    status, err = zone.call("POST", "/partners/acme/rotate", {"grace_period_hours": 1})
    assert (status, err["error"]["code"]) == (409, "rotation_pending")

    zone.clock.advance(hours=23)
    assert janitor.run(iam, zone.api.audit, zone.dropzone, "run-1", clock=zone.clock)["retired"] == []
    zone.clock.advance(hours=2)
    report = janitor.run(iam, zone.api.audit, zone.dropzone, "run-2", clock=zone.clock)
    assert report["retired"] == [{"partner": "acme", "access_key_ids": [old["access_key_id"]]}]
    keys = iam.list_access_keys(UserName="acme")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [payload["credentials"]["access_key_id"]]
    assert not any(k.startswith(TAG_RETIRE_PREFIX) for k in user_tags(zone, "acme"))
    assert zone.audit_records()[-1]["action"] == "partner.key.retire"


def test_rotate_with_no_grace_ends_a_pending_rotation(zone: Silo):
    new_partner(zone, "acme")
    zone.call("POST", "/partners/acme/rotate", {"grace_period_hours": 24})
    status, payload = zone.call("POST", "/partners/acme/rotate", {"grace_period_hours": 0})
    assert status == 200
    keys = zone.client("iam").list_access_keys(UserName="acme")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [payload["credentials"]["access_key_id"]]


@pytest.mark.parametrize("body, status, field", [({"grace_period_hours": -1}, 400, "grace_period_hours"),
                                                 ({"grace_period_hours": 169}, 400, "grace_period_hours"),
                                                 ({"grace": 1}, 400, "grace")])
def test_rotate_rejects_bad_requests(zone: Silo, body, status, field):
    new_partner(zone, "acme")
    got, payload = zone.call("POST", "/partners/acme/rotate", body)
    assert (got, payload["error"]["field"]) == (status, field)


def test_rotate_unknown_or_expired_partner(zone: Silo):
    assert zone.call("POST", "/partners/nobody/rotate", {})[0] == 404
    new_partner(zone, "acme", expires_in_days=1)
    zone.clock.advance(days=2)
    status, payload = zone.call("POST", "/partners/acme/rotate", {})
    assert (status, payload["error"]["code"]) == (409, "partner_expired")


# -- session ------------------------------------------------------------------------------------


def test_session_returns_temporary_credentials_for_the_partner_prefix(zone: Silo):
    new_partner(zone, "acme")
    status, payload = zone.call("POST", "/partners/acme/session", {"duration_seconds": 900})
    assert status == 200
    assert payload["prefix"] == "dropzone/acme/" and payload["bucket"] == zone.dropzone.bucket
    credentials = payload["credentials"]
    assert credentials["session_token"] and credentials["expiration"].endswith("Z")
    sts = boto3.client("sts", aws_access_key_id=credentials["access_key_id"], aws_secret_access_key=credentials["secret_access_key"],
                       aws_session_token=credentials["session_token"], region_name=REGION)
    assert sts.get_caller_identity()["Arn"].endswith(":assumed-role/sales-partner-session/partner-acme")
    record = zone.audit_records()[-1]
    assert (record["action"], record["details"]["duration_seconds"]) == ("partner.session", 900)
    assert credentials["secret_access_key"] not in json.dumps(zone.audit_records())


def test_session_passes_the_partner_policy_as_session_policy(zone: Silo):
    sts = RecordingClient(zone.client("sts"))
    new_partner(zone, "acme", allowed_cidrs=["192.0.2.0/24"])
    api = CredentialVendingApi(zone.settings, iam=zone.client("iam"), sts=sts, s3=zone.client("s3"),
                               audit=zone.api.audit, clock=zone.clock)
    assert api.dispatch("POST", "/partners/acme/session", None, ADMIN).status == 200
    (call,) = sts.called("assume_role")
    assert call["RoleArn"] == zone.settings.session_role_arn
    assert call["DurationSeconds"] == 3600
    assert json.loads(call["Policy"]) == partner_policy(zone, "acme", ("192.0.2.0/24",))
    # The session route's policy denies the staff uploads explicitly (STS applies it to every call).
    denies = {s["Sid"]: s for s in json.loads(call["Policy"])["Statement"] if s["Effect"] == "Deny"}
    assert denies["DenyStaffObjects"]["Resource"] == [f"arn:aws:s3:::{zone.dropzone.bucket}/dropzone/_staff/*"]
    assert denies["DenyStaffListing"]["Condition"] == {"StringLike": {"s3:prefix": ["dropzone/_staff*"]}}


@pytest.mark.parametrize("seconds", [899, 3601, 43200, "900"])
def test_session_duration_out_of_range(zone: Silo, seconds):
    new_partner(zone, "acme")
    status, payload = zone.call("POST", "/partners/acme/session", {"duration_seconds": seconds})
    assert (status, payload["error"]["field"]) == (400, "duration_seconds")
    assert "from 900 to 3600" in payload["error"]["message"]


def test_session_for_expired_partner_is_refused(zone: Silo):
    new_partner(zone, "acme", expires_in_days=1)
    zone.clock.advance(days=1)
    status, payload = zone.call("POST", "/partners/acme/session", {})
    assert (status, payload["error"]["code"]) == (409, "partner_expired")


# -- SSH keys and delete ------------------------------------------------------------------------

SSH_KEY = SSH_KEY_FOR_TESTS


def test_ssh_keys_are_uploaded_to_the_partner_user(zone: Silo):
    new_partner(zone, "acme")
    status, payload = zone.call("POST", "/partners/acme/ssh-keys", {"public_key": SSH_KEY})
    assert status == 201
    keys = zone.client("iam").list_ssh_public_keys(UserName="acme")["SSHPublicKeys"]
    assert [k["SSHPublicKeyId"] for k in keys] == [payload["ssh_key_id"]]
    assert zone.audit_records()[-1]["action"] == "partner.ssh_key.add"
    status, payload = zone.call("POST", "/partners/acme/ssh-keys", {"public_key": "not a key"})
    assert (status, payload["error"]["field"]) == (400, "public_key")


def test_delete_removes_keys_policies_ssh_keys_and_user_and_is_idempotent(zone: Silo):
    new_partner(zone, "acme")
    zone.call("POST", "/partners/acme/rotate", {"grace_period_hours": 5})
    zone.call("POST", "/partners/acme/ssh-keys", {"public_key": SSH_KEY})
    status, payload = zone.call("DELETE", "/partners/acme")
    assert (status, payload) == (200, {"name": "acme", "deleted": True})
    iam = zone.client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName="acme")
    record = zone.audit_records()[-1]
    assert record["action"] == "partner.delete"
    assert len(record["details"]["access_key_ids"]) == 2 and len(record["details"]["ssh_key_ids"]) == 1
    assert record["details"]["policies"] == ["dropzone-access"]

    assert zone.call("DELETE", "/partners/acme") == (200, {"name": "acme", "deleted": False})
    assert [r["action"] for r in zone.audit_records()].count("partner.delete") == 1


def test_delete_never_touches_users_outside_the_silo_path(zone: Silo):
    iam = zone.client("iam")
    iam.create_user(UserName="admin-user", Path="/")
    other = make_silo("other")
    new_partner(other, "initech")
    assert zone.call("DELETE", "/partners/admin-user")[1]["deleted"] is False
    assert zone.call("DELETE", "/partners/initech")[1]["deleted"] is False
    assert iam.get_user(UserName="admin-user") and iam.get_user(UserName="initech")


# -- uploads ------------------------------------------------------------------------------------


def test_upload_presigned_post_requires_the_kms_header_and_limits_the_key_and_size(zone: Silo):
    status, payload = zone.call("POST", "/uploads", {"key": "2026/11/orders.csv"}, claims=MEMBER)
    assert status == 200
    assert payload["key"] == "dropzone/_staff/2026/11/orders.csv"
    fields = payload["fields"]
    assert fields["x-amz-server-side-encryption"] == "aws:kms"
    assert fields["x-amz-server-side-encryption-aws-kms-key-id"] == zone.dropzone.key_arn
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"x-amz-server-side-encryption": "aws:kms"} in conditions
    assert {"x-amz-server-side-encryption-aws-kms-key-id": zone.dropzone.key_arn} in conditions
    assert ["content-length-range", 1, 1024] in conditions
    assert {"key": "dropzone/_staff/2026/11/orders.csv"} in conditions
    assert {"x-amz-meta-uploaded-by": "bob"} in conditions

    posted = requests.post(payload["url"], data=fields, files={"file": ("orders.csv", b"id,qty\n1,2\n")})
    assert posted.status_code in (200, 204), posted.text
    stored = zone.client("s3").get_object(Bucket=zone.dropzone.bucket, Key=payload["key"])
    assert stored["Body"].read() == b"id,qty\n1,2\n"
    # (moto stores form uploads without applying the encryption fields; the policy above is what S3 enforces.)
    record = zone.audit_records()[-1]
    assert (record["action"], record["actor"], record["details"]["key"]) == ("upload.presign", "bob", payload["key"])


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../raw/x", "a/../../b", "a/./b", "a//b", "ok/\x00", "x" * 1009, 5])
def test_upload_rejects_keys_that_could_escape_the_staff_prefix(zone: Silo, key):
    status, payload = zone.call("POST", "/uploads", {"key": key}, claims=MEMBER)
    assert (status, payload["error"]["field"]) == (400, "key")


# -- the Lambda entry point ---------------------------------------------------------------------


def test_api_gateway_events_are_adapted_to_dispatch(zone: Silo):
    body = json.dumps({"grace_period_hours": 0}).encode()
    new_partner(zone, "acme")
    event = {
        "resource": "/partners/{name}/rotate",
        "path": "/prod/partners/acme/rotate",
        "httpMethod": "POST",
        "pathParameters": {"name": "acme"},
        "isBase64Encoded": True,
        "body": base64.b64encode(body).decode(),
        "requestContext": {"requestId": "api-req-9", "authorizer": {"claims": ADMIN}},
    }
    method, path, raw, claims, request_id = request_of(event)
    assert (method, path, json.loads(raw), claims, request_id) == ("POST", "/partners/acme/rotate", {"grace_period_hours": 0}, ADMIN, "api-req-9")
    result = proxy_response(zone.api.dispatch(method, path, raw, claims, request_id))
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["credentials"]["access_key_id"]
    assert zone.audit_records()[-1]["request_id"] == "api-req-9"


def test_audit_survives_a_cloudwatch_failure(zone: Silo, caplog):
    audit = AuditLog(zone.client("logs"), "datalake/missing/audit", source="api", clock=zone.clock)
    entry = audit.record("partner.delete", actor="alice", request_id="r", partner="acme")
    assert entry["action"] == "partner.delete"
    assert '"action": "partner.delete"' in caplog.text
