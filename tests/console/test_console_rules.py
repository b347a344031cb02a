"""Rules that exist twice, checked against each other: the CloudFront function (JavaScript) and its
Python mirror used by the local adapter; the console's form checks (JavaScript) and the API's own
validation (Python). The JavaScript runs in Node when Node is installed; skipped otherwise."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from components.silo.console import CONSOLE_DIR, VIEWER_REQUEST_FUNCTION, spa_target
from credential_vending.api import groups_of, upload_key_problem
from dropzone_partners.partners import RESERVED_NAMES, STAFF_PREFIX, cidr_problem, new_name_problem, tag_value_problem

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


NAMES = ["acme", "acme-logistics", "a1", "9lives", "a", "-acme", "Acme", "acme_logistics", "acme logistics", "x" * 63, "x" * 64, "",
         "acme\n", "internal", "staff", "internal-audit", "_staff"]
CONTACTS = ["ops@acme.example", "Jane Doe +44 20 7946 0000", "José Núñez", "a/b=c:d", "ops<script>", "semi;colon", "", "x" * 256, "x" * 257,
            "ops\n", "a\tb", "x\u0085y", "x\u001cy", "x\u2028y", "Jose\u0301", "東京 オフィス", "x\u00a0y"]
CIDRS = [
    [], ["203.0.113.0/24"], ["10.0.0.0/8", "192.168.1.0/24"], ["203.0.113.7/24"], ["203.0.113.0/33"], ["300.0.0.0/8"],
    ["203.0.113.0"], ["203.0.113.9"], ["2001:db8::1"], ["not-a-cidr"], ["2001:db8::/32"], [f"10.{i}.0.0/16" for i in range(11)],
    ["fe80::%eth0/64"], ["10.0.0.0/255.0.0.0"],
]
UPLOAD_KEYS = ["orders.csv", "2026/11/orders.csv", "${filename}", "a$b.csv", "a/./b", "a/../b", "a//b", "ok\u0085.csv",
               "é" * 504, "é" * 505, "x" * 1008, "x" * 1009, "tab\there"]


@needs_node
def test_the_console_form_accepts_and_refuses_what_the_api_does(tmp_path):
    script = (
        "import { nameProblem, contactProblem, cidrsProblem, keyProblem, RESERVED_NAMES, STAFF_PREFIX } from './validate.mjs';\n"
        f"const names = {json.dumps(NAMES)};\n"
        f"const contacts = {json.dumps(CONTACTS)};\n"
        f"const cidrs = {json.dumps(CIDRS)};\n"
        f"const keys = {json.dumps(UPLOAD_KEYS)};\n"
        "console.log(JSON.stringify({\n"
        "  names: names.map((v) => nameProblem(v) === null),\n"
        "  contacts: contacts.map((v) => contactProblem(v) === null),\n"
        "  cidrs: cidrs.map((v) => cidrsProblem(v) === null),\n"
        "  keys: keys.map((v) => keyProblem(v) === null),\n"
        "  reserved: RESERVED_NAMES, staffPrefix: STAFF_PREFIX,\n"
        "}));\n"
    )
    console = run_node(script, tmp_path, ("validate.mjs", CONSOLE_DIR / "validate.js"))
    cases = {"names": NAMES, "contacts": CONTACTS, "cidrs": CIDRS, "keys": UPLOAD_KEYS}
    api = {
        "names": [new_name_problem(v) is None for v in NAMES],
        "contacts": [tag_value_problem(v, "x") is None for v in CONTACTS],
        "cidrs": [cidr_problem(v) is None for v in CIDRS],
        "keys": [upload_key_problem(v) is None for v in UPLOAD_KEYS],
    }
    for field in api:
        disagreements = [
            (value, "console accepts" if ok else "console refuses")
            for value, ok, api_ok in zip(cases[field], console[field], api[field])
            if ok != api_ok
        ]
        assert disagreements == [], field
        assert any(api[field]) and not all(api[field]), field  # the cases exercise both outcomes
    # The one list of reserved names and the staff prefix, in both languages.
    assert (tuple(console["reserved"]), console["staffPrefix"]) == (RESERVED_NAMES, STAFF_PREFIX)


GROUP_CLAIMS = ["admin", "member,admin", ["member", "admin"], "[admin]", "[member admin]", "ops admin", ["ops,admin"],
                ["[admin]"], ["admin "], "ops,,admin", 7, None, [7, "member"]]


@needs_node
def test_the_console_reads_group_claims_as_the_api_does(tmp_path):
    script = (
        "import { groupsOf } from './signin.mjs';\n"
        f"const claims = {json.dumps(GROUP_CLAIMS)};\n"
        "console.log(JSON.stringify(claims.map((value) => groupsOf({ 'cognito:groups': value }))));\n"
    )
    console = run_node(script, tmp_path, ("signin.mjs", CONSOLE_DIR / "signin.js"))
    assert console == [groups_of(claim) for claim in GROUP_CLAIMS]
    assert console[GROUP_CLAIMS.index("[admin]")] == []


@needs_node
def test_a_sign_in_callback_is_checked_by_state_first_and_shows_a_fixed_message(tmp_path):
    cases = {
        "matching": ("?code=c1&state=s1", {"state": "s1"}),
        "error with a crafted description, no state": ("?error=access_denied&error_description=Call+%2B1-900+now", {"state": "s1"}),
        "error with a crafted description, wrong state": ("?error=x&error_description=Phish&state=s2", {"state": "s1"}),
        "error with the right state": ("?error=access_denied&error_description=Phish&state=s1", {"state": "s1"}),
        "code with the wrong state": ("?code=c1&state=s2", {"state": "s1"}),
        "no sign-in pending": ("?code=c1&state=s1", None),
        "right state, no code": ("?state=s1", {"state": "s1"}),
    }
    script = (
        "import { callbackProblem, SIGNIN_FAILED } from './signin.mjs';\n"
        f"const cases = {json.dumps(cases)};\n"
        "const out = {};\n"
        "for (const [name, [search, pending]] of Object.entries(cases)) out[name] = callbackProblem(new URLSearchParams(search), pending);\n"
        "console.log(JSON.stringify({ out, fixed: SIGNIN_FAILED }));\n"
    )
    result = run_node(script, tmp_path, ("signin.mjs", CONSOLE_DIR / "signin.js"))
    fixed = result["fixed"]
    assert result["out"] == {name: None if name == "matching" else fixed for name in cases}
    assert "Phish" not in fixed and "900" not in fixed


@needs_node
def test_one_malformed_date_does_not_empty_the_partner_list(tmp_path):
    script = (
        "import { formatDate, daysUntil, renderEach, UNREADABLE } from './format.mjs';\n"
        "const partners = [{ name: 'acme', expires: '2026-12-25T12:00:00Z' }, { name: 'bad', expires: 'not-a-date' },\n"
        "                  { name: 'globex', expires: '2027-01-01T00:00:00Z' }];\n"
        "const rows = renderEach(partners, (p) => { if (daysUntil(p.expires, Date.parse('2026-11-25T12:00:00Z')) === null) "
        "throw new Error('bad date'); return `${p.name} ${formatDate(p.expires)}`; }, (p) => `${p.name} could not be shown`);\n"
        "console.log(JSON.stringify({ rows, bad: formatDate('not-a-date'), none: formatDate(null), good: formatDate('2026-11-25T12:00:00Z'),\n"
        "  days: daysUntil('2026-11-27T12:00:00Z', Date.parse('2026-11-25T12:00:00Z')), unreadable: UNREADABLE }));\n"
    )
    result = run_node(script, tmp_path, ("format.mjs", CONSOLE_DIR / "format.js"))
    assert result["rows"] == ["acme 2026-12-25 12:00 UTC", "bad could not be shown", "globex 2027-01-01 00:00 UTC"]
    assert (result["bad"], result["none"], result["good"], result["days"]) == (result["unreadable"], "—", "2026-11-25 12:00 UTC", 2)


def test_the_app_uses_the_tested_helpers_and_never_shows_the_callbacks_own_text():
    app = (CONSOLE_DIR / "app.js").read_text()
    assert "error_description') ||" not in app and "params.get('error_description')" not in app
    assert "callbackProblem(params, pending)" in app
    assert "renderEach(partners, partnerRow, brokenRow)" in app
    assert "function formatDate" not in app and "function groupsOf" not in app  # one copy, the tested one
    assert "dropzone/internal" not in app
