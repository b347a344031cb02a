"""The dropzone console on 127.0.0.1: static files, the credential-vending API and moto_server.

What CloudFront does in the cloud, `ConsoleServer` does here: it serves `functions/console/` with
the production security headers (`components.silo.console.security_headers`) and SPA rule
(`spa_target`), generates `config.json`, and passes `/api/*` to `CredentialVendingApi.dispatch`
(the same handlers the Lambda runs) over boto3 clients pointed at a `moto_server`.

Sign-in needs Cognito, which moto_server cannot host for a browser. `IdentityStandIn` replaces the
hosted UI for tests only: it runs the same authorization-code + PKCE exchange on its own origin and
signs tokens with a random per-process HMAC key; `ConsoleServer` accepts those tokens only when it
is built with `test_identity=True` (the CLI needs `--test-identity`). The console app itself has no
test switch: it runs the production code path against whichever identity provider config names.

    python -m offline.console_local --test-identity      # then open the printed URL
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR / "functions") not in sys.path:  # the handlers import their sibling packages
    sys.path.insert(0, str(PROJECT_DIR / "functions"))

from components.silo.console import (  # noqa: E402
    API_PREFIX,
    CALLBACK_PATH,
    CONSOLE_DIR,
    GENERATED_CONFIG,
    console_config,
    content_type,
    security_headers,
    spa_target,
    upload_cors_rule,
    upload_origins,
)
from components.shared.iam import policy_document, trust_statement  # noqa: E402
from credential_vending.api import CredentialVendingApi  # noqa: E402
from runner.demo import moto_server as start_moto_server  # noqa: E402
from credential_vending.handler import build_api, proxy_response, request_of  # noqa: E402
from dropzone_partners.partners import Dropzone  # noqa: E402

REGION = "eu-west-1"
MOTO_ACCOUNT = "123456789012"
CLIENT_ID = "local-console-client"
TOKEN_SECONDS = 3600
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- moto_server ---------------------------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[str]:
    """Runs `moto_server` on 127.0.0.1 and yields its URL. Global CORS is off, so S3 answers
    browsers by the bucket's own CORS rules, as AWS does (`offline/moto_s3_cors.py` adds them to
    POST uploads, which moto leaves out)."""
    env = {
        **os.environ,
        "MOTO_DISABLE_GLOBAL_CORS": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")])),
    }
    with start_moto_server(30.0, server_args=("-m", "offline.moto_s3_cors"), env=env) as url:
        yield url


# -- the dropzone in moto --------------------------------------------------------------------------


@dataclass
class LocalDropzone:
    """One silo's dropzone created in moto: what the API needs, as the infrastructure would make it."""

    session: boto3.session.Session
    endpoint: Optional[str]
    """moto_server's URL, or None for in-process moto (`mock_aws`)."""
    dropzone: Dropzone
    env: dict[str, str]
    """The API Lambda's environment, as the `Dropzone` component sets it."""

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION, endpoint_url=self.endpoint)

    def upload_origins(self) -> list[str]:
        """Where the browser sends presigned POSTs: moto_server, or S3 itself (in-process moto)."""
        return [self.endpoint] if self.endpoint else upload_origins(self.dropzone.bucket, REGION)

    def api(self) -> CredentialVendingApi:
        """The API exactly as the Lambda builds it, with every client sent to moto."""
        return build_api(self.env, self.session, endpoint_url=self.endpoint)


