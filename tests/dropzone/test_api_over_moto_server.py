"""The API built as the Lambda builds it (`build_api`), against a real moto_server over HTTP.

This is the set-up an end-to-end test of the console uses: handlers behind a local adapter,
AWS calls going to moto_server.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from credential_vending.handler import build_api, proxy_response, request_of

from conftest import ADMIN, MEMBER, REGION


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_build_api_serves_partners_through_moto_server(moto_server: str):
    session = boto3.session.Session(region_name=REGION)
    iam, s3, kms, logs = (session.client(n, region_name=REGION, endpoint_url=moto_server) for n in ("iam", "s3", "kms", "logs"))
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket="dl-sales-dropzone-123456789012", CreateBucketConfiguration={"LocationConstraint": REGION})
    logs.create_log_group(logGroupName="datalake/sales/audit")
    boundary = iam.create_policy(PolicyName="b", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))["Policy"]["Arn"]
    env = {
        "SILO_NAME": "sales", "DROPZONE_BUCKET": "dl-sales-dropzone-123456789012", "KMS_KEY_ARN": key_arn,
        "PERMISSIONS_BOUNDARY_ARN": boundary, "SESSION_ROLE_ARN": "arn:aws:iam::123456789012:role/s",
        "AUDIT_LOG_GROUP": "datalake/sales/audit", "ALLOWED_ORIGIN": "http://localhost:8080",
    }
    api = build_api(env, session, endpoint_url=moto_server)

    created = api.dispatch("POST", "/partners", json.dumps({"name": "acme", "contact": "a@b.c", "expires_in_days": 3}), ADMIN)
    assert created.status == 201, created.body
    assert iam.get_user(UserName="acme")["User"]["Path"] == "/datalake/partners/sales/"
    event = {"resource": "/partners", "httpMethod": "GET", "requestContext": {"requestId": "r1", "authorizer": {"claims": MEMBER}}}
    listed = proxy_response(api.dispatch(*request_of(event)))
    assert listed["statusCode"] == 200 and listed["headers"]["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert [p["name"] for p in json.loads(listed["body"])["partners"]] == ["acme"]
    events = logs.filter_log_events(logGroupName="datalake/sales/audit")["events"]
    assert [json.loads(e["message"])["action"] for e in events] == ["partner.create"]
