"""Fixtures of the dropzone handler tests: one silo's dropzone in moto, and the API over it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator
from moto import mock_aws

from credential_vending.api import CredentialVendingApi, Settings
from credential_vending.audit import AuditLog
from dropzone_partners.partners import Dropzone

REGION = "eu-west-1"
SILO = "sales"
ACCOUNT = "123456789012"  # moto's default account
SSH_KEY_FOR_TESTS = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDZ5Q5Q5Q5Q5Q5Q5Q5Q5Q5Q5Q5Q5Q ops@acme"
ADMIN = {"cognito:username": "alice", "cognito:groups": "admin"}
MEMBER = {"cognito:username": "bob", "cognito:groups": "member"}


class Clock:
    """A settable clock: tests move time instead of waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class RecordingClient:
    """A real boto3 client that also remembers every operation called through it, with its arguments."""

    def __init__(self, real: Any):
        self._real = real
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name.startswith("_") or name in ("exceptions", "meta", "get_paginator") or not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return attribute(**kwargs)

        return call

    def called(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for op, kwargs in self.calls if op == name]


class FailingClient:
    """A real boto3 client that fails the `occurrence`-th call of one operation, as AWS can midway
    through a request. That call's parameters are first checked against botocore's service model
    (a malformed call fails as it would against AWS); every other call goes to the real client."""

    def __init__(self, real: Any, operation: str, occurrence: int = 1, code: str = "ServiceFailure"):
        self._real, self._operation, self._occurrence, self._code = real, operation, occurrence, code
        self._seen = 0
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name != self._operation:
            return attribute

        def call(**kwargs: Any) -> Any:
            self._seen += 1
            if self._seen != self._occurrence:
                return attribute(**kwargs)
            api_name = self._real.meta.method_to_api_mapping[name]
            model = self._real.meta.service_model.operation_model(api_name)
            report = ParamValidator().validate(kwargs, model.input_shape)
            if report.has_errors():
                raise ParamValidationError(report=report.generate_report())
            self.failed = True
            raise ClientError({"Error": {"Code": self._code, "Message": f"injected failure of {api_name}"}}, api_name)

        return call


def call_sequence(recording: "RecordingClient") -> list[tuple[str, int]]:
    """(operation, occurrence) of every call a `RecordingClient` saw, in order."""
    seen: dict[str, int] = {}
    sequence = []
    for name, _ in recording.calls:
        seen[name] = seen.get(name, 0) + 1
        sequence.append((name, seen[name]))
    return sequence


@dataclass
class Silo:
    """A silo's dropzone as the handlers see it, in moto."""

    session: boto3.session.Session
    dropzone: Dropzone
    settings: Settings
    clock: Clock
    api: CredentialVendingApi
    raw_bucket: str
    iam: RecordingClient

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    def audit_records(self) -> list[dict[str, Any]]:
        logs = self.client("logs")
        events = logs.filter_log_events(logGroupName=self.settings.audit_log_group)["events"]
        return [json.loads(e["message"]) for e in events]

    def call(self, method: str, path: str, body: Any = None, claims: Any = ADMIN):
        response = self.api.dispatch(method, path, json.dumps(body) if isinstance(body, dict) else body, claims)
        return response.status, response.body


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def make_silo(silo: str = SILO, *, allowed_origin: str = "https://console.example") -> Silo:
    session = boto3.session.Session(region_name=REGION)
    s3, kms, iam, logs = (session.client(n, region_name=REGION) for n in ("s3", "kms", "iam", "logs"))
    key_arn = kms.create_key(Description=f"silo {silo}")["KeyMetadata"]["Arn"]
    bucket = f"datalake-{silo}-dropzone-{ACCOUNT}"
    raw = f"datalake-{silo}-raw-{ACCOUNT}"
    for name in (bucket, raw):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    dropzone = Dropzone(silo=silo, bucket=bucket, key_arn=key_arn)
    boundary = iam.create_policy(
        PolicyName=f"{silo}-partner-boundary", PolicyDocument=json.dumps(dropzone.access_policy("x"))
    )["Policy"]["Arn"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=f"{silo}-partner-session", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    group = f"datalake/{silo}/audit"
    logs.create_log_group(logGroupName=group)
    settings = Settings(
        dropzone=dropzone,
        permissions_boundary_arn=boundary,
        session_role_arn=role,
        audit_log_group=group,
        allowed_origin=allowed_origin,
        upload_max_bytes=1024,
    )
    clock = Clock()
    recording_iam = RecordingClient(iam)
    api = CredentialVendingApi(
        settings,
        iam=recording_iam,
        sts=session.client("sts", region_name=REGION),
        s3=s3,
        audit=AuditLog(logs, group, source="api", clock=clock),
        clock=clock,
    )
    return Silo(session, dropzone, settings, clock, api, raw, recording_iam)


@pytest.fixture
def zone(aws_env: None) -> Silo:
    return make_silo()


def new_partner(silo: Silo, name: str = "acme", **extra: Any) -> dict[str, Any]:
    body = {"name": name, "contact": "ops@acme.example", "expires_in_days": 30, **extra}
    status, payload = silo.call("POST", "/partners", body)
    assert status == 201, payload
    return payload


def partner_policy(silo: Silo, partner: str, cidrs: tuple[str, ...] = ()) -> dict[str, Any]:
    """The partner's whole permission, written out by hand (not from `Dropzone.access_policy`, which it checks).

    Its own prefix of the silo's dropzone bucket (read, write, abort its multipart uploads, list),
    the silo key only as S3 uses it on the partner's behalf for this bucket (no IP condition: S3's
    calls to KMS do not carry the partner's address), every S3 call from outside `cidrs` denied
    when given, and the staff prefix `dropzone/_staff/` denied outright (issue 12).
    """
    bucket = f"arn:aws:s3:::datalake-{silo.dropzone.silo}-dropzone-{ACCOUNT}"
    outside = [{"Sid": "DenyOutsideAllowedCidrs", "Effect": "Deny", "Action": ["s3:*"], "Resource": ["*"],
                "Condition": {"NotIpAddress": {"aws:SourceIp": list(cidrs)}}}] if cidrs else []
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadWriteOwnPrefix", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
             "Resource": [f"{bucket}/dropzone/{partner}/*"]},
            {"Sid": "ListOwnPrefix", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket],
             "Condition": {"StringLike": {"s3:prefix": [f"dropzone/{partner}/", f"dropzone/{partner}/*"]}}},
            {"Sid": "UseSiloKeyThroughS3", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
             "Resource": [silo.dropzone.key_arn],
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"},
                           "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket, f"{bucket}/*"]}}},
            *outside,
            {"Sid": "DenyStaffObjects", "Effect": "Deny", "Action": ["s3:*Object", "s3:AbortMultipartUpload"],
             "Resource": [f"{bucket}/dropzone/_staff/*"]},
            {"Sid": "DenyStaffListing", "Effect": "Deny", "Action": ["s3:ListBucket"], "Resource": [bucket],
             "Condition": {"StringLike": {"s3:prefix": ["dropzone/_staff*"]}}},
        ],
    }
