"""The SFTP identity provider against moto, with request signatures and IAM policies checked.

Setup runs unauthenticated; `login` runs the provider inside `set_initial_no_auth_action_count(0)`,
so STS really verifies the partner's secret and the provider's own IAM reads run as a user that
holds only the read permissions the real Lambda role has.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from moto.core import set_initial_no_auth_action_count

from offline.boto_faults import fail_with_error, fail_with_exception
from sftp_auth.handler import identify, sts_factory

from conftest import REGION, Silo, make_silo, new_partner, partner_policy

ROLE_ARN = "arn:aws:iam::123456789012:role/sales-sftp-access"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8nJ2wF6hT0Y5b2Xy1Q7Vv5s9Gm1c3kK8pZ0aB4dEf ops@acme"
PROVIDER_READS = ["iam:GetUser", "iam:ListUserTags", "iam:ListAccessKeys", "iam:ListSSHPublicKeys", "iam:GetSSHPublicKey"]


# The factory the Lambda uses: STS clients signed with the key pair under test.
sts_for = sts_factory(REGION)


@pytest.fixture
def provider_iam(zone: Silo) -> Any:
    """An IAM client signed as a user holding only the provider's read actions."""
    iam = zone.client("iam")
    iam.create_user(UserName="sftp-auth-lambda")
    iam.put_user_policy(
        UserName="sftp-auth-lambda",
        PolicyName="reads",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": PROVIDER_READS, "Resource": "*"}]}),
    )
    key = iam.create_access_key(UserName="sftp-auth-lambda")["AccessKey"]
    return boto3.client("iam", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def login(zone: Silo, iam: Any, event: Any) -> dict[str, Any]:
    run = set_initial_no_auth_action_count(0)(
        lambda: identify(event, iam=iam, sts_for=sts_for, dropzone=zone.dropzone, role_arn=ROLE_ARN, clock=zone.clock)
    )
    return run()


def event(username: Any, password: Any = None, **extra: Any) -> dict[str, Any]:
    result = {"username": username, "protocol": "SFTP", "serverId": "s-1234567890abcdef0", "sourceIp": "198.51.100.20", **extra}
    if password is not None:
        result["password"] = password
    return result


def test_right_password_maps_the_partner_to_its_own_prefix(zone: Silo, provider_iam, caplog):
    caplog.set_level(logging.INFO)
    secret = new_partner(zone, "acme")["credentials"]["secret_access_key"]
    response = login(zone, provider_iam, event("acme", secret))
    assert response["Role"] == ROLE_ARN
    assert response["HomeDirectoryType"] == "LOGICAL"
    assert json.loads(response["HomeDirectoryDetails"]) == [{"Entry": "/", "Target": f"/{zone.dropzone.bucket}/dropzone/acme"}]
    policy = json.loads(response["Policy"])
    assert policy == partner_policy(zone, "acme")
    assert len(response["Policy"]) <= 2048  # Transfer's session policy limit
    assert "PublicKeys" not in response
    assert secret not in caplog.text and '"outcome": "allowed"' in caplog.text


def test_the_second_active_key_of_a_rotation_also_logs_in(zone: Silo, provider_iam):
    old = new_partner(zone, "acme")["credentials"]["secret_access_key"]
    new = zone.call("POST", "/partners/acme/rotate", {"grace_period_hours": 2})[1]["credentials"]["secret_access_key"]
    assert login(zone, provider_iam, event("acme", old))["Role"] == ROLE_ARN
    assert login(zone, provider_iam, event("acme", new))["Role"] == ROLE_ARN


def test_wrong_password_is_denied_and_not_logged(zone: Silo, provider_iam, caplog):
    caplog.set_level(logging.INFO)
    new_partner(zone, "acme")
    assert login(zone, provider_iam, event("acme", "wrong-secret-Xyz123")) == {}
    assert "wrong-secret-Xyz123" not in caplog.text
    assert "password does not match" in caplog.text


def test_another_partners_secret_does_not_open_this_partner(zone: Silo, provider_iam):
    new_partner(zone, "acme")
    globex_secret = new_partner(zone, "globex")["credentials"]["secret_access_key"]
    assert login(zone, provider_iam, event("acme", globex_secret)) == {}


def test_unknown_user_is_denied(zone: Silo, provider_iam, caplog):
    caplog.set_level(logging.INFO)
    assert login(zone, provider_iam, event("nobody", "x")) == {}
    assert "no partner of this name" in caplog.text


def test_expired_partner_is_denied(zone: Silo, provider_iam, caplog):
    caplog.set_level(logging.INFO)
    secret = new_partner(zone, "acme", expires_in_days=1)["credentials"]["secret_access_key"]
    zone.clock.advance(days=1, seconds=1)
    assert login(zone, provider_iam, event("acme", secret)) == {}
    assert "partner expired" in caplog.text


def test_deactivated_key_is_denied(zone: Silo, provider_iam):
    payload = new_partner(zone, "acme")
    zone.client("iam").update_access_key(UserName="acme", AccessKeyId=payload["credentials"]["access_key_id"], Status="Inactive")
    assert login(zone, provider_iam, event("acme", payload["credentials"]["secret_access_key"])) == {}


def test_partner_of_another_silo_is_denied(zone: Silo, provider_iam):
    other = make_silo("other")
    secret = new_partner(other, "initech")["credentials"]["secret_access_key"]
    assert login(zone, provider_iam, event("initech", secret)) == {}
    assert login(other, provider_iam, event("initech", secret))["Role"] == ROLE_ARN


def test_ssh_key_login_returns_the_partners_active_public_keys(zone: Silo, provider_iam):
    new_partner(zone, "acme")
    iam = zone.client("iam")
    key_id = iam.upload_ssh_public_key(UserName="acme", SSHPublicKeyBody=SSH_KEY)["SSHPublicKey"]["SSHPublicKeyId"]
    response = login(zone, provider_iam, event("acme"))
    assert response["PublicKeys"] == [SSH_KEY]
    assert json.loads(response["HomeDirectoryDetails"])[0]["Target"].endswith("/dropzone/acme")

    iam.update_ssh_public_key(UserName="acme", SSHPublicKeyId=key_id, Status="Inactive")
    assert login(zone, provider_iam, event("acme")) == {}


def test_no_password_and_no_ssh_key_is_denied(zone: Silo, provider_iam):
    new_partner(zone, "acme")
    assert login(zone, provider_iam, event("acme", "")) == {}


def test_allowed_cidrs_are_enforced_at_login(zone: Silo, provider_iam):
    secret = new_partner(zone, "acme", allowed_cidrs=["203.0.113.0/24"])["credentials"]["secret_access_key"]
    assert login(zone, provider_iam, event("acme", secret, sourceIp="198.51.100.20")) == {}
    allowed = login(zone, provider_iam, event("acme", secret, sourceIp="203.0.113.9"))
    assert allowed["Role"] == ROLE_ARN
    # Transfer's S3 calls do not come from the client's address: no IP condition in the session policy.
    assert "aws:SourceIp" not in allowed["Policy"]


@pytest.mark.parametrize(
    "bad",
    [None, [], "acme", {}, {"username": 5, "password": "x"}, {"username": "../acme", "password": "x"},
     {"username": "ACME", "password": "x"}, {"username": "acme", "password": 12345},
     {"username": "acme", "password": "x", "protocol": "FTP"}],
)
def test_malformed_events_are_denied(zone: Silo, provider_iam, bad):
    new_partner(zone, "acme")
    assert login(zone, provider_iam, bad) == {}


def test_aws_errors_inside_the_provider_deny_instead_of_crashing(zone: Silo, caplog):
    secret = new_partner(zone, "acme")["credentials"]["secret_access_key"]

    broken = zone.client("iam")
    fail_with_exception(broken, "get_user", RuntimeError("throttled"))  # after botocore validated the call
    caplog.set_level(logging.INFO)
    assert identify(event("acme", secret), iam=broken, sts_for=sts_for, dropzone=zone.dropzone, role_arn=ROLE_ARN) == {}
    assert '"error": "RuntimeError"' in caplog.text and secret not in caplog.text

    throttled = zone.client("iam")
    fail_with_error(throttled, "get_user", "Throttling", "Rate exceeded")
    assert identify(event("acme", secret), iam=throttled, sts_for=sts_for, dropzone=zone.dropzone, role_arn=ROLE_ARN) == {}
    assert secret not in caplog.text


def test_lambda_entry_point_reads_its_settings_from_the_environment(zone: Silo, monkeypatch):
    import sftp_auth.handler as module

    for key, value in {"SILO_NAME": "sales", "DROPZONE_BUCKET": zone.dropzone.bucket, "KMS_KEY_ARN": zone.dropzone.key_arn,
                       "TRANSFER_ROLE_ARN": ROLE_ARN}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(module, "_IAM", None)
    monkeypatch.setattr(module, "_STS_FOR", None)
    new_partner(zone, "acme")
    zone.client("iam").upload_ssh_public_key(UserName="acme", SSHPublicKeyBody=SSH_KEY)
    response = module.handler(event("acme"), None)
    assert response["Role"] == ROLE_ARN and response["PublicKeys"] == [SSH_KEY]
    assert module.handler(event("nobody"), None) == {}


def test_a_partner_named_internal_before_the_names_were_reserved_cannot_log_in(zone: Silo, provider_iam, caplog):
    """`internal` once mapped to the staff uploads' old home `dropzone/internal/` (issue 12)."""
    caplog.set_level(logging.INFO)
    iam = zone.client("iam")
    iam.create_user(UserName="internal", Path=zone.dropzone.user_path,
                    Tags=[{"Key": "datalake:expires", "Value": "2027-01-01T00:00:00Z"}])
    secret = iam.create_access_key(UserName="internal")["AccessKey"]["SecretAccessKey"]
    iam.upload_ssh_public_key(UserName="internal", SSHPublicKeyBody=SSH_KEY)
    assert login(zone, provider_iam, event("internal", secret)) == {}
    assert login(zone, provider_iam, event("internal")) == {}
    assert "user name is reserved" in caplog.text


def test_the_sftp_session_policy_denies_the_staff_prefix_explicitly(zone: Silo, provider_iam):
    secret = new_partner(zone, "acme")["credentials"]["secret_access_key"]
    policy = json.loads(login(zone, provider_iam, event("acme", secret))["Policy"])
    bucket_arn = f"arn:aws:s3:::{zone.dropzone.bucket}"
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    # Transfer applies the session policy to every S3 call of the session; an explicit Deny wins.
    assert denies == [
        {"Sid": "DenyStaffObjects", "Effect": "Deny", "Action": ["s3:*Object", "s3:AbortMultipartUpload"],
         "Resource": [f"{bucket_arn}/dropzone/_staff/*"]},
        {"Sid": "DenyStaffListing", "Effect": "Deny", "Action": ["s3:ListBucket"], "Resource": [bucket_arn],
         "Condition": {"StringLike": {"s3:prefix": ["dropzone/_staff*"]}}},
    ]