def create_dropzone(
    endpoint: Optional[str], console_origin: str, *, silo: str = "sales", upload_max_bytes: int = 1024**3
) -> LocalDropzone:
    session = boto3.session.Session(region_name=REGION, **CREDENTIALS)
    client = lambda service: session.client(service, region_name=REGION, endpoint_url=endpoint)  # noqa: E731
    s3, kms, iam, logs = (client(name) for name in ("s3", "kms", "iam", "logs"))
    key_arn = kms.create_key(Description=f"silo {silo}")["KeyMetadata"]["Arn"]
    bucket = f"datalake-{silo}-dropzone-{MOTO_ACCOUNT}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_encryption(  # as SecureBucket sets it: SSE-KMS with the silo key
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, "BucketKeyEnabled": True}]
        },
    )
    rule = upload_cors_rule(console_origin)
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": rule["allowed_origins"],
                    "AllowedMethods": rule["allowed_methods"],
                    "AllowedHeaders": rule["allowed_headers"],
                    "ExposeHeaders": rule["expose_headers"],
                    "MaxAgeSeconds": rule["max_age_seconds"],
                }
            ]
        },
    )
    dropzone = Dropzone(silo=silo, bucket=bucket, key_arn=key_arn)
    boundary = iam.create_policy(
        PolicyName=f"{silo}-partner-boundary", PolicyDocument=json.dumps(dropzone.access_policy("boundary"))
    )["Policy"]["Arn"]
    trust = policy_document([trust_statement("AllowCredentialVendingApi", {"AWS": MOTO_ACCOUNT})])
    role = iam.create_role(RoleName=f"{silo}-partner-session", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    group = f"datalake/{silo}/audit"
    logs.create_log_group(logGroupName=group)
    env = {
        "SILO_NAME": silo,
        "DROPZONE_BUCKET": bucket,
        "KMS_KEY_ARN": key_arn,
        "PERMISSIONS_BOUNDARY_ARN": boundary,
        "SESSION_ROLE_ARN": role,
        "AUDIT_LOG_GROUP": group,
        "ALLOWED_ORIGIN": "",  # same origin behind CloudFront: no CORS on the API
        "UPLOAD_MAX_BYTES": str(upload_max_bytes),
    }
    return LocalDropzone(session=session, endpoint=endpoint, dropzone=dropzone, env=env)


# -- identity stand-in (tests only) ----------------------------------------------------------------


class IdentityStandIn:
    """A stand-in for Cognito's hosted UI and token endpoint, for local tests only.

    It enforces what Cognito enforces for a public client: the registered client id and redirect
    URI, S256 PKCE, single-use codes. Tokens are HMAC-signed with a key that lives only in this
    process; `verify` accepts nothing else.
    """

    def __init__(self, client_id: str, redirect_uri: str, logout_uri: str, console_origin: str):
        self.client_id, self.redirect_uri, self.logout_uri = client_id, redirect_uri, logout_uri
        self.console_origin = console_origin
        self._key = secrets.token_bytes(32)
        self._codes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.origin = ""  # set when its server starts

    def issue(self, username: str, groups: list[str]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.origin or "local-identity-stand-in",
            "aud": self.client_id,
            "token_use": "id",
            "sub": hashlib.sha256(username.encode()).hexdigest()[:32],
            "cognito:username": username,
            "cognito:groups": groups,
            "email": f"{username}@example.com",
            "iat": now,
            "exp": now + TOKEN_SECONDS,
        }
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps(claims).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def verify(self, token: str) -> Optional[dict[str, Any]]:
        """The claims of a token this stand-in issued and that has not expired, else None."""
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _b64url_decode(signature)):
                return None
            claims = json.loads(_b64url_decode(payload))
        except (ValueError, json.JSONDecodeError):
            return None
        if claims.get("aud") != self.client_id or claims.get("exp", 0) <= time.time():
            return None
        return claims

    def authorize_problem(self, params: dict[str, str]) -> Optional[str]:
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("client_id") != self.client_id:
            return "unknown client_id"
        if params.get("redirect_uri") != self.redirect_uri:
            return "redirect_uri is not registered for this client"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE with S256 is required"
        return None

    def new_code(self, params: dict[str, str], username: str, groups: list[str]) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "challenge": params["code_challenge"],
                "redirect_uri": params["redirect_uri"],
                "username": username,
                "groups": groups,
                "expires": time.time() + 300,
            }
        return code

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # single use, like Cognito
        if form.get("grant_type") != "authorization_code" or form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_client"}
        if grant is None or grant["expires"] < time.time() or form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if _b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        token = self.issue(grant["username"], grant["groups"])
        return 200, {"id_token": token, "access_token": token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS}


def _login_page(params: dict[str, str]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sign in (local test identity)</title></head>"
        "<body><h1>Local test identity</h1>"
        "<p>This page stands in for Cognito's hosted UI in local tests. It exists only in the local adapter.</p>"
        f"<form method='post' action='/login'>{hidden}"
        "<p><label>User name <input id='username' name='username' value='alice'></label></p>"
        "<p><label>Group <select id='group' name='group'><option value='admin'>admin</option><option value='member'>member</option>"
        "<option value=''>none</option></select></label></p>"
        "<p><button id='login' type='submit'>Sign in</button></p></form></body></html>"
    )


