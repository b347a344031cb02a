"""`moto_server` with one gap closed: S3 CORS headers on browser form uploads (POST Object).

Real S3 answers a cross-origin `POST` to a bucket with the `Access-Control-Allow-Origin` of the
bucket's matching CORS rule; moto 5.2 evaluates the rules for preflights and for GET/PUT/HEAD but
not for POST, so a browser would see every presigned-POST upload fail. This wrapper adds the same
headers moto already computes for the other methods, and nothing else, so the console's
end-to-end test still depends on the bucket's CORS rule being right.

    python -m offline.moto_s3_cors -H 127.0.0.1 -p 5000     # same arguments as moto_server
"""

from __future__ import annotations

from typing import Any

from moto.s3.responses import S3Response

_bucket_response_post = S3Response._bucket_response_post


def _bucket_response_post_with_cors(self: S3Response, request: Any, bucket_name: str) -> Any:
    status, headers, body = _bucket_response_post(self, request, bucket_name)
    return status, {**self._get_cors_headers_other(), **headers}, body


S3Response._bucket_response_post = _bucket_response_post_with_cors  # type: ignore[method-assign]


if __name__ == "__main__":
    from moto.server import main

    main()
