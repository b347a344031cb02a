"""An in-memory S3 client with a per-request latency, for `bench/fleet.py` (the ledger and the run reports).

It implements what `runner.ledger.Ledger` and `runner.report.ReportStore` call - `put_object`,
`get_object`, `delete_object`, `head_object` and the `list_objects_v2` paginator (1,000 keys a page,
as S3 returns) - with botocore's parameter validation, `NoSuchKey` for a missing key, ETags (the
quoted MD5 of a single-part object, as S3 answers) and conditional puts (`IfMatch`, `IfNoneMatch: *`:
412 `PreconditionFailed`).
moto would do the same far more slowly: the bench reads thousands of entries per run, and the CPU
time of a slow stand-in would be counted as simulated S3 time. `tests/test_fake_s3.py` holds it to
moto through the ledger.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator

_MODEL = botocore.session.get_session().get_service_model("s3")
LIST_PAGE = 1000


class _Body:
    def __init__(self, data: bytes):
        self._data = data

    def read(self) -> bytes:
        return self._data


class _Exceptions:
    class NoSuchKey(ClientError):
        pass


class _Paginator:
    def __init__(self, client: "FakeS3"):
        self.client = client

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            page = self.client.list_objects_v2(**params, **({"ContinuationToken": token} if token else {}))
            yield page
            token = page.get("NextContinuationToken", "")
            if not token:
                return


class FakeS3:
    """`FakeS3(latency=0.02, sleep=...)`: objects in a dict, every request `latency` seconds."""

    exceptions = _Exceptions

    def __init__(self, *, latency: float = 0.0, sleep: Callable[[float], None] = time.sleep):
        self.latency = latency
        self.sleep = sleep
        self.objects: dict[tuple[str, str], tuple[bytes, dict[str, Any]]] = {}
        self.requests = 0
        self._lock = threading.Lock()
        self._validator = ParamValidator()

    def _enter(self, operation: str, params: dict[str, Any]) -> None:
        report = self._validator.validate(params, _MODEL.operation_model(operation).input_shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())
        with self._lock:
            self.requests += 1
        if self.latency:
            self.sleep(self.latency)

    def _missing(self, operation: str, key: str) -> ClientError:
        return _Exceptions.NoSuchKey({"Error": {"Code": "NoSuchKey", "Message": f"The specified key does not exist: {key}"}}, operation)

    def put_object(self, **params: Any) -> dict[str, Any]:
        self._enter("PutObject", params)
        body = params["Body"]
        data = body.encode() if isinstance(body, str) else bytes(body)
        meta = {k: v for k, v in params.items() if k in ("ServerSideEncryption", "SSEKMSKeyId", "ContentType")}
        meta["ETag"] = f'"{hashlib.md5(data).hexdigest()}"'
        where = (params["Bucket"], params["Key"])
        with self._lock:
            stored = self.objects.get(where)
            if "IfMatch" in params and stored is None:
                raise self._missing("PutObject", params["Key"])
            if ("IfNoneMatch" in params and stored is not None) or (
                "IfMatch" in params and stored[1]["ETag"].strip('"') != params["IfMatch"].strip('"')
            ):
                raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions you specified did not hold"}}, "PutObject")
            self.objects[where] = (data, meta)
        return {"ETag": meta["ETag"]}

    def get_object(self, **params: Any) -> dict[str, Any]:
        self._enter("GetObject", params)
        with self._lock:
            found = self.objects.get((params["Bucket"], params["Key"]))
        if found is None:
            raise self._missing("GetObject", params["Key"])
        return {"Body": _Body(found[0]), **found[1]}

    def head_object(self, **params: Any) -> dict[str, Any]:
        self._enter("HeadObject", params)
        with self._lock:
            found = self.objects.get((params["Bucket"], params["Key"]))
        if found is None:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        return {"ContentLength": len(found[0]), **found[1]}

    def delete_object(self, **params: Any) -> dict[str, Any]:
        self._enter("DeleteObject", params)
        with self._lock:
            self.objects.pop((params["Bucket"], params["Key"]), None)
        return {}

    def list_objects_v2(self, **params: Any) -> dict[str, Any]:
        self._enter("ListObjectsV2", params)
        prefix = params.get("Prefix", "")
        with self._lock:
            keys = sorted(key for bucket, key in self.objects if bucket == params["Bucket"] and key.startswith(prefix))
        start = int(params.get("ContinuationToken") or 0)
        page = keys[start:start + LIST_PAGE]
        more = start + LIST_PAGE < len(keys)
        return {
            "Contents": [{"Key": key, "Size": len(self.objects[(params["Bucket"], key)][0])} for key in page],
            "KeyCount": len(page),
            "IsTruncated": more,
            **({"NextContinuationToken": str(start + LIST_PAGE)} if more else {}),
        }

    def get_paginator(self, name: str) -> _Paginator:
        if name != "list_objects_v2":
            raise NotImplementedError(f"FakeS3 paginates list_objects_v2 only, not {name}")
        return _Paginator(self)
