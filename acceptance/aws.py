"""The AWS calls of the acceptance run, each small enough to test against moto or botocore's Stubber.

Every client is passed in (or built from a passed session), so the tests hand in moto clients or a
`Stubber`-wrapped client, whose calls botocore validates against the service model.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from components.shared.errors import DatalakeError


class AcceptanceError(DatalakeError):
    """A step of the acceptance run failed; the message says which and why."""


Sleep = Callable[[float], None]
Clock = Callable[[], float]


# -- Organizations ---------------------------------------------------------------------------------


def entity_path(org: Any, ou_id: str) -> str:
    """`o-…/r-…/ou-…/…/`: the OU's entity path (what `aws:PrincipalOrgPaths` compares), from the root down."""
    organization_id = org.describe_organization()["Organization"]["Id"]
    chain = [ou_id]
    current = ou_id
    while True:
        (parent,) = org.list_parents(ChildId=current)["Parents"]
        chain.append(parent["Id"])
        if parent["Type"] == "ROOT":
            break
        current = parent["Id"]
    return "/".join([organization_id, *reversed(chain)]) + "/"


def parent_ou(org: Any, account_id: str) -> Optional[str]:
    """The OU directly holding the account, or None when it sits in the root."""
    (parent,) = org.list_parents(ChildId=account_id)["Parents"]
    return parent["Id"] if parent["Type"] == "ORGANIZATIONAL_UNIT" else None


def assumed_session(session: Any, account_id: str, role_name: str, region: str, *, partition: str = "aws") -> Any:
    """A boto3 session in `account_id` through `role_name` (the deploy role the runner uses)."""
    import boto3

    credentials = session.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:{partition}:iam::{account_id}:role/{role_name}", RoleSessionName="datalake-acceptance"
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


# -- ingestion: SigV4-signed POSTs -------------------------------------------------------------------


@dataclass(frozen=True)
class SignedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def signed_post(endpoint: str, path: str, document: Any, credentials: Any, region: str) -> SignedRequest:
    """A POST of `document` as JSON to `<endpoint>/<path>`, signed with SigV4 for `execute-api`.

    `credentials` are botocore credentials (`session.get_credentials()`, or `botocore.credentials.
    Credentials`); a session token is signed too (`X-Amz-Security-Token`).
    """
    url = f"{endpoint.rstrip('/')}/{path.lstrip('/')}"
    body = json.dumps(document, separators=(",", ":")).encode()
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials() if hasattr(credentials, "get_frozen_credentials") else credentials,
              "execute-api", region).add_auth(request)
    return SignedRequest("POST", url, dict(request.headers.items()), body)


def send(request: SignedRequest, *, timeout: float = 30.0) -> tuple[int, Any]:
    """Sends the request; returns (HTTP status, parsed JSON body or text)."""
    http = urllib.request.Request(request.url, data=request.body, headers=request.headers, method=request.method)
    try:
        with urllib.request.urlopen(http, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def sample_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Three single records and a batch of two, valid for the template's `orders` dataset."""
    def record(n: int) -> dict[str, Any]:
        return {"order_id": f"acceptance-{n}", "customer_id": f"c-{n % 2}", "amount": 10.5 * n, "quantity": n,
                "express": n % 2 == 0, "ordered_at": f"2026-01-0{n}T12:00:00Z"}

    return [record(1), record(2), record(3)], [record(4), record(5)]


# -- waiting -------------------------------------------------------------------------------------------


def wait_for_objects(s3: Any, bucket: str, prefix: str, *, timeout: float, poll: float = 15.0,
                     sleep: Sleep = time.sleep, clock: Clock = time.monotonic) -> list[str]:
    """Keys under `prefix` once there is at least one (Firehose flushes its buffer every interval)."""
    deadline = clock() + timeout
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        if keys:
            return keys
        if clock() >= deadline:
            raise AcceptanceError(f"no object under s3://{bucket}/{prefix} after {timeout:.0f}s: did Firehose deliver? "
                                  "see the stream's error log group /aws/kinesisfirehose/<prefix>-<silo>")
        sleep(poll)


def run_execution(sfn: Any, state_machine_arn: str, name: str, *, timeout: float, poll: float = 15.0,
                  sleep: Sleep = time.sleep, clock: Clock = time.monotonic) -> dict[str, Any]:
    """Starts an execution and waits for it to end; SUCCEEDED returns its description, anything else raises."""
    execution = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input="{}")["executionArn"]
    deadline = clock() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution)
        status = described["status"]
        if status == "SUCCEEDED":
            return described
        if status != "RUNNING" and status != "PENDING_REDRIVE":
            raise AcceptanceError(f"ETL execution {execution} ended {status}: {failure_of(sfn, execution)}")
        if clock() >= deadline:
            sfn.stop_execution(executionArn=execution, error="AcceptanceTimeout", cause=f"not done after {timeout:.0f}s")
            raise AcceptanceError(f"ETL execution {execution} still RUNNING after {timeout:.0f}s; stopped it")
        sleep(poll)


def failure_of(sfn: Any, execution_arn: str) -> str:
    """The error and cause of the last failure event in the execution's history."""
    events = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=50)["events"]
    for event in events:
        for key, details in event.items():
            if key.endswith("FailedEventDetails") or key.endswith("AbortedEventDetails") or key.endswith("TimedOutEventDetails"):
                return f"{details.get('error', '?')}: {details.get('cause', '')}".strip()
    return "no failure event in the history"


