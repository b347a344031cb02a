"""The runner's ledger: one small JSON document per stack, owned by the runner.

Each entry records what the runner last did to a stack and the *fingerprint* of the desired state it
deployed (program bundle, rendered stack config, Pulumi CLI and provider plugin versions). A stack
whose fingerprint still matches, whose last `up` succeeded and whose last drift check (if any) was
clean has nothing to do, so `apply` can skip it without starting the CLI.

Safety rule: anything unusual about an entry means "not skipped". A missing entry, a document that
does not parse, an entry of another version, or one whose embedded digest does not match its content
(truncated, hand-edited) reads as `None`, and the stack is deployed as if the runner had never seen it.

Where it lives: a local directory (tests, the demo) or `s3://bucket/prefix` (the master's state
bucket, `<prefix>/<stack>.json`). A single S3 `PutObject` replaces an object atomically; locally a
temporary file is renamed over the entry. Listing the ledger is one paginated `ListObjectsV2` plus a
parallel `GetObject` per entry: no Pulumi CLI call per stack.
"""

from __future__ import annotations

import hashlib
import json
import fcntl
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from botocore.exceptions import ClientError

from components.shared.errors import RunnerError, UsageError

log = logging.getLogger(__name__)

LEDGER_VERSION = 1
UPDATE_ATTEMPTS = 8
"""Conditional writes of one entry before `update` gives up (each lost only to another writer's success)."""
UNCONDITIONAL: Any = object()
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey")
SUCCEEDED = "succeeded"
# What makes up a program bundle: the files `pulumi up` runs (the runner, tests and docs do not
# change what a stack deploys, so they do not invalidate every fingerprint).
BUNDLE_PATHS = ("__main__.py", "program.py", "Pulumi.yaml", "requirements.txt", "requirements-runtime.txt", "components", "functions")
_IGNORED_PARTS = frozenset({"__pycache__", ".pytest_cache", "node_modules"})


GRACE_STARTED = "grace_started"
"""Key of `LedgerEntry.extra`: when a leaving silo's grace period began (runner/lifecycle.py)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _canonical(document: Any) -> bytes:
    """JSON with sorted keys and no whitespace: the same data always gives the same bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def content_digest(document: Any) -> str:
    """`sha256:<hex>` of a JSON document's canonical form (mapping order does not matter)."""
    return "sha256:" + hashlib.sha256(_canonical(document)).hexdigest()


def fingerprint(*, bundle: str, config: Mapping[str, Any], cli_version: str, plugins: Mapping[str, str]) -> str:
    """The desired state of one stack as a `sha256:<hex>` digest.

    `config` is the rendered stack config (template plus per-silo settings); mapping order does not
    matter, list order does (lists are ordered data, e.g. dataset columns). `plugins` maps a provider
    plugin name to its version.
    """
    return content_digest({"bundle": bundle, "config": dict(config), "cli": cli_version, "plugins": dict(plugins)})


def bundle_digest(root: Path, paths: Iterable[str] = BUNDLE_PATHS) -> str:
    """A content hash of the program files under `root` (relative paths and bytes, in sorted order)."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for relative in paths:
        path = root / relative
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file() and not (_IGNORED_PARTS & set(p.parts)) and p.suffix != ".pyc")
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        name = path.relative_to(root).as_posix().encode()
        content = path.read_bytes()
        digest.update(len(name).to_bytes(4, "big") + name + len(content).to_bytes(8, "big") + content)
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class DriftCheck:
    """The last drift check of a stack."""

    checked_at: str
    clean: bool


@dataclass(frozen=True)
class LedgerEntry:
    """What the runner knows about one stack."""

    stack: str
    account_id: str
    silo_name: Optional[str] = None
    action: str = ""
    """The last operation the runner ran on the stack (`create`, `update`, `retire-destroy`, ...)."""
    result: str = ""
    """How it ended (`succeeded`, `failed`)."""
    fingerprint: str = ""
    """The desired state the last *successful* deployment applied ('' before the first)."""
    deployed_at: str = ""
    """When the stack last reached `fingerprint`."""
    updated_at: str = ""
    drift: Optional[DriftCheck] = None
    opted_out: Optional[bool] = None
    """The account's opt-out tag as last read (None: never read); discovery reuses it between sweeps."""
    tags_read_at: str = ""
    """When the account's tags were last read."""
    tag_profile: str = ""
    """The account's profile tag as last read ('' none): which silo profile its config uses."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for other runner features (retained resources, grace periods), kept across writes."""

    def skip_reason(self, wanted: str) -> str:
        """Why the stack can be skipped for desired state `wanted`, or '' when it must run."""
        if not wanted or self.result != SUCCEEDED or self.fingerprint != wanted:
            return ""
        if self.drift is not None and not self.drift.clean:
            return ""
        return f"unchanged (since {self.deployed_at or self.updated_at})"

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["version"] = LEDGER_VERSION
        body["digest"] = content_digest(asdict(self))
        return body

    @classmethod
    def from_json(cls, document: Any) -> Optional["LedgerEntry"]:
        """The entry, or None when the document is not a well-formed entry of this version."""
        if not isinstance(document, dict) or document.get("version") != LEDGER_VERSION:
            return None
        body = {key: value for key, value in document.items() if key not in ("version", "digest")}
        if content_digest(body) != document.get("digest"):
            return None
        names = {f.name for f in fields(cls)}
        if set(body) - names or not isinstance(body.get("stack"), str) or not isinstance(body.get("account_id"), str):
            return None
        drift = body.get("drift")
        try:
            if drift is not None:
                body["drift"] = DriftCheck(**drift)
            return cls(**body)
        except TypeError:
            return None


