"""The local adapter without a browser: the identity stand-in's PKCE rules, the test-identity
switch, the production headers and the SPA rule on every response."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from moto import mock_aws

from components.silo.console import security_headers
from offline.console_local import CLIENT_ID, ConsoleServer, IdentityStandIn, create_dropzone
from runner.demo import free_port

REDIRECT = "http://127.0.0.1:8080/callback"


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize_params(verifier: str = "v" * 50, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
        "state": "s1",
    }
    params.update(overrides)
    return params


@pytest.fixture
def identity() -> IdentityStandIn:
    return IdentityStandIn(CLIENT_ID, REDIRECT, "http://127.0.0.1:8080/", "http://127.0.0.1:8080")


def exchange(identity: IdentityStandIn, code: str, verifier: str = "v" * 50, **overrides: str):
    form = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    form.update(overrides)
    return identity.exchange(form)


def test_a_code_with_the_right_verifier_gives_a_token_the_stand_in_verifies_once(identity):
    code = identity.new_code(authorize_params(), "alice", ["admin"])
    status, tokens = exchange(identity, code)
    assert status == 200
    claims = identity.verify(tokens["id_token"])
    assert (claims["cognito:username"], claims["cognito:groups"], claims["aud"]) == ("alice", ["admin"], CLIENT_ID)
    assert exchange(identity, code) == (400, {"error": "invalid_grant"})  # codes are single use


def test_a_wrong_verifier_or_redirect_gets_no_token(identity):
    code = identity.new_code(authorize_params(), "alice", ["admin"])
    assert exchange(identity, code, verifier="w" * 50)[0] == 400
    code = identity.new_code(authorize_params(), "alice", ["admin"])
    assert exchange(identity, code, redirect_uri="http://127.0.0.1:9999/callback")[0] == 400


def test_authorize_requests_must_use_the_registered_client_redirect_and_s256(identity):
    assert identity.authorize_problem(authorize_params()) is None
    assert "redirect_uri" in identity.authorize_problem(authorize_params(redirect_uri="https://evil.example/callback"))
    assert "client_id" in identity.authorize_problem(authorize_params(client_id="other"))
    assert "S256" in identity.authorize_problem(authorize_params(code_challenge_method="plain"))


def test_a_tampered_token_is_refused(identity):
    token = identity.issue("bob", ["member"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["cognito:groups"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert identity.verify(token) is not None
    assert identity.verify(f"{header}.{forged}.{signature}") is None


@pytest.fixture
def servers(monkeypatch) -> Iterator[dict[bool, ConsoleServer]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        started = {}
        for test_identity in (True, False):
            port = free_port()
            dropzone = create_dropzone(None, f"http://127.0.0.1:{port}", silo="sales" if test_identity else "hr")
            started[test_identity] = ConsoleServer(dropzone, test_identity=test_identity, port=port).start()
        try:
            yield started
        finally:
            for server in started.values():
                server.stop()


def get(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_only_a_server_started_in_test_mode_accepts_stand_in_tokens(servers):
    for test_identity, server in servers.items():
        token = server.identity.issue("alice", ["admin"])
        status, _, body = get(f"{server.origin}/api/partners", token)
        if test_identity:
            assert (status, json.loads(body)) == (200, {"partners": []})
        else:
            assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
        assert get(f"{server.origin}/api/partners")[0] == 401


def test_pages_get_index_html_and_every_response_the_production_headers(servers):
    server = servers[True]
    expected = security_headers(server.identity.origin, server.dropzone.upload_origins())
    # What production sends, written out (the CloudFront policy's values, tests/console/test_console_infra.py).
    assert {k: v for k, v in expected.items() if k != "Content-Security-Policy"} == {
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains; preload",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    csp = dict(d.split(" ", 1) for d in expected["Content-Security-Policy"].split("; "))
    assert (csp["default-src"], csp["script-src"], csp["frame-ancestors"]) == ("'none'", "'self'", "'none'")
    assert csp["connect-src"].split() == ["'self'", server.identity.origin, *server.dropzone.upload_origins()]
    index = get(f"{server.origin}/")[2]
    for path in ("/partners", "/upload", "/callback", "/config.json", "/app.js"):
        status, headers, body = get(f"{server.origin}{path}")
        assert status == 200, path
        assert {k: headers[k] for k in expected} == expected, path
        if "." not in path:
            assert body == index, path
    assert get(f"{server.origin}/missing.js")[0] == 404
    assert get(f"{server.origin}/../components/silo/console.py")[0] == 404
