"""What recovery reads and writes beside the state: the backend's objects (a directory or an S3 bucket),
their layout, and the time helpers of markers and locks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Protocol

RUNS_PREFIX = "runner-runs/"
LOCKS_PREFIX = ".pulumi/locks/"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(value: Any) -> Optional[datetime]:
    """An RFC 3339 time (Go's `time.Time` JSON, nanoseconds and offsets allowed) in UTC; None if unreadable."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"





@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: datetime


class BackendObjects(Protocol):
    """The objects of a DIY backend, keyed as the CLI keys them (`.pulumi/...`), relative to its root."""

    def list(self, prefix: str, *, shallow: bool = False) -> list[StoredObject]:
        """Objects whose key starts with `prefix`; `shallow`: none below a further `/`."""

    def read(self, key: str) -> Optional[bytes]:
        """The object's content; None when it does not exist."""

    def write(self, key: str, body: bytes) -> None: ...

    def delete(self, key: str) -> None: ...

    def where(self, key: str) -> str:
        """The object's address for messages (`s3://bucket/key`, a path)."""


class DirectoryObjects:
    """A `file://<dir>` backend."""

    def __init__(self, root: Path):
        self.root = root

    def list(self, prefix: str, *, shallow: bool = False) -> list[StoredObject]:
        base = self.root / prefix.rstrip("/")
        if not base.is_dir():
            return []
        found = []
        for path in sorted(base.iterdir() if shallow else base.rglob("*")):
            if path.is_file():
                key = path.relative_to(self.root).as_posix()
                found.append(StoredObject(key, datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)))
        return found

    def read(self, key: str) -> Optional[bytes]:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def write(self, key: str, body: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(body)
        partial.replace(path)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def where(self, key: str) -> str:
        return str(self.root / key)


class S3Objects:
    """An `s3://bucket[/prefix]` backend (the CLI prefixes every key with the URL's path)."""

    def __init__(self, bucket: str, prefix: str, s3_client: Callable[[], Any]):
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._factory = s3_client
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def list(self, prefix: str, *, shallow: bool = False) -> list[StoredObject]:
        paginator = self._s3().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix, **({"Delimiter": "/"} if shallow else {}))
        return [
            StoredObject(item["Key"][len(self.prefix):], item["LastModified"].astimezone(timezone.utc))
            for page in pages
            for item in page.get("Contents", [])
        ]

    def read(self, key: str) -> Optional[bytes]:
        s3 = self._s3()
        try:
            return s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None

    def write(self, key: str, body: bytes) -> None:
        # No encryption headers: the state bucket's default (SSE-KMS with the state key) applies, and
        # its policy refuses an upload asking for another key.
        self._s3().put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body, ContentType="application/json")

    def delete(self, key: str) -> None:
        self._s3().delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


def backend_objects(backend_url: Optional[str], s3_client: Callable[[], Any]) -> Optional[BackendObjects]:
    """The objects behind a DIY backend URL (`file://<dir>`, `s3://bucket[/prefix][?region=...]`); None for others."""
    if not backend_url:
        return None
    address = backend_url.split("?", 1)[0]
    if address.startswith("file://"):
        return DirectoryObjects(Path(address[len("file://"):]))
    if address.startswith("s3://"):
        bucket, _, prefix = address[len("s3://"):].partition("/")
        return S3Objects(bucket, prefix, s3_client) if bucket else None
    return None
