"""Rules that exist twice, checked against each other: the CloudFront function (JavaScript) and its
Python mirror used by the local adapter; the console's form checks (JavaScript) and the API's own
validation (Python). The JavaScript runs in Node when Node is installed; skipped otherwise."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from components.console import CONSOLE_DIR, VIEWER_REQUEST_FUNCTION, spa_target
from dropzone_partners.partners import cidr_problem, name_problem, tag_value_problem

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed; the JavaScript side is not run")

URIS = [
    "/", "/partners", "/partners/", "/upload", "/sftp", "/callback", "/index.html", "/app.js", "/styles.css",
    "/config.json", "/favicon.svg", "/deep/link/page", "/a.b/c", "/api", "/api/", "/api/partners",
    "/api/partners/acme/rotate", "/apiary", "/api.js",
]


def run_node(script: str, tmp_path: Path, *files: tuple[str, Path]) -> object:
    for name, source in files:
        shutil.copy(source, tmp_path / name)
    runner = tmp_path / "runner.mjs"
    runner.write_text(script)
    result = subprocess.run([NODE, str(runner)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def expected_viewer_request(uri: str) -> str:
    if uri == "/api" or uri.startswith("/api/"):
        return uri[len("/api"):] or "/"
    return spa_target(uri)


@needs_node
def test_the_cloudfront_function_and_the_local_mirror_route_every_path_alike(tmp_path):
    script = (
        "import { createRequire } from 'module';\n"
        "const { handler } = createRequire(import.meta.url)('./viewer_request.cjs');\n"
        f"const uris = {json.dumps(URIS)};\n"
        "console.log(JSON.stringify(uris.map((uri) => handler({ request: { uri } }).uri)));\n"
    )
    routed = run_node(script, tmp_path, ("viewer_request.cjs", VIEWER_REQUEST_FUNCTION))
    assert dict(zip(URIS, routed)) == {uri: expected_viewer_request(uri) for uri in URIS}
    assert routed[URIS.index("/api/partners/acme/rotate")] == "/partners/acme/rotate"
    assert routed[URIS.index("/upload")] == "/index.html"


def test_the_local_mirror_serves_pages_from_index_and_files_as_themselves():
    assert spa_target("/partners") == "/index.html"
    assert spa_target("/") == "/index.html"
    assert spa_target("/app.js") == "/app.js"


NAMES = ["acme", "acme-logistics", "a1", "9lives", "a", "-acme", "Acme", "acme_logistics", "acme logistics", "x" * 63, "x" * 64, ""]
CONTACTS = ["ops@acme.example", "Jane Doe +44 20 7946 0000", "José Núñez", "a/b=c:d", "ops<script>", "semi;colon", "", "x" * 256, "x" * 257]
CIDRS = [
    [], ["203.0.113.0/24"], ["10.0.0.0/8", "192.168.1.0/24"], ["203.0.113.7/24"], ["203.0.113.0/33"], ["300.0.0.0/8"],
    ["203.0.113.0"], ["203.0.113.9"], ["2001:db8::1"], ["not-a-cidr"], ["2001:db8::/32"], [f"10.{i}.0.0/16" for i in range(11)],
]


@needs_node
def test_the_console_form_accepts_and_refuses_what_the_api_does(tmp_path):
    script = (
        "import { nameProblem, contactProblem, cidrsProblem } from './validate.mjs';\n"
        f"const names = {json.dumps(NAMES)};\n"
        f"const contacts = {json.dumps(CONTACTS)};\n"
        f"const cidrs = {json.dumps(CIDRS)};\n"
        "console.log(JSON.stringify({\n"
        "  names: names.map((v) => nameProblem(v) === null),\n"
        "  contacts: contacts.map((v) => contactProblem(v) === null),\n"
        "  cidrs: cidrs.map((v) => cidrsProblem(v) === null),\n"
        "}));\n"
    )
    console = run_node(script, tmp_path, ("validate.mjs", CONSOLE_DIR / "validate.js"))
    api = {
        "names": [name_problem(v) is None for v in NAMES],
        "contacts": [tag_value_problem(v, "x") is None for v in CONTACTS],
        "cidrs": [cidr_problem(v) is None for v in CIDRS],
    }
    for field in api:
        disagreements = [
            (value, "console accepts" if ok else "console refuses")
            for value, ok, api_ok in zip({"names": NAMES, "contacts": CONTACTS, "cidrs": CIDRS}[field], console[field], api[field])
            if ok != api_ok
        ]
        assert disagreements == [], field
    assert any(api["names"]) and not all(api["names"])  # the cases exercise both outcomes
