"""`python -m runner restore <stack> --from SOURCE`: put a stack's state back from a backup.

SOURCE is one of
- a runner export (`<exports location>/<run-id>/<stack>.json`, by default under
  `s3://<state bucket>/runner-exports/`, written before every retirement) or any `pulumi stack
  export` file: a local path or an `s3://bucket/key` URL;
- a DIY checkpoint: the stack's `.pulumi/stacks/<project>/<stack>.json[.gz]`, its `.bak`, a file of
  `.pulumi/backups/` or `.pulumi/history/` (a path, or `s3://bucket/key[?versionId=...]`);
- `version:<id>`, a previous object version of the stack's checkpoint in the state bucket, or
  `version:previous`, the newest superseded one (`--list-versions` shows them).

It prints what the import would change, resource by resource (by URN) against the current state,
and imports only with `--yes` (through `StackOperations.import_state`, i.e. `pulumi stack import`).
The state being replaced stays recoverable: it is the bucket's previous version after the import,
and when the CLI could read it, it is also saved under the report location first.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

import yaml

from components.master.config import MasterConfig
from components.shared.errors import RunnerError, StackOperationError, UsageError
from components.shared.naming import plain_bucket_name

from .recovery_pending import CREATING, pending_operations
from .report import ReportStore, table
from .stack_ops import StackOperations

log = logging.getLogger("runner.restore")

STACKS_DIR = ".pulumi/stacks"
CHECKPOINT_SUFFIXES = (".json", ".json.gz", ".json.zst")
# Pulumi's stack name rule (tokens.ParseStackName): letters, digits, `-`, `_`, `.`; at most 100.
STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
# Fields that every refresh or update rewrites; a resource differing only there did not change.
VOLATILE_FIELDS = frozenset({"created", "modified"})


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    restore = commands.add_parser(
        "restore",
        parents=[common],
        help="import a stack's state from a runner export, a checkpoint file or a previous bucket version",
    )
    restore.add_argument("stack", help="stack name, e.g. silo-123456789012 or master")
    source = restore.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source", metavar="SOURCE", help="export/checkpoint path, s3://bucket/key[?versionId=..], version:<id> or version:previous")
    source.add_argument("--list-versions", action="store_true", help="list the versions of the stack's checkpoint in the state bucket")
    restore.add_argument("--yes", action="store_true", help="import (default: show what would change, change nothing)")
    restore.add_argument("--state-bucket", help="state bucket (default: the --backend-url bucket, runner.stateBucket, else <prefix>-master-pulumi-state-<account>)")


# ---------------------------------------------------------------------------------------------
# Reading sources


def parse_state(raw: bytes, where: str) -> dict[str, Any]:
    """A state document from bytes: plain or gzipped JSON (what the DIY backend writes)."""
    if raw.startswith(ZSTD_MAGIC):
        raise UsageError(f"{where} is zstd-compressed; decompress it (`zstd -d`) and pass the .json file")
    if raw.startswith(GZIP_MAGIC):
        raw = gzip.decompress(raw)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{where} is not a Pulumi state file: it is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UsageError(f"{where} is not a Pulumi state file: its JSON is not an object")
    return document


def as_deployment(document: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The `pulumi stack export` form (`{"version", "deployment"}`) of an export or a DIY checkpoint."""
    if isinstance(document.get("deployment"), dict):
        deployment = document["deployment"]
    elif isinstance(document.get("checkpoint"), dict):
        deployment = document["checkpoint"].get("latest")
        if not isinstance(deployment, dict):
            raise UsageError(f"{where} is a checkpoint of a stack that was never deployed: there is no state to restore")
    else:
        raise UsageError(f"{where} is neither a `pulumi stack export` file (no 'deployment') nor a checkpoint (no 'checkpoint')")
    result: dict[str, Any] = {"version": int(document.get("version") or 3), "deployment": deployment}
    if document.get("features"):
        result["features"] = list(document["features"])
    return result