def _as_authorizer_claims(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as API Gateway's Cognito authorizer hands them to the Lambda: every value a string,
    groups comma-separated."""
    return {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in claims.items()}


# -- HTTP servers ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: tests read outcomes, not logs
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class ConsoleServer:
    """Serves the console and its API on 127.0.0.1, and the identity stand-in on a second port."""

    def __init__(self, dropzone: LocalDropzone, *, test_identity: bool, sftp_host: Optional[str] = None, port: int = 0):
        self.dropzone = dropzone
        self.api = dropzone.api()
        self.test_identity = test_identity
        self.sftp_host = sftp_host
        self.console = ThreadingHTTPServer(("127.0.0.1", port), self._console_handler())
        self.origin = f"http://127.0.0.1:{self.console.server_address[1]}"
        self.identity = IdentityStandIn(CLIENT_ID, f"{self.origin}{CALLBACK_PATH}", f"{self.origin}/", self.origin)
        self.identity_server = ThreadingHTTPServer(("127.0.0.1", 0), self._identity_handler())
        self.identity.origin = f"http://127.0.0.1:{self.identity_server.server_address[1]}"
        self.headers = security_headers(self.identity.origin, dropzone.upload_origins())
        self._threads: list[threading.Thread] = []

    def config(self) -> dict[str, Any]:
        return console_config(
            api_url=API_PREFIX,
            region=REGION,
            user_pool_id=f"{REGION}_local",
            client_id=CLIENT_ID,
            auth_origin=self.identity.origin,
            dropzone_bucket=self.dropzone.dropzone.bucket,
            silo_name=self.dropzone.dropzone.silo,
            sftp_host=self.sftp_host,
        )

    def start(self) -> "ConsoleServer":
        for server in (self.console, self.identity_server):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self.console, self.identity_server):
            server.shutdown()
            server.server_close()

    def claims_of(self, authorization: Optional[str]) -> Optional[dict[str, Any]]:
        """What API Gateway's Cognito authorizer would pass on: claims of a valid token, else None."""
        if not self.test_identity or not authorization:
            return None
        return self.identity.verify(authorization.removeprefix("Bearer ").strip())

    def _console_handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(_Handler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                    return self._api(path)
                if path == "/" + GENERATED_CONFIG:
                    body = json.dumps(outer.config()).encode()
                    return self._send(200, body, {**outer.headers, "Content-Type": "application/json", "Cache-Control": "no-cache"})
                target = (CONSOLE_DIR / spa_target(path).lstrip("/")).resolve()
                if CONSOLE_DIR not in target.parents or not target.is_file():
                    return self._send(404, b"not found", {**outer.headers, "Content-Type": "text/plain"})
                self._send(200, target.read_bytes(), {**outer.headers, "Content-Type": content_type(target), "Cache-Control": "no-cache"})

            do_HEAD = do_GET

            def do_POST(self) -> None:
                self._api(urlsplit(self.path).path)

            do_DELETE = do_POST
            do_OPTIONS = do_POST

            def _api(self, path: str) -> None:
                if not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
                    return self._send(405, b"", outer.headers)
                body = self._body().decode("utf-8", errors="replace") or None
                claims = outer.claims_of(self.headers.get("Authorization"))
                if claims is None and self.command != "OPTIONS":
                    # API Gateway's Cognito authorizer answers this before any Lambda runs.
                    payload = json.dumps({"message": "Unauthorized"}).encode()
                    return self._send(401, payload, {**outer.headers, "Content-Type": "application/json"})
                # The proxy event API Gateway would send (claims as strings, as its authorizer
                # passes them), through the Lambda's own adapter functions.
                event = {
                    "resource": path[len(API_PREFIX):] or "/",
                    "httpMethod": self.command,
                    "body": body,
                    "requestContext": {
                        "requestId": secrets.token_hex(8),
                        "authorizer": {"claims": _as_authorizer_claims(claims)} if claims else {},
                    },
                }
                answer = proxy_response(outer.api.dispatch(*request_of(event)))
                self._send(answer["statusCode"], answer["body"].encode(), {**outer.headers, **answer["headers"]})

        return Handler

    def _identity_handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self
        identity = self.identity
        page_headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": f"default-src 'none'; form-action 'self' {outer.origin}",
        }
        cors = {"Access-Control-Allow-Origin": outer.origin, "Vary": "Origin"}

        class Handler(_Handler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/oauth2/authorize":
                    problem = identity.authorize_problem(params)
                    if problem:
                        return self._send(400, html.escape(problem).encode(), page_headers)
                    return self._send(200, _login_page(params).encode(), page_headers)
                if parts.path == "/logout":
                    if params.get("client_id") != identity.client_id or params.get("logout_uri") != identity.logout_uri:
                        return self._send(400, b"logout_uri is not registered for this client", page_headers)
                    return self._send(302, b"", {"Location": identity.logout_uri})
                self._send(404, b"not found", page_headers)

            def do_OPTIONS(self) -> None:
                self._send(204, b"", {**cors, "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Content-Type"})

            def do_POST(self) -> None:
                form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
                path = urlsplit(self.path).path
                if path == "/login":
                    params = {k: v for k, v in form.items() if k not in ("username", "group")}
                    problem = identity.authorize_problem(params)
                    if problem or not form.get("username"):
                        return self._send(400, html.escape(problem or "user name required").encode(), page_headers)
                    groups = [form["group"]] if form.get("group") else []
                    code = identity.new_code(params, form["username"], groups)
                    query = urlencode({"code": code, **({"state": params["state"]} if "state" in params else {})})
                    return self._send(302, b"", {"Location": f"{params['redirect_uri']}?{query}"})
                if path == "/oauth2/token":
                    status, payload = identity.exchange(form)
                    return self._send(status, json.dumps(payload).encode(), {**cors, "Content-Type": "application/json"})
                self._send(404, b"not found", page_headers)

        return Handler


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-identity", action="store_true", help="sign in through the local identity stand-in (required)")
    parser.add_argument("--port", type=int, default=8080, help="port of the console (default 8080)")
    parser.add_argument("--sftp-host", default=None, help="SFTP host name to show on the SFTP page (default: SFTP off)")
    args = parser.parse_args(argv)
    if not args.test_identity:
        parser.error("the local console signs users in only through the test identity stand-in; pass --test-identity")
    with moto_server() as endpoint:
        origin = f"http://127.0.0.1:{args.port}"
        server = ConsoleServer(create_dropzone(endpoint, origin), test_identity=True, sftp_host=args.sftp_host, port=args.port).start()
        print(f"console: {server.origin}/  (moto_server: {endpoint}; Ctrl-C stops)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
