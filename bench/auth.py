"""In-process latency of the dropzone's two hot paths against moto.

- the SFTP identity provider (`sftp_auth.handler.identify`) for a right password: partner lookup,
  key listing and an STS `GetCallerIdentity` whose signature moto verifies (IAM enforcement on);
- `POST /partners` of the credential-vending API: validation, user, inline policy, access key,
  audit record and the response (each call creates a new partner).

Figures are moto's and Python's, not AWS's: they show what the handlers themselves cost and how
that changes between commits, not what a partner waits for on AWS.

    python bench/auth.py [--calls 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-west-1")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import set_initial_no_auth_action_count  # noqa: E402

from credential_vending.api import CredentialVendingApi, Settings  # noqa: E402
from credential_vending.audit import AuditLog  # noqa: E402
from dropzone_partners.partners import Dropzone  # noqa: E402
from sftp_auth.handler import identify, sts_factory  # noqa: E402

REGION = "eu-west-1"
ADMIN = {"cognito:username": "bench", "cognito:groups": "admin"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {"calls": len(ms), "median_ms": round(statistics.median(ms), 2), "p99_ms": round(percentile(ms, 0.99), 2),
            "max_ms": round(max(ms), 2)}


def build_api() -> CredentialVendingApi:
    session = boto3.session.Session(region_name=REGION)
    s3, kms, iam, logs = (session.client(n) for n in ("s3", "kms", "iam", "logs"))
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = "bench-sales-dropzone-123456789012"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    dropzone = Dropzone(silo="sales", bucket=bucket, key_arn=key_arn)
    boundary = iam.create_policy(PolicyName="boundary", PolicyDocument=json.dumps(dropzone.access_policy("x")))["Policy"]["Arn"]
    logs.create_log_group(logGroupName="datalake/sales/audit")
    settings = Settings(dropzone=dropzone, permissions_boundary_arn=boundary,
                        session_role_arn="arn:aws:iam::123456789012:role/session", audit_log_group="datalake/sales/audit")
    return CredentialVendingApi(settings, iam=iam, sts=session.client("sts"), s3=s3,
                                audit=AuditLog(logs, settings.audit_log_group, source="bench"))


def bench_create(api: CredentialVendingApi, calls: int) -> tuple[list[float], dict]:
    samples, last = [], {}
    for i in range(calls):
        body = json.dumps({"name": f"partner-{i:04d}", "contact": "ops@partner.example", "expires_in_days": 30})
        start = time.perf_counter()
        response = api.dispatch("POST", "/partners", body, ADMIN)
        samples.append(time.perf_counter() - start)
        if response.status != 201:
            raise SystemExit(f"POST /partners answered {response.status}: {response.body}")
        last = response.body
    return samples, last


def bench_identify(api: CredentialVendingApi, secret: str, calls: int) -> list[float]:
    iam = boto3.client("iam")
    iam.create_user(UserName="sftp-auth")
    iam.put_user_policy(UserName="sftp-auth", PolicyName="reads", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="sftp-auth")["AccessKey"]
    provider_iam = boto3.client("iam", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    sts_for = sts_factory(REGION)  # what the Lambda uses: a new client per login, from one shared session
    event = {"username": "partner-0000", "password": secret, "protocol": "SFTP", "sourceIp": "198.51.100.7"}

    @set_initial_no_auth_action_count(0)
    def run() -> list[float]:
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            response = identify(event, iam=provider_iam, sts_for=sts_for, dropzone=api.dropzone,
                                role_arn="arn:aws:iam::123456789012:role/sftp")
            samples.append(time.perf_counter() - start)
            if not response:
                raise SystemExit("the identity provider denied a right password")
        return samples

    return run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    options = parser.parse_args()
    with mock_aws():
        api = build_api()
        create_samples, _ = bench_create(api, options.calls)
        # Partner 0's secret: create a fresh key for it (the first response's secret is not kept).
        iam = boto3.client("iam")
        for key in iam.list_access_keys(UserName="partner-0000")["AccessKeyMetadata"]:
            iam.delete_access_key(UserName="partner-0000", AccessKeyId=key["AccessKeyId"])
        secret = iam.create_access_key(UserName="partner-0000")["AccessKey"]["SecretAccessKey"]
        identify_samples = bench_identify(api, secret, options.calls)
    results = {
        "sftp_identity_provider_password": summary(identify_samples),
        "post_partners": summary(create_samples),
    }
    if options.json:
        print(json.dumps(results))
        return
    print(f"{'path (in-process, moto)':<36}{'calls':>7}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}")
    for name, figures in results.items():
        print(f"{name:<36}{figures['calls']:>7}{figures['median_ms']:>11.2f}{figures['p99_ms']:>9.2f}{figures['max_ms']:>9.2f}")


if __name__ == "__main__":
    main()