def resources(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((deployment.get("deployment") or {}).get("resources") or [])


def parse_urn(urn: str) -> tuple[str, str, str, str]:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` → (stack, project, type, name)."""
    if not urn.startswith("urn:pulumi:"):
        raise UsageError(f"{urn!r} is not a Pulumi URN")
    stack, project, qualified_type, *name = urn[len("urn:pulumi:"):].split("::")
    # A nested type is `parent$child`; the resource's own type is the last part.
    return stack, project, qualified_type.rsplit("$", 1)[-1], "::".join(name)


def check_belongs(deployment: Mapping[str, Any], stack: str, project: str, where: str) -> None:
    """Refuses another stack's state, as `pulumi stack import` does: it would take over that stack's resources."""
    foreign = [r["urn"] for r in resources(deployment) if parse_urn(r["urn"])[:2] != (stack, project)]
    if foreign:
        other = parse_urn(foreign[0])
        raise UsageError(
            f"{where} holds resources of stack {other[0]!r} of project {other[1]!r}, not of {stack!r} of {project!r} "
            f"({len(foreign)} resources, e.g. {foreign[0]}); restore it into that stack"
        )


@dataclass(frozen=True)
class Version:
    version_id: str
    last_modified: datetime
    size: int
    latest: bool
    delete_marker: bool = False


class StateBucket:
    """The stack checkpoints of a DIY (S3) backend: `.pulumi/stacks/<project>/<stack>.json[.gz]` and their versions."""

    def __init__(self, s3: Any, bucket: str, project: str):
        self.s3, self.bucket, self.project = s3, bucket, project

    def base_key(self, stack: str) -> str:
        return f"{STACKS_DIR}/{self.project}/{stack}"

    def versions(self, stack: str) -> tuple[str, list[Version]]:
        """(the checkpoint's key, its versions newest first). Several compressions: the newest one wins, as in the CLI."""
        prefix = self.base_key(stack) + ".json"
        wanted = {self.base_key(stack) + suffix for suffix in CHECKPOINT_SUFFIXES}
        found: dict[str, list[Version]] = {}
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for kind in ("Versions", "DeleteMarkers"):
                for item in page.get(kind, []):
                    if item["Key"] in wanted:
                        found.setdefault(item["Key"], []).append(
                            Version(item["VersionId"], item["LastModified"], item.get("Size", 0), item["IsLatest"], kind == "DeleteMarkers")
                        )
        if not found:
            raise UsageError(
                f"s3://{self.bucket}/{prefix} has no versions: no stack {stack!r} of project {self.project!r} in this backend "
                "(check the stack name, --state-bucket and the project's Pulumi.yaml name)"
            )
        key = max(found, key=lambda k: max(v.last_modified for v in found[k]))
        return key, sorted(found[key], key=lambda v: v.last_modified, reverse=True)

    def read(self, key: str, version_id: Optional[str] = None) -> bytes:
        extra = {"VersionId": version_id} if version_id else {}
        return self.s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()

    def pick(self, stack: str, wanted: str) -> tuple[str, Version]:
        """`previous` or a version id → (key, version); an unknown id lists the ones that exist."""
        key, versions = self.versions(stack)
        objects = [v for v in versions if not v.delete_marker]
        if wanted == "previous":
            older = [v for v in objects if not v.latest]
            if not older:
                raise UsageError(f"s3://{self.bucket}/{key} has no previous version to restore")
            return key, older[0]
        for version in objects:
            if version.version_id == wanted:
                return key, version
        listed = ", ".join(f"{v.version_id} ({v.last_modified:%Y-%m-%d %H:%M:%S})" for v in objects[:5])
        raise UsageError(f"version {wanted!r} is not a version of s3://{self.bucket}/{key}; newest ones: {listed} (see --list-versions)")


def _s3_url(url: str) -> tuple[str, str, Optional[str]]:
    parsed = urlparse(url)
    if not parsed.netloc or not parsed.path.strip("/"):
        raise UsageError(f"--from {url!r} names no object; for example: s3://my-state-bucket/runner-exports/<run-id>/<stack>.json")
    version = parse_qs(parsed.query).get("versionId", [None])[0]
    return parsed.netloc, parsed.path.lstrip("/"), version


@dataclass
class Source:
    deployment: dict[str, Any]
    where: str


def load_source(spec: str, stack: str, s3: Callable[[], Any], bucket: Callable[[], StateBucket]) -> Source:
    if spec.startswith("version:"):
        state = bucket()
        key, version = state.pick(stack, spec.removeprefix("version:"))
        where = f"s3://{state.bucket}/{key} version {version.version_id} ({version.last_modified:%Y-%m-%d %H:%M:%S})"
        return Source(as_deployment(parse_state(state.read(key, version.version_id), where), where), where)
    if spec.startswith("s3://"):
        name, key, version_id = _s3_url(spec)
        extra = {"VersionId": version_id} if version_id else {}
        raw = s3().get_object(Bucket=name, Key=key, **extra)["Body"].read()
        return Source(as_deployment(parse_state(raw, spec), spec), spec)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--from {spec!r}: no such file (and not s3://... or version:<id>)")
    return Source(as_deployment(parse_state(path.read_bytes(), spec), spec), spec)


# ---------------------------------------------------------------------------------------------
# What an import changes


@dataclass
class StateDiff:
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _identity(resource: Mapping[str, Any]) -> tuple[str, bool]:
    # A replaced resource waiting for deletion shares its URN with its replacement.
    return resource["urn"], bool(resource.get("delete"))


def diff_states(current: Optional[Mapping[str, Any]], restored: Mapping[str, Any]) -> StateDiff:
    """Resources of the restored state against the current one, by URN; `changed` names the differing fields."""
    before = {_identity(r): r for r in resources(current or {})}
    after = {_identity(r): r for r in resources(restored)}
    result = StateDiff()
    for urn, resource in after.items():
        old = before.get(urn)
        if old is None:
            result.added.append(resource)
            continue
        fields = sorted(k for k in set(old) | set(resource) if k not in VOLATILE_FIELDS and old.get(k) != resource.get(k))
        if fields:
            result.changed.append((resource, fields))
        else:
            result.unchanged += 1
    result.removed = [r for urn, r in before.items() if urn not in after]
    return result


def diff_table(diff: StateDiff) -> str:
    def row(change: str, resource: Mapping[str, Any], detail: str = "") -> tuple[str, ...]:
        _, _, kind, name = parse_urn(resource["urn"])
        return (change, kind, name, detail or str(resource.get("id") or ""))

    rows = [row("+ add", r) for r in diff.added]
    rows += [row("- remove", r, "from state only: the cloud resource stays") for r in diff.removed]
    rows += [row("~ change", r, ", ".join(fields)) for r, fields in diff.changed]
    summary = f"{len(diff.added)} to add, {len(diff.removed)} to remove, {len(diff.changed)} to change, {diff.unchanged} unchanged"
    return (table(("change", "type", "name", "id / changed fields"), rows) + "\n" if rows else "") + summary


# ---------------------------------------------------------------------------------------------
# The command


def project_name(project_dir: Path) -> str:
    try:
        return str(yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"])
    except FileNotFoundError:
        raise UsageError(f"{project_dir}/Pulumi.yaml does not exist; pass --project-dir") from None


def state_bucket_name(args: argparse.Namespace, config: MasterConfig, account_id: Callable[[], str]) -> str:
    """The backend's bucket: --state-bucket, the s3:// --backend-url, runner.stateBucket, else the default name."""
    if getattr(args, "state_bucket", None):
        return str(args.state_bucket)
    backend = args.backend_url or ""
    if backend.startswith("s3://"):
        return urlparse(backend).netloc
    if backend:
        raise UsageError(f"the backend {backend!r} is not an S3 bucket; version: sources need one (or pass --state-bucket)")
    return config.runner.state_bucket or plain_bucket_name(config.name_prefix, "master", "pulumi-state", account_id())


@dataclass
class CurrentState:
    deployment: Optional[dict[str, Any]]
    where: str
    problem: str = ""
    version_id: str = ""
    """The bucket version read, when the state came from the bucket: what `--from version:` undoes the import to."""


def current_state(stack: str, ops: Callable[[], StackOperations], bucket: Callable[[], StateBucket], project: str) -> CurrentState:
    """The stack's state now: through the CLI (`export`), else straight from the bucket, else None with why."""
    problems = []
    try:
        return CurrentState(ops().export(stack), "pulumi stack export")
    except (StackOperationError, UsageError) as exc:
        problems.append(f"export: {exc}")
    try:
        state = bucket()
        key, versions = state.versions(stack)
        latest = next(v for v in versions if v.latest)
        if latest.delete_marker:
            return CurrentState(None, f"s3://{state.bucket}/{key}", "the checkpoint is deleted (the stack was removed)")
        where = f"s3://{state.bucket}/{key} (latest, {latest.version_id})"
        try:
            return CurrentState(as_deployment(parse_state(state.read(key, latest.version_id), where), where), where, version_id=latest.version_id)
        except UsageError as exc:
            return CurrentState(None, where, f"{'; '.join(problems)}; {exc}", version_id=latest.version_id)
    except (UsageError, RunnerError) as exc:
        problems.append(str(exc))
    return CurrentState(None, "", "; ".join(problems))


def run_restore(
    args: argparse.Namespace,
    config: MasterConfig,
    ops: Callable[[], StackOperations],
    s3: Callable[[], Any],
    account_id: Callable[[], str],
    out: Callable[[str], None] = print,
) -> int:
    """Shows what the restore changes and, with --yes, imports; returns the exit code."""
    stack = args.stack
    if not STACK_NAME.match(stack):
        raise UsageError(f"stack name {stack!r}: only letters, digits, '-', '_' and '.' (at most 100); for example: silo-123456789012")
    project = project_name(args.project_dir)
    buckets: list[StateBucket] = []

    def bucket() -> StateBucket:
        if not buckets:
            buckets.append(StateBucket(s3(), state_bucket_name(args, config, account_id), project))
        return buckets[0]

    if args.list_versions:
        key, versions = bucket().versions(stack)
        out(f"s3://{bucket().bucket}/{key}, newest first:")
        rows = [
            (v.version_id, f"{v.last_modified:%Y-%m-%d %H:%M:%S}", "delete marker" if v.delete_marker else str(v.size), "current" if v.latest else "")
            for v in versions
        ]
        out(table(("version", "last modified (UTC)", "bytes", ""), rows))
        return 0

    source = load_source(args.source, stack, s3, bucket)
    check_belongs(source.deployment, stack, project, source.where)
    current = current_state(stack, ops, bucket, project)
    out(f"restore {stack} from {source.where}")
    if current.deployment is None:
        out(f"current state: unreadable ({current.problem}); every resource below is shown as added")
    else:
        out(f"current state: {current.where}")
    diff = diff_states(current.deployment, source.deployment)
    out(diff_table(diff))
    pending = pending_operations(source.deployment)
    if pending:
        # pkg/cmd/pulumi/stack/io.go SaveSnapshot clears every pending operation of an imported state, creates included.
        out(f"the restored state has {len(pending)} pending operation(s) (an interrupted update): {'; '.join(p.describe() for p in pending)}; "
            "`pulumi stack import` drops them: run `pulumi refresh` after the import")
        creates = [p for p in pending if p.kind == CREATING]
        if creates:
            out(f"{len(creates)} pending create(s) may exist in AWS unknown to the stack after the import: look for "
                f"{', '.join(f'{c.type} {c.name!r}' for c in creates)} and `pulumi import` what exists, or the next `up` creates it again")
    if current.deployment is not None and diff.empty:
        out("the restored state equals the current one: nothing to import")
        return 0
    if not args.yes:
        out("dry run: nothing was imported; rerun with --yes to import")
        return 0

    if current.deployment is not None and current.where == "pulumi stack export":
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        # A state holds every output (secret ones encrypted, the rest in clear): stored like the runner's exports.
        key = getattr(args, "exports_kms_key", None) or f"alias/{config.key_alias}"
        saved = ReportStore(args.report_to, s3, key).put_json(f"restores/{stamp}-{stack}/before.json", current.deployment)
        out(f"the state being replaced is saved at {saved}")
    if current.version_id:
        out(f"the state being replaced stays in the bucket: undo with --from version:{current.version_id}")
    stack_ops = ops()
    stack_ops.import_state(stack, source.deployment)
    after = {r["urn"] for r in resources(stack_ops.export(stack))}
    wanted = {r["urn"] for r in resources(source.deployment)}
    if after != wanted:
        out(f"imported, but the stack now lists {len(after)} resources, not the {len(wanted)} restored ones: check `pulumi stack export -s {stack}`")
        return 1
    out(f"imported: the stack lists the same {len(wanted)} resources as the restored state")
    out(f"next: `pulumi refresh -s {stack}` to compare the restored state with the cloud, then `pulumi up -s {stack}` (or let the runner)")
    return 0
