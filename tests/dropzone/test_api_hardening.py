"""What an adversarial review of the dropzone found (issue 12), each against moto.

Staff uploads and reserved names, the presigned POST's key, failures midway through create and
rotate, validation IAM and S3 would refuse, malformed JSON, group claims and expired partners.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests
from botocore.exceptions import ClientError
from moto.core import set_initial_no_auth_action_count

from credential_vending.api import MAX_BODY_BYTES, CredentialVendingApi, groups_of
from dropzone_partners.partners import RESERVED_NAMES, STAFF_PREFIX, Dropzone

from conftest import ADMIN, MEMBER, REGION, SSH_KEY_FOR_TESTS, FailingClient, RecordingClient, Silo, call_sequence, new_partner
from test_partner_confinement import put, s3_as


def api_with(zone: Silo, iam) -> CredentialVendingApi:
    return CredentialVendingApi(
        zone.settings, iam=iam, sts=zone.client("sts"), s3=zone.client("s3"), audit=zone.api.audit, clock=zone.clock
    )


def staff_upload(zone: Silo, key: str = "2026/11/payroll.csv") -> str:
    status, payload = zone.call("POST", "/uploads", {"key": key}, claims=MEMBER)
    assert status == 200, payload
    posted = requests.post(payload["url"], data=payload["fields"], files={"file": ("f", b"salaries")})
    assert posted.status_code in (200, 204), posted.text
    return payload["key"]


# -- 1. staff uploads and reserved names --------------------------------------------------------


def test_staff_uploads_go_to_a_prefix_no_partner_name_can_produce(zone: Silo):
    key = staff_upload(zone)
    assert key == "dropzone/_staff/2026/11/payroll.csv"
    # `_` is not in the name alphabet, so no partner's `dropzone/<name>/` is (or contains) the staff prefix.
    assert zone.call("POST", "/partners", {"name": "_staff", "contact": "x@y.z", "expires_in_days": 1})[0] == 400


def test_reserved_names_are_refused_naming_the_field(zone: Silo):
    assert RESERVED_NAMES == ("internal", "staff")
    for name in RESERVED_NAMES:
        status, payload = zone.call("POST", "/partners", {"name": name, "contact": "x@y.z", "expires_in_days": 1})
        assert (status, payload["error"]["field"]) == (400, "name"), name
        assert "reserved" in payload["error"]["message"]
    assert zone.client("iam").list_users(PathPrefix="/datalake/")["Users"] == []


def test_no_partner_reaches_staff_uploads(zone: Silo):
    """With moto enforcing IAM: every partner the API lets exist is refused the staff files."""
    staff_key = staff_upload(zone)
    keys = {}
    for name in ("internal", "staff", "acme", "dropzone"):
        status, payload = zone.call("POST", "/partners", {"name": name, "contact": "x@y.z", "expires_in_days": 1})
        if status == 201:
            keys[name] = payload["credentials"]
    assert set(keys) == {"acme", "dropzone"}
    bucket, kms_key = zone.dropzone.bucket, zone.dropzone.key_arn

    @set_initial_no_auth_action_count(0)
    def attempts() -> dict[str, tuple[str, str]]:
        results = {}
        for name, credentials in keys.items():
            s3 = s3_as(credentials)
            try:
                s3.get_object(Bucket=bucket, Key=staff_key)
                read = "allowed"
            except ClientError as error:
                read = error.response["Error"]["Code"]
            results[name] = (read, put(s3, bucket, staff_key, kms_key))
        return results

    assert attempts() == {name: ("AccessDenied", "AccessDenied") for name in keys}


def test_an_explicit_deny_keeps_the_staff_prefix_from_a_policy_that_reaches_all_of_dropzone(zone: Silo):
    """The session and Transfer roles reach `dropzone/*`; their Deny must win (moto enforces Deny)."""
    from dropzone_partners.partners import staff_deny_statements

    iam = zone.client("iam")
    bucket_arn = zone.dropzone.bucket_arn()
    wide = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Wide", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": [f"{bucket_arn}/dropzone/*"]},
            *staff_deny_statements(bucket_arn),
        ],
    }
    iam.create_user(UserName="wide")
    iam.put_user_policy(UserName="wide", PolicyName="p", PolicyDocument=json.dumps(wide))
    key = iam.create_access_key(UserName="wide")["AccessKey"]
    credentials = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    bucket, kms_key = zone.dropzone.bucket, zone.dropzone.key_arn

    @set_initial_no_auth_action_count(0)
    def attempts() -> dict[str, str]:
        s3 = s3_as(credentials)
        return {prefix: put(s3, bucket, f"{prefix}x.csv", kms_key) for prefix in ("dropzone/acme/", STAFF_PREFIX, "dropzone/internal/")}

    assert attempts() == {"dropzone/acme/": "allowed", STAFF_PREFIX: "AccessDenied", "dropzone/internal/": "AccessDenied"}


def test_a_partner_named_internal_before_the_names_were_reserved_gets_no_credentials(zone: Silo):
    iam = zone.client("iam")
    iam.create_user(UserName="internal", Path=zone.dropzone.user_path, Tags=[{"Key": "datalake:expires", "Value": "2027-01-01T00:00:00Z"}])
    for path in ("/partners/internal/session", "/partners/internal/rotate", "/partners/internal/ssh-keys"):
        body = {"public_key": SSH_KEY_FOR_TESTS} if path.endswith("ssh-keys") else {}
        status, payload = zone.call("POST", path, body)
        assert (status, payload["error"]["code"]) == (409, "name_reserved"), path
    # It can still be seen and removed.
    assert zone.call("GET", "/partners/internal")[0] == 200
    assert zone.call("DELETE", "/partners/internal") == (200, {"name": "internal", "deleted": True})


# -- 2. `$` in upload keys ----------------------------------------------------------------------


def test_upload_keys_with_a_dollar_are_refused(zone: Silo):
    for key in ("${filename}", "2026/${filename}", "a$b.csv"):
        status, payload = zone.call("POST", "/uploads", {"key": key}, claims=MEMBER)
        assert (status, payload["error"]["field"]) == (400, "key"), key
        assert "'$'" in payload["error"]["message"]
    assert zone.audit_records() == []


def test_every_presigned_post_pins_its_exact_key(zone: Silo):
    status, payload = zone.call("POST", "/uploads", {"key": "2026/orders.csv"}, claims=MEMBER)
    conditions = json.loads(base64.b64decode(payload["fields"]["policy"]))["conditions"]
    assert {"key": "dropzone/_staff/2026/orders.csv"} in conditions
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]


# -- 3. failures midway: no half-made partner, no lost access ------------------------------------


CREATE = {"name": "acme", "contact": "x@y.z", "expires_in_days": 5}


def recorded_calls(zone: Silo, method: str, path: str, body) -> list[tuple[str, int]]:
    recording = RecordingClient(zone.client("iam"))
    response = api_with(zone, recording).dispatch(method, path, json.dumps(body), ADMIN, "recording")
    assert response.status in (200, 201), response.body
    return call_sequence(recording)


def test_a_create_failing_at_any_step_leaves_nothing_and_a_retry_works(zone: Silo):
    steps = recorded_calls(zone, "POST", "/partners", CREATE)
    assert [op for op, _ in steps] == ["get_user", "create_user", "put_user_policy", "create_access_key"]
    zone.call("DELETE", "/partners/acme")
    records_before = len(zone.audit_records())
    iam = zone.client("iam")
    for index, (operation, occurrence) in enumerate(steps):
        name = f"acme-{index}"
        failing = FailingClient(iam, operation, occurrence)
        response = api_with(zone, failing).dispatch("POST", "/partners", json.dumps({**CREATE, "name": name}), ADMIN, "req-1")
        assert failing.failed, operation
        assert response.status == 500, (operation, response.body)
        assert response.body["error"]["code"] == "internal_error"
        assert "injected" not in json.dumps(response.body)
        assert [u["UserName"] for u in iam.list_users(PathPrefix="/datalake/")["Users"]] == [], operation
        assert len(zone.audit_records()) == records_before, operation
        created = new_partner(zone, name)  # the name is free again
        assert created["partner"]["access_keys"][0]["access_key_id"] == created["credentials"]["access_key_id"]
        zone.call("DELETE", f"/partners/{name}")
        records_before = len(zone.audit_records())


def test_a_created_partner_is_answered_from_what_the_calls_returned(zone: Silo):
    """No read after the key exists: a failing ListSSHPublicKeys (say) can no longer strand the secret."""
    recording = RecordingClient(zone.client("iam"))
    response = api_with(zone, recording).dispatch("POST", "/partners", json.dumps(CREATE), ADMIN)
    assert response.status == 201
    after_key = [op for op, _ in recording.calls][[op for op, _ in recording.calls].index("create_access_key") + 1:]
    assert after_key == []
    assert response.body["partner"] == zone.call("GET", "/partners/acme", claims=MEMBER)[1]["partner"]


@pytest.mark.parametrize(
    "grace, pending",
    [(0, False), (24, False), (0, True)],
    ids=["grace-0", "grace-24", "grace-0-ending-a-pending-rotation"],
)
def test_a_rotation_failing_at_any_step_leaves_the_partner_its_working_key(zone: Silo, grace: int, pending: bool):
    iam = zone.client("iam")

    def prepare(name: str) -> None:
        new_partner(zone, name)
        if pending:  # two keys: the first's grace period still runs
            assert zone.call("POST", f"/partners/{name}/rotate", {"grace_period_hours": 24})[0] == 200

    prepare("acme-recorded")
    steps = recorded_calls(zone, "POST", "/partners/acme-recorded/rotate", {"grace_period_hours": grace})
    assert "create_access_key" in [op for op, _ in steps]
    for index, (operation, occurrence) in enumerate(steps):
        name = f"acme-{index}"
        prepare(name)
        keys_before = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        newest_before = max(keys_before, key=lambda k: k["CreateDate"])["AccessKeyId"]
        failing = FailingClient(iam, operation, occurrence)
        response = api_with(zone, failing).dispatch(
            "POST", f"/partners/{name}/rotate", json.dumps({"grace_period_hours": grace}), ADMIN
        )
        assert failing.failed and response.status == 500, (operation, occurrence, response.body)
        keys_after = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]}
        # No key whose secret nobody saw, and the partner's newest key still works.
        assert set(keys_after) <= {k["AccessKeyId"] for k in keys_before}, (operation, occurrence)
        assert keys_after.get(newest_before) == "Active", (operation, occurrence)
        status, retried = zone.call("POST", f"/partners/{name}/rotate", {"grace_period_hours": 0})
        assert status == 200, (operation, occurrence, retried)


def test_a_rotation_answers_from_data_in_hand_and_deletes_old_keys_last(zone: Silo):
    old = new_partner(zone, "acme")["credentials"]["access_key_id"]
    recording = RecordingClient(zone.client("iam"))
    response = api_with(zone, recording).dispatch("POST", "/partners/acme/rotate", "{}", ADMIN)
    assert response.status == 200
    operations = [op for op, _ in recording.calls]
    assert operations[-2:] == ["untag_user", "delete_access_key"]
    assert recording.calls[-1][1]["AccessKeyId"] == old
    assert operations.index("create_access_key") < operations.index("delete_access_key")
    assert response.body["partner"] == zone.call("GET", "/partners/acme", claims=MEMBER)[1]["partner"]


# -- 4. validation that IAM and S3 would refuse -------------------------------------------------


REFUSED_BY_IAM = [
        ("name", "acme\n"),
        ("contact", "ops@acme.example\n"),
        ("contact", "ops\tteam"),
        ("contact", "ops\x85team"),
        ("contact", "ops\x1cteam"),
        ("contact", "ops\u2028team"),
        ("contact", "Jose\u0301"),  # a combining mark (\\p{M}) is not in IAM's tag alphabet
        ("allowed_cidrs", ["fe80::%eth0/64"]),
        ("allowed_cidrs", ["10.0.0.0/255.0.0.0"]),
]


def test_values_iam_would_refuse_are_a_400_naming_the_field(zone: Silo):
    for field, value in REFUSED_BY_IAM:
        status, payload = zone.call("POST", "/partners", {**CREATE, field: value})
        assert (status, payload["error"]["field"]) == (400, field), (value, payload)
    assert zone.client("iam").list_users(PathPrefix="/datalake/")["Users"] == []


def test_contacts_iam_stores_are_accepted(zone: Silo):
    for index, contact in enumerate(["José Núñez", "ops@acme.example", "Ops Team +44 20", "東京 オフィス"]):
        assert zone.call("POST", "/partners", {**CREATE, "name": f"acme-{index}", "contact": contact})[0] == 201, contact


def test_a_creator_name_iam_cannot_tag_is_a_400_naming_creator(zone: Silo):
    for username in ("eve!", "bob#1", "al$ce", "x\ny"):
        status, payload = zone.call("POST", "/partners", CREATE, claims={"cognito:username": username, "cognito:groups": "admin"})
        assert (status, payload["error"]["field"]) == (400, "creator"), (username, payload)
    assert zone.client("iam").list_users(PathPrefix="/datalake/")["Users"] == []


def test_upload_keys_are_limited_in_utf8_bytes_with_the_prefix_within_s3s_1024(zone: Silo):
    room = 1024 - len(STAFF_PREFIX)
    fits = "é" * (room // 2)
    assert zone.call("POST", "/uploads", {"key": fits}, claims=MEMBER)[0] == 200
    status, payload = zone.call("POST", "/uploads", {"key": "é" * (room // 2 + 1)}, claims=MEMBER)
    assert (status, payload["error"]["field"]) == (400, "key")
    status, payload = zone.call("POST", "/uploads", '{"key": "a\\ud800b"}', claims=MEMBER)
    assert (status, payload["error"]["field"]) == (400, "key")


# -- 5. malformed JSON --------------------------------------------------------------------------


def test_json_python_cannot_read_is_a_400_not_a_500(zone: Silo):
    unreadable = {
        "5000-digit integer": '{"expires_in_days": ' + "9" * 5000 + "}",
        "nested arrays": "[" * 20000 + "]" * 20000,
        "nested objects": '{"a":' * 8000 + "1" + "}" * 8000,
    }
    for case, raw in unreadable.items():
        status, payload = zone.call("POST", "/partners", raw)
        assert (status, payload["error"]["code"], payload["error"]["field"]) == (400, "invalid_json", "body"), case


def test_a_body_over_the_bound_is_refused_unread(zone: Silo):
    status, payload = zone.call("POST", "/partners", json.dumps({"name": "acme", "contact": "x" * MAX_BODY_BYTES}))
    assert (status, payload["error"]["code"], payload["error"]["field"]) == (413, "body_too_large", "body")


# -- 6. group claims ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim, groups",
    [
        ("admin", ["admin"]),
        ("member,admin", ["member", "admin"]),
        (["member", "admin"], ["member", "admin"]),
        ("[admin]", []),
        ("[member admin]", []),
        ("ops admin", []),
        (["ops,admin"], []),
        (["[admin]"], []),
        (["admin "], []),
        ("ops,,admin", ["ops", "admin"]),
        (7, []),
        (None, []),
        ([7, "member"], ["member"]),
    ],
)
def test_group_claims_are_read_in_their_real_forms_only(claim, groups):
    assert groups_of(claim) == groups


def test_a_separator_in_a_group_name_never_makes_an_admin(zone: Silo):
    for claim in ("[admin]", ["ops,admin"], "ops admin", "[member admin]"):
        status, payload = zone.call("POST", "/partners", CREATE, claims={"cognito:username": "mallory", "cognito:groups": claim})
        assert (status, payload["error"]["code"]) == (403, "forbidden"), claim


# -- 8. smaller ---------------------------------------------------------------------------------


def test_an_expired_partner_gets_no_new_ssh_key(zone: Silo):
    new_partner(zone, "acme", expires_in_days=1)
    zone.clock.advance(days=2)
    status, payload = zone.call("POST", "/partners/acme/ssh-keys", {"public_key": SSH_KEY_FOR_TESTS})
    assert (status, payload["error"]["code"]) == (409, "partner_expired")
    assert zone.client("iam").list_ssh_public_keys(UserName="acme")["SSHPublicKeys"] == []


def test_a_partner_can_abort_its_own_multipart_upload_only(zone: Silo):
    acme = new_partner(zone, "acme")["credentials"]
    s3_admin = zone.client("s3")
    bucket = zone.dropzone.bucket
    other = s3_admin.create_multipart_upload(Bucket=bucket, Key="dropzone/globex/big.bin")["UploadId"]

    @set_initial_no_auth_action_count(0)
    def attempts() -> tuple[str, str]:
        s3 = s3_as(acme)
        own = s3.create_multipart_upload(
            Bucket=bucket, Key="dropzone/acme/big.bin", ServerSideEncryption="aws:kms", SSEKMSKeyId=zone.dropzone.key_arn
        )["UploadId"]
        s3.abort_multipart_upload(Bucket=bucket, Key="dropzone/acme/big.bin", UploadId=own)
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key="dropzone/globex/big.bin", UploadId=other)
            foreign = "allowed"
        except ClientError as error:
            foreign = error.response["Error"]["Code"]
        return "aborted", foreign

    assert attempts() == ("aborted", "AccessDenied")
    assert [u["Key"] for u in s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == ["dropzone/globex/big.bin"]


def test_the_largest_session_policy_fits_the_2048_character_limit():
    """STS and Transfer cap session policies at 2,048 characters: the longest names and 256
    characters of CIDRs (the tag's limit) must fit."""
    bucket = "abcdefghijkl-abcdefghijklmnopqrst-dropzone-222222222222"
    zone = Dropzone("abcdefghijklmnopqrst", bucket, "arn:aws-us-gov:kms:us-gov-west-1:222222222222:key/12345678-1234-1234-1234-123456789012")
    cidrs = [f"2001:db8:aaaa:bbb{i}:c::/96" for i in range(7)] + [f"2001:db8:aaa:bbb{i}:c::/96" for i in range(3)]
    from dropzone_partners.partners import cidr_problem

    assert cidr_problem(cidrs) is None and len(" ".join(cidrs)) == 256
    policy = json.dumps(zone.access_policy("x" * 63, cidrs), separators=(",", ":"))
    assert len(policy) <= 2048, len(policy)
