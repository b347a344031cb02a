"""Tables for people, JSON reports for machines, and where reports and state exports are stored.

A location is a local directory or `s3://bucket/prefix` (the master's state bucket in CodeBuild).
Each run writes `<report location>/<run-id>/report.json`; retired stacks' state exports go to
`<exports location>/<run-id>/<stack>.json` (`s3://<state bucket>/runner-exports` by default), each
stored with `put_durable_json`: SSE-KMS with the master key, read back before the stack is removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from components.shared.errors import UsageError
from components.silo.settings import PROFILES_DIR

from .model import Account, OperationResult, Plan, PlannedOperation, Result

REPORT_FILE = "report.json"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table (no dependency, readable in CodeBuild logs)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def discovery_table(accounts: Sequence[Account]) -> str:
    rows = [
        (a.id, a.name, a.status, a.ou_path, "opted out" if a.opted_out else (a.excluded or ("silo" if a.active else "-")))
        for a in accounts
    ]
    return table(("account", "name", "status", "ou", "silo?"), rows)


def overrides_cell(op: PlannedOperation) -> str:
    """`sftp.enabled, warehouse.maxCapacity (profile); aws:region (account file)`; the plan JSON names the files."""
    by_source: dict[str, list[str]] = {}
    for override in op.overrides:
        kind = "profile" if f"/{PROFILES_DIR}/" in override.source else "account file"
        by_source.setdefault(kind, []).append(override.key.removeprefix("datalake:"))
    return "; ".join(f"{', '.join(keys)} ({kind})" for kind, keys in by_source.items())


def plan_table(plan: Plan) -> str:
    """The plan, one line per account; an unchanged update shows `unchanged (since <date>)` and is not counted as an update."""

    def why(op) -> str:
        if op.held:
            return f"HELD - {op.reason}"
        return f"{op.unchanged}: skipped" if op.unchanged else op.reason

    rows = [
        (
            op.account_id,
            op.account_name,
            op.silo_name or "",
            op.label,
            why(op),
            f"partners {op.partners}" if op.partners else "",
            op.profile or ("-" if op.config is not None else ""),
            overrides_cell(op),
        )
        for op in plan.operations
    ]
    tally: dict[str, int] = {}
    for op in plan.operations:
        key = "unchanged" if op.unchanged else op.action.value
        tally[key] = tally.get(key, 0) + 1
    counts = ", ".join(f"{action}: {n}" for action, n in sorted(tally.items()))
    lines = [table(("account", "name", "silo", "action", "why", "dropzone partners", "profile", "overrides"), rows)]
    lines.append(f"{len(plan.operations)} operations ({counts or 'nothing to do'}) for {plan.discovered_accounts} "
                 f"discovered accounts and {plan.existing_stacks} existing silo stacks")
    if tally.get("unchanged"):
        lines.append(f"{tally['unchanged']} unchanged stack(s) will not be deployed; --force deploys them all, --force ACCOUNT one")
    if plan.held_reason:
        lines.append(f"SAFETY: {plan.held_reason}")
    return "\n".join(lines)


def summary_table(results: Sequence[OperationResult]) -> str:
    rows = [
        (
            r.operation.account_id,
            r.operation.account_name,
            r.operation.action.value,
            r.result.value,
            f"{r.seconds:.1f}s",
            r.changed,
            r.error.splitlines()[0][:100] if r.error else "",
        )
        for r in results
    ]
    tally = {result: sum(1 for r in results if r.result is result) for result in Result}
    footer = ", ".join(f"{n} {result.value}" for result, n in tally.items() if n)
    notes = [f"{r.operation.account_id} {r.operation.stack}: {note}" for r in results for note in r.notes]
    return "\n".join(
        [table(("account", "name", "action", "result", "duration", "changed", "error"), rows), footer or "nothing ran", *notes]
    )


def drift_table(results: Sequence[OperationResult]) -> str:
    rows = []
    for r in results:
        first, *rest = r.changes or [r.error or "no drift"]
        rows.append((r.operation.account_id, r.operation.account_name, r.result.value, first))
        rows.extend(("", "", "", change) for change in rest)
    return table(("account", "name", "result", "changed resources"), rows)


class NotStoredError(Exception):
    """A document could not be stored durably; the message says where and why."""


class ReportStore:
    """Reads and writes JSON documents under a local directory or an S3 prefix.

    With `kms_key_id`, S3 objects are written with SSE-KMS under that key (an ARN, key id or
    `alias/...`), whatever the bucket's default encryption.
    """

    def __init__(self, location: str, s3_client: Optional[Callable[[], Any]] = None, kms_key_id: Optional[str] = None):
        self.location = location.rstrip("/")
        self._s3_factory = s3_client
        self.kms_key_id = kms_key_id
        if self.location.startswith("s3://"):
            bucket, _, prefix = self.location[5:].partition("/")
            if not bucket:
                raise UsageError(f"report location {location!r} names no bucket; for example: s3://my-state-bucket/runner")
            self.bucket, self.prefix = bucket, prefix
        else:
            self.bucket, self.prefix = None, ""

    def _s3(self) -> Any:
        if self._s3_factory is None:
            import boto3

            self._s3_factory = lambda: boto3.client("s3")
        return self._s3_factory()

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _encryption(self) -> dict[str, str]:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id} if self.kms_key_id else {}

    def put_json(self, relative: str, document: Any) -> str:
        body = json.dumps(document, indent=2, sort_keys=True, default=str)
        if self.bucket:
            self._s3().put_object(
                Bucket=self.bucket, Key=self._key(relative), Body=body.encode(), ContentType="application/json", **self._encryption()
            )
            return f"s3://{self.bucket}/{self._key(relative)}"
        path = Path(self.location) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        return str(path)

    def put_durable_json(self, relative: str, document: Any) -> str:
        """Stores a document that must survive (a state export), then checks it did; raises `NotStoredError`.

        S3: written with SSE-KMS (a `kms_key_id` is required) and read back with `HeadObject`: same
        size, `aws:kms`, and the requested key when it was given as an ARN (for an alias or key id S3
        reports the key's ARN, which only `kms:DescribeKey` could match). A directory: written to a
        temporary file, flushed to disk and renamed.
        """
        body = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
        if not self.bucket:
            path = Path(self.location) / relative
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f".{path.name}.partial")
                with partial.open("wb") as out:
                    out.write(body)
                    out.flush()
                    os.fsync(out.fileno())
                partial.replace(path)
            except OSError as exc:
                raise NotStoredError(f"could not write {path}: {exc}") from exc
            return str(path)
        if not self.kms_key_id:
            raise NotStoredError(f"no KMS key to encrypt s3://{self.bucket}/{self._key(relative)} with; pass --exports-kms-key")
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self.bucket}/{self._key(relative)}"
        try:
            s3 = self._s3()
            s3.put_object(Bucket=self.bucket, Key=self._key(relative), Body=body, ContentType="application/json", **self._encryption())
            stored = s3.head_object(Bucket=self.bucket, Key=self._key(relative))
        except (ClientError, BotoCoreError) as exc:
            raise NotStoredError(f"could not store {where}: {exc}") from exc
        problems = []
        if stored.get("ContentLength") != len(body):
            problems.append(f"{stored.get('ContentLength')} bytes stored of {len(body)}")
        if stored.get("ServerSideEncryption") != "aws:kms":
            problems.append(f"encryption is {stored.get('ServerSideEncryption')!r}, not aws:kms")
        elif self.kms_key_id.startswith("arn:") and stored.get("SSEKMSKeyId") != self.kms_key_id:
            problems.append(f"encrypted with {stored.get('SSEKMSKeyId')}, not {self.kms_key_id}")
        if problems:
            raise NotStoredError(f"{where} was not stored as asked: {'; '.join(problems)}")
        return where

    def get_json(self, relative: str) -> Any:
        if self.bucket:
            body = self._s3().get_object(Bucket=self.bucket, Key=self._key(relative))["Body"].read()
            return json.loads(body)
        path = Path(self.location) / relative
        if not path.exists():
            raise UsageError(f"no report at {path}")
        return json.loads(path.read_text())

    def run_ids(self) -> list[str]:
        """Run ids with a report, oldest first (run ids sort by time)."""
        if self.bucket:
            paginator = self._s3().get_paginator("list_objects_v2")
            prefix = self._key("")
            ids = [
                obj["Key"][len(prefix):].split("/")[0]
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for obj in page.get("Contents", [])
                if obj["Key"].endswith(f"/{REPORT_FILE}")
            ]
            return sorted(set(ids))
        root = Path(self.location)
        return sorted(p.parent.name for p in root.glob(f"*/{REPORT_FILE}")) if root.is_dir() else []


def build_report(
    run_id: str,
    command: str,
    options: dict[str, Any],
    plan: Optional[Plan],
    results: Sequence[OperationResult],
    timings: dict[str, float],
    exit_code: int,
    error: str = "",
    exports_to: Optional[str] = None,
) -> dict[str, Any]:
    """The JSON report of one run; `exports_to` is where retired stacks' state exports went."""
    return {
        "runId": run_id,
        "command": command,
        "options": options,
        "exportsTo": exports_to,
        "exitCode": exit_code,
        "error": error,
        "timings": {key: round(value, 3) for key, value in timings.items()},
        "plan": plan.to_json() if plan else None,
        "results": [r.to_json() for r in results],
        "counts": {result.value: sum(1 for r in results if r.result is result) for result in Result},
    }