def athena_query(athena: Any, sql: str, *, database: str, workgroup: str, timeout: float = 300.0, poll: float = 2.0,
                 sleep: Sleep = time.sleep, clock: Clock = time.monotonic) -> list[list[str]]:
    """Runs `sql` in the workgroup (its enforced result location and encryption) and returns the data rows."""
    query = athena.start_query_execution(
        QueryString=sql, QueryExecutionContext={"Database": database}, WorkGroup=workgroup
    )["QueryExecutionId"]
    deadline = clock() + timeout
    while True:
        status = athena.get_query_execution(QueryExecutionId=query)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            break
        if state in ("FAILED", "CANCELLED"):
            raise AcceptanceError(f"Athena query {query} {state}: {status.get('StateChangeReason', 'no reason given')}")
        if clock() >= deadline:
            athena.stop_query_execution(QueryExecutionId=query)
            raise AcceptanceError(f"Athena query {query} still {state} after {timeout:.0f}s; stopped it")
        sleep(poll)
    rows: list[list[str]] = []
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=query):
        for row in page["ResultSet"]["Rows"]:
            rows.append([cell.get("VarCharValue", "") for cell in row["Data"]])
    return rows[1:]  # the first row holds the column names


# -- purging what the stacks retain ------------------------------------------------------------------


RETAINED_ORDER = ("aws:s3/bucket:Bucket", "aws:cloudwatch/logGroup:LogGroup", "aws:iam/policy:Policy",
                  "aws:kms/alias:Alias", "aws:kms/key:Key")


def retained_resources(export: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(type, outputs) of every resource a `pulumi stack export` marks `retainOnDelete`, in purge order.

    Bucket settings (versioning, policy, ...) go with their bucket and are not listed.
    """
    found = [(r["type"], dict(r.get("outputs") or {})) for r in export.get("deployment", {}).get("resources", [])
             if r.get("retainOnDelete") and r["type"] in RETAINED_ORDER]
    return sorted(found, key=lambda item: RETAINED_ORDER.index(item[0]))


def empty_bucket(s3: Any, bucket: str) -> int:
    """Deletes every object version and delete marker; returns how many (the purge's own, runner/retained.py)."""
    from runner.retained import empty_bucket as purge_empty

    return purge_empty(s3, bucket)


def purge(session: Any, region: str, resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Deletes retained resources (keys: scheduled for deletion in 7 days); returns one line per resource.

    Failures do not stop the purge: each is reported with the command that removes the resource by hand.
    """
    s3, logs, iam, kms = (session.client(service, region_name=region) for service in ("s3", "logs", "iam", "kms"))
    done = []
    for type_, outputs in resources:
        try:
            if type_ == "aws:s3/bucket:Bucket":
                bucket = outputs["bucket"]
                count = empty_bucket(s3, bucket)
                s3.delete_bucket(Bucket=bucket)
                done.append(f"deleted bucket {bucket} ({count} object versions)")
            elif type_ == "aws:cloudwatch/logGroup:LogGroup":
                logs.delete_log_group(logGroupName=outputs["name"])
                done.append(f"deleted log group {outputs['name']}")
            elif type_ == "aws:iam/policy:Policy":
                for version in iam.list_policy_versions(PolicyArn=outputs["arn"])["Versions"]:
                    if not version["IsDefaultVersion"]:
                        iam.delete_policy_version(PolicyArn=outputs["arn"], VersionId=version["VersionId"])
                iam.delete_policy(PolicyArn=outputs["arn"])
                done.append(f"deleted policy {outputs['arn']}")
            elif type_ == "aws:kms/alias:Alias":
                kms.delete_alias(AliasName=outputs["name"])
                done.append(f"deleted alias {outputs['name']}")
            elif type_ == "aws:kms/key:Key":
                # The key id, not the ARN: the client is already in the key's region (and moto takes only ids).
                key_id = outputs.get("keyId") or outputs["arn"].rsplit("/", 1)[-1]
                when = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)["DeletionDate"]
                done.append(f"scheduled key {outputs['arn']} for deletion on {when:%Y-%m-%d}")
        except Exception as exc:  # noqa: BLE001 - report and go on: the rest can still be removed
            done.append(f"FAILED to remove {type_} {outputs.get('bucket') or outputs.get('name') or outputs.get('arn')}: "
                        f"{exc}; remove it by hand ({manual_command(type_, outputs, region)})")
    return done


def manual_command(type_: str, outputs: Mapping[str, Any], region: str) -> str:
    return {
        "aws:s3/bucket:Bucket": f"empty it, then aws s3api delete-bucket --bucket {outputs.get('bucket')}",
        "aws:cloudwatch/logGroup:LogGroup": f"aws logs delete-log-group --region {region} --log-group-name {outputs.get('name')}",
        "aws:iam/policy:Policy": f"aws iam delete-policy --policy-arn {outputs.get('arn')}",
        "aws:kms/alias:Alias": f"aws kms delete-alias --region {region} --alias-name {outputs.get('name')}",
        "aws:kms/key:Key": f"aws kms schedule-key-deletion --region {region} --key-id {outputs.get('arn')} --pending-window-in-days 7",
    }.get(type_, "see the AWS console")


def rows_of(records: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """What `SELECT order_id, amount … ORDER BY order_id` must return for the sent records, as Athena's text."""
    return [[r["order_id"], f"{r['amount']:.2f}"] for r in sorted(records, key=lambda r: r["order_id"])]
