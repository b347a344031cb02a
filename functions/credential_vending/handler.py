"""Lambda entry point of the credential-vending API: API Gateway proxy events in, `api.dispatch` out.

Clients are built once per Lambda instance from the environment (see `api.Settings.from_env`);
tests and local adapters build `CredentialVendingApi` themselves with their own clients.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Optional

import boto3

from .api import CredentialVendingApi, Response, Settings
from .audit import AuditLog

_API: Optional[CredentialVendingApi] = None


def build_api(
    env: Optional[dict[str, str]] = None, session: Any = None, endpoint_url: Optional[str] = None
) -> CredentialVendingApi:
    """The API over real clients of `session` (default: the Lambda's credentials).

    `endpoint_url` sends every client to one endpoint instead of AWS, e.g. a `moto_server` when a
    local HTTP adapter serves the API in an end-to-end test.
    """
    env = dict(os.environ if env is None else env)
    session = session or boto3.session.Session()
    settings = Settings.from_env(env)
    region = settings.dropzone.region

    def client(service: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url)

    audit = AuditLog(client("logs"), settings.audit_log_group, source="api")
    return CredentialVendingApi(settings, iam=client("iam"), sts=client("sts"), s3=client("s3"), audit=audit)


def request_of(event: dict[str, Any]) -> tuple[str, str, Optional[str], Optional[dict[str, Any]], Optional[str]]:
    """(method, path, body, claims, request id) of an API Gateway REST proxy event.

    The path is rebuilt from the resource template and its parameters, so stage names and custom
    domain base paths never reach the routing.
    """
    context = event.get("requestContext") or {}
    path = event.get("resource") or event.get("path") or "/"
    for key, value in (event.get("pathParameters") or {}).items():
        path = path.replace("{" + key + "}", value)
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    claims = (context.get("authorizer") or {}).get("claims")
    return event.get("httpMethod", "GET"), path, body, claims, context.get("requestId")


def proxy_response(response: Response) -> dict[str, Any]:
    """A `Response` as the proxy integration expects it."""
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "body": "" if response.body is None else json.dumps(response.body),
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway (REST, Lambda proxy, Cognito user-pool authorizer) entry point."""
    global _API
    if _API is None:
        _API = build_api()
    method, path, body, claims, request_id = request_of(event)
    return proxy_response(_API.dispatch(method, path, body, claims, request_id))