class Ledger:
    """Ledger entries under a local directory or an S3 prefix (`s3://bucket/prefix`).

    `kms_key_id` encrypts S3 entries with that key (the master key); `s3_client` is a factory of
    boto3 S3 clients (injectable for tests).
    """

    def __init__(self, location: str, *, s3_client: Optional[Callable[[], Any]] = None, kms_key_id: Optional[str] = None, readers: int = 16):
        self.location = location.rstrip("/")
        self.kms_key_id = kms_key_id
        self.readers = readers
        self._s3_factory = s3_client
        self._client: Any = None
        if self.location.startswith("s3://"):
            bucket, _, prefix = self.location[5:].partition("/")
            if not bucket:
                raise UsageError(f"ledger location {location!r} names no bucket; for example: s3://my-state-bucket/runner/ledger")
            self.bucket: Optional[str] = bucket
            self.prefix = f"{prefix}/" if prefix else ""
        else:
            self.bucket, self.prefix = None, ""

    def _s3(self) -> Any:
        if self._client is None:
            if self._s3_factory is None:
                import boto3

                self._s3_factory = lambda: boto3.client("s3")
            self._client = self._s3_factory()
        return self._client

    def _name(self, stack: str) -> str:
        if not stack or "/" in stack or stack.startswith("."):
            raise UsageError(f"ledger: {stack!r} is not a stack name")
        return f"{stack}.json"

    def get(self, stack: str) -> Optional[LedgerEntry]:
        """The stack's entry; None when missing or unreadable (never an exception for bad content)."""
        return self._read(stack)[0]

    def _read(self, stack: str) -> tuple[Optional[LedgerEntry], Optional[str]]:
        """The entry and the version it was read at (the S3 ETag; None when there is no object)."""
        version: Optional[str] = None
        try:
            if self.bucket:
                s3 = self._s3()
                try:
                    answer = s3.get_object(Bucket=self.bucket, Key=self.prefix + self._name(stack))
                except s3.exceptions.NoSuchKey:
                    return None, None
                version, raw = answer["ETag"], answer["Body"].read()
            else:
                path = Path(self.location) / self._name(stack)
                if not path.is_file():
                    return None, None
                raw = path.read_bytes()
            entry = LedgerEntry.from_json(json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            entry = None
        if entry is None or entry.stack != stack:
            log.warning("ledger entry of %s is unreadable or corrupt; the stack is not skipped", stack)
            return None, version
        return entry, version

    def update(self, stack: str, change: Callable[[Optional[LedgerEntry]], LedgerEntry]) -> LedgerEntry:
        """Read-modify-write of one entry that loses no concurrent write: `change` gets the entry as
        stored now and returns the new one (the same object: nothing is written).

        Two runs may record on one stack at once (a targeted run's tag verdict during a rollout's
        deployment record). In S3 the write is conditional on the version read (`If-Match`, or
        `If-None-Match: *` for a new entry) and is retried on a conflict; in a directory a lock
        file serialises writers.
        """
        if not self.bucket:
            directory = Path(self.location)
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / f".{self._name(stack)}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    current = self.get(stack)
                    changed = change(current)
                    return current if changed is current and current is not None else self.put(changed)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        for _ in range(UPDATE_ATTEMPTS):
            current, version = self._read(stack)
            changed = change(current)
            if changed is current and current is not None:
                return current  # nothing to record
            written = self._put(changed, if_match=version)
            if written is not None:
                return written
        raise RunnerError(f"ledger entry of {stack}: {UPDATE_ATTEMPTS} conditional writes in a row met another writer's change")

    def put(self, entry: LedgerEntry) -> LedgerEntry:
        """Writes the entry atomically, stamping `updated_at`; returns what was written.

        Unconditional: for a change of what is stored, `update` keeps concurrent writes."""
        written = self._put(entry)
        assert written is not None  # only a conditional write can be refused
        return written

    def _put(self, entry: LedgerEntry, *, if_match: Optional[str] = UNCONDITIONAL) -> Optional[LedgerEntry]:
        """Writes the entry; with `if_match` (an ETag, or None: no object yet) only if the stored
        object is still that one. None when the condition failed."""
        entry = replace(entry, updated_at=now_iso())
        body = json.dumps(entry.to_json(), indent=2, sort_keys=True).encode()
        name = self._name(entry.stack)
        if self.bucket:
            extra: dict[str, str] = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id} if self.kms_key_id else {}
            if if_match is not UNCONDITIONAL:
                extra.update({"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"})
            s3 = self._s3()
            try:
                s3.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=body, ContentType="application/json", **extra)
            except ClientError as exc:
                # 412: the object changed (or appeared) since it was read; 409: a concurrent conditional
                # write; NoSuchKey: it was deleted since. Each means: read again.
                if if_match is not UNCONDITIONAL and exc.response.get("Error", {}).get("Code") in CONFLICTS:
                    return None
                raise
            return entry
        directory = Path(self.location)
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, directory / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return entry

    def delete(self, stack: str) -> None:
        if self.bucket:
            self._s3().delete_object(Bucket=self.bucket, Key=self.prefix + self._name(stack))
        else:
            (Path(self.location) / self._name(stack)).unlink(missing_ok=True)

    def stacks(self) -> list[str]:
        """Names of the stacks with an entry (one listing; nothing is read)."""
        if self.bucket:
            paginator = self._s3().get_paginator("list_objects_v2")
            keys = [
                obj["Key"][len(self.prefix):]
                for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix)
                for obj in page.get("Contents", [])
            ]
        else:
            root = Path(self.location)
            keys = [p.name for p in root.iterdir() if p.is_file()] if root.is_dir() else []
        return sorted(k[: -len(".json")] for k in keys if k.endswith(".json") and "/" not in k and not k.startswith("."))

    def entries(self) -> dict[str, LedgerEntry]:
        """Every readable entry by stack name; unreadable ones are left out (so they are not skipped)."""
        names = self.stacks()
        with ThreadPoolExecutor(max_workers=max(1, min(self.readers, len(names) or 1)), thread_name_prefix="ledger") as pool:
            found = dict(zip(names, pool.map(self.get, names)))
        return {name: entry for name, entry in found.items() if entry is not None}

    def record_deployment(self, *, stack: str, account_id: str, silo_name: Optional[str], action: str, succeeded: bool,
                          wanted: str) -> LedgerEntry:
        """Records an `up` (create/update): a success stores `wanted` and clears the drift verdict."""

        def change(entry: Optional[LedgerEntry]) -> LedgerEntry:
            base = entry or LedgerEntry(stack=stack, account_id=account_id)
            if succeeded:
                return replace(base, silo_name=silo_name, action=action, result=SUCCEEDED, fingerprint=wanted,
                               deployed_at=now_iso(), drift=None)
            # A failed `up` may have changed part of the stack: what it runs now is unknown.
            return replace(base, silo_name=silo_name or base.silo_name, action=action, result="failed", fingerprint="")

        return self.update(stack, change)

    def record_drift(self, *, stack: str, account_id: str, clean: bool) -> LedgerEntry:
        """Records a drift check; a drifted stack loses its skip until an `up` succeeds again."""
        return self.update(stack, lambda entry: replace(entry or LedgerEntry(stack=stack, account_id=account_id),
                                                        drift=DriftCheck(checked_at=now_iso(), clean=clean)))

    def record_tags(self, *, stack: str, account_id: str, opted_out: bool, profile: str = "") -> LedgerEntry:
        """Records the account's tags as just read: opt-out and profile (an entry may exist before its stack does)."""
        return self.update(stack, lambda entry: replace(entry or LedgerEntry(stack=stack, account_id=account_id),
                                                        opted_out=opted_out, tag_profile=profile, tags_read_at=now_iso()))
