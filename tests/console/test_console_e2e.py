"""The dropzone console end to end in headless Chromium.

The built console is served on 127.0.0.1 by `offline.console_local.ConsoleServer` with the
production security headers; `/api/*` runs the credential-vending handlers against `moto_server`;
sign-in goes through the identity stand-in with the real authorization-code + PKCE code of the app.
Screenshots of every page land in `out/console-e2e/`.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); skipped with the reason
when they are absent.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from offline.console_local import REGION, ConsoleServer, LocalDropzone, create_dropzone, moto_server
from runner.demo import free_port

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
OUT = Path(__file__).resolve().parents[2] / "out" / "console-e2e"
SFTP_HOST = "s-0123456789abcdef0.server.transfer.eu-west-1.amazonaws.com"
UPLOAD_MAX_BYTES = 64 * 1024
BROWSER_ARGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync --disable-dev-shm-usage --window-size=1280,900"
).split()

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -r requirements.txt)")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "Chromium is not installed: apt-get install -y chromium chromium-driver (.ci/run does it when apt-get works)",
        allow_module_level=True,
    )

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[ConsoleServer, LocalDropzone]]:
    port = free_port()
    with moto_server() as endpoint:
        dropzone = create_dropzone(endpoint, f"http://127.0.0.1:{port}", upload_max_bytes=UPLOAD_MAX_BYTES)
        server = ConsoleServer(dropzone, test_identity=True, sftp_host=SFTP_HOST, port=port).start()
        try:
            yield server, dropzone
        finally:
            server.stop()


@pytest.fixture(scope="module")
def browser(stack) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in BROWSER_ARGS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    server, _ = stack
    driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": server.origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """Small helpers over the driver: waits with readable failures, screenshots."""

    def __init__(self, driver, origin: str):
        self.driver, self.origin = driver, origin

    def wait(self, condition, what: str, timeout: float = 15):
        try:
            return WebDriverWait(self.driver, timeout).until(lambda d: condition())
        except TimeoutException:
            self.shot("failure")
            raise AssertionError(f"timed out waiting for {what}; banner: {self.text('#banner')!r}") from None

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.all(css)
        return found[0].text if found else ""

    def visible(self, css: str) -> bool:
        found = self.all(css)
        return bool(found) and found[0].is_displayed()

    def click(self, css: str) -> None:
        self.wait(lambda: self.visible(css), f"{css} to be visible")
        self.find(css).click()

    def type(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(OUT / f"{name}.png"))

    def sign_in(self, username: str, group: str) -> None:
        self.driver.get(f"{self.origin}/partners")
        self.click("#sign-in")
        self.wait(lambda: "/oauth2/authorize" in self.driver.current_url, "the identity provider's sign-in page")
        self.type("#username", username)
        self.driver.find_element(By.CSS_SELECTOR, f"#group option[value='{group}']" if group else "#group option[value='']").click()
        self.find("#login").click()
        self.wait(lambda: self.visible("#page-partners") and self.text("#who-name") == username, f"{username} signed in")

    def sign_out(self) -> None:
        self.click("#sign-out")
        self.wait(lambda: self.visible("#page-signin"), "the sign-in page after signing out")

    def secret_fields(self) -> dict[str, str]:
        self.wait(lambda: self.visible("#secret-dialog"), "the secret dialog")
        return {code.get_attribute("id").removeprefix("secret-"): code.text for code in self.all("#secret-fields code")}

    def row(self, partner: str):
        found = self.all(f"tr[data-partner='{partner}']")
        return found[0] if found else None


def moto_client(dropzone: LocalDropzone, service: str, **credentials: str):
    if credentials:
        session = boto3.session.Session(region_name=REGION, **credentials)
        return session.client(service, region_name=REGION, endpoint_url=dropzone.endpoint)
    return dropzone.client(service)


def test_console_signs_in_manages_a_partner_uploads_and_revokes(stack, browser, tmp_path):
    server, dropzone = stack
    page = Page(browser, server.origin)
    iam = moto_client(dropzone, "iam")

    # -- sign-in: the app redirects to the identity provider with PKCE and comes back signed in
    browser.get(f"{server.origin}/")
    page.wait(lambda: page.visible("#page-signin"), "the sign-in page")
    page.shot("01-sign-in")
    page.click("#sign-in")
    page.wait(lambda: "/oauth2/authorize" in browser.current_url, "the identity provider")
    assert "code_challenge_method=S256" in browser.current_url
    page.shot("02-identity-provider")
    page.type("#username", "alice")
    page.find("#login").click()
    page.wait(lambda: page.visible("#page-partners") and page.text("#who-name") == "alice", "alice on the partners page")
    assert browser.current_url == f"{server.origin}/partners"
    assert page.text("#who-role") == "admin"
    page.wait(lambda: page.visible("#partners-empty"), "the empty partner list")
    page.shot("03-partners-empty")

    # -- the form refuses what the API would refuse, before any request
    page.type("#f-name", "Acme_Logistics")
    page.type("#f-contact", "ops<script>")
    page.type("#f-days", "400")
    page.type("#f-cidrs", "203.0.113.7/24")
    page.click("#create-submit")
    page.wait(lambda: page.text("[data-error-for='name']"), "field errors")
    assert "lowercase letters, digits or hyphens" in page.text("[data-error-for='name']")
    assert "letters, digits, spaces" in page.text("[data-error-for='contact']")
    assert "from 1 to 365" in page.text("[data-error-for='expires_in_days']")
    assert "host bits set" in page.text("[data-error-for='allowed_cidrs']")
    assert page.find("#f-name").get_attribute("aria-invalid") == "true"
    page.shot("04-create-validation")
    assert iam.list_users(PathPrefix=dropzone.dropzone.user_path)["Users"] == []

    # -- create: the secret is shown once, copies to the clipboard and works
    page.type("#f-name", "acme-logistics")
    page.type("#f-contact", "ops@acme.example")
    page.type("#f-days", "30")
    page.type("#f-cidrs", "203.0.113.0/24")
    page.click("#create-submit")
    secret = page.secret_fields()
    assert set(secret) == {"access-key-id", "secret-access-key"}
    assert "You will not see this secret again" in page.text("#secret-dialog")
    page.find("[data-copy='secret-access-key']").click()
    page.wait(lambda: page.text("[data-copy='secret-access-key']") == "Copied", "the copy confirmation")
    clipboard = browser.execute_async_script("navigator.clipboard.readText().then(arguments[0], e => arguments[0]('ERR ' + e))")
    assert clipboard == secret["secret-access-key"]
    page.shot("05-secret-shown-once")
    identity = moto_client(
        dropzone, "sts", aws_access_key_id=secret["access-key-id"], aws_secret_access_key=secret["secret-access-key"]
    ).get_caller_identity()
    assert identity["Arn"].endswith(f"user{dropzone.dropzone.user_path}acme-logistics")
    page.click("#secret-done")
    page.wait(lambda: not page.visible("#secret-dialog"), "the secret dialog to close")
    assert secret["secret-access-key"] not in browser.page_source

    # -- list: the partner with its key, expiry and prefix
    page.wait(lambda: page.row("acme-logistics") is not None, "the new partner's row")
    row_text = page.row("acme-logistics").text
    assert secret["access-key-id"] in row_text and "Active" in row_text
    assert "ops@acme.example" in row_text and "in 30 days" in row_text
    assert f"s3://{dropzone.dropzone.bucket}/dropzone/acme-logistics/" in row_text
    page.shot("06-partners-list")

    # -- an API refusal is shown as the API's own message
    page.type("#f-name", "acme-logistics")
    page.type("#f-contact", "ops@acme.example")
    page.click("#create-submit")
    page.wait(lambda: page.text("#create-error"), "the API's error")
    assert page.text("#create-error") == "name: partner 'acme-logistics' already exists"
    assert page.text("[data-error-for='name']") == "name: partner 'acme-logistics' already exists"
    page.shot("07-api-error")

    # -- rotate: a new key, shown once; the old one is gone
    page.row("acme-logistics").find_element(By.CSS_SELECTOR, "[data-action='rotate']").click()
    page.wait(lambda: page.visible("#confirm-dialog"), "the rotate confirmation")
    page.shot("08-rotate-confirm")
    page.click("#confirm-ok")
    rotated = page.secret_fields()
    assert rotated["access-key-id"] != secret["access-key-id"]
    page.click("#secret-done")
    page.wait(lambda: rotated["access-key-id"] in page.row("acme-logistics").text, "the rotated key in the list")
    assert secret["access-key-id"] not in page.row("acme-logistics").text
    keys = iam.list_access_keys(UserName="acme-logistics")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [rotated["access-key-id"]]

    # -- temporary session: credentials with a session token, for the partner's prefix
    page.row("acme-logistics").find_element(By.CSS_SELECTOR, "[data-action='session']").click()
    page.wait(lambda: page.visible("#session-duration"), "the session duration choice")
    page.click("#confirm-ok")
    temporary = page.secret_fields()
    assert {"access-key-id", "secret-access-key", "session-token", "expiration"} <= set(temporary)
    assert temporary["access-key-id"].startswith("ASIA")
    assert f"s3://{dropzone.dropzone.bucket}/dropzone/acme-logistics/" in page.text("#secret-extra")
    page.shot("09-temporary-session")
    page.click("#secret-done")

    # -- upload: presigned POST to the dropzone bucket with progress, one error per failed file
    good = tmp_path / "orders.csv"
    good.write_text("id,amount\n1,9.99\n2,20.00\n" * 200)
    too_big = tmp_path / "archive.bin"
    too_big.write_bytes(b"\0" * (UPLOAD_MAX_BYTES + 1))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    page.click("nav a[data-page='upload']")
    page.wait(lambda: page.visible("#page-upload"), "the upload page")
    assert browser.current_url == f"{server.origin}/upload"
    page.shot("10-upload")
    page.type("#u-folder", "2026/11")
    page.find("#u-files").send_keys("\n".join(str(p) for p in (good, too_big, empty)))
    page.click("#upload-submit")
    page.wait(lambda: len(page.all("#upload-list li.done, #upload-list li.failed")) == 3, "three finished uploads")
    rows = {li.get_attribute("data-file"): li for li in page.all("#upload-list li")}
    key = "dropzone/_staff/2026/11/orders.csv"
    assert "done" in rows["orders.csv"].get_attribute("class"), rows["orders.csv"].text
    assert rows["orders.csv"].find_element(By.CSS_SELECTOR, "progress").get_attribute("value") == "1"
    assert f"Uploaded to s3://{dropzone.dropzone.bucket}/{key}" in rows["orders.csv"].text
    assert "failed" in rows["archive.bin"].get_attribute("class")
    assert f"the dropzone accepts at most {UPLOAD_MAX_BYTES}" in rows["archive.bin"].text
    assert "the file is empty" in rows["empty.csv"].text
    page.shot("11-upload-results")
    s3 = moto_client(dropzone, "s3")
    stored = s3.get_object(Bucket=dropzone.dropzone.bucket, Key=key)
    assert stored["Body"].read() == good.read_bytes()
    assert stored["Metadata"] == {"uploaded-by": "alice"}
    assert stored["ServerSideEncryption"] == "aws:kms"
    listed = s3.list_objects_v2(Bucket=dropzone.dropzone.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [key]

    # -- SFTP facts
    page.click("nav a[data-page='sftp']")
    page.wait(lambda: page.visible("#sftp-on"), "the SFTP page")
    assert page.text("#sftp-host") == SFTP_HOST
    page.shot("12-sftp")

    # -- revoke, with a confirmation that can be cancelled
    page.click("nav a[data-page='partners']")
    page.wait(lambda: page.row("acme-logistics") is not None, "the partner list")
    page.row("acme-logistics").find_element(By.CSS_SELECTOR, "[data-action='revoke']").click()
    page.wait(lambda: page.visible("#confirm-dialog"), "the revoke confirmation")
    assert "Revoke acme-logistics?" == page.text("#confirm-title")
    page.shot("13-revoke-confirm")
    page.click("#confirm-cancel")
    page.wait(lambda: not page.visible("#confirm-dialog"), "the cancelled confirmation to close")
    assert iam.get_user(UserName="acme-logistics")["User"]["UserName"] == "acme-logistics"
    page.row("acme-logistics").find_element(By.CSS_SELECTOR, "[data-action='revoke']").click()
    page.click("#confirm-ok")
    page.wait(lambda: page.row("acme-logistics") is None and page.visible("#partners-empty"), "the partner to disappear")
    assert page.text("#toast") == "Partner acme-logistics revoked."
    assert page.text("#create-error") == ""  # the earlier refusal no longer holds
    page.shot("14-revoked")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName="acme-logistics")

    # -- nothing the page did broke its CSP
    violations = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == []
    page.sign_out()


def test_members_see_partners_and_upload_but_manage_nothing(stack, browser):
    server, dropzone = stack
    page = Page(browser, server.origin)
    dropzone.api().dispatch(
        "POST", "/partners", json.dumps({"name": "beta-freight", "contact": "it@beta.example", "expires_in_days": 7}),
        {"cognito:username": "carol", "cognito:groups": "admin"},
    )
    page.sign_in("bob", "member")
    assert page.text("#who-role") == "member"
    page.wait(lambda: page.row("beta-freight") is not None, "the partner list")
    assert not page.visible("#create-form")
    assert page.visible("#partners-note")
    assert page.row("beta-freight").find_elements(By.CSS_SELECTOR, "button") == []
    page.shot("15-member-partners")
    # The API, not just the page, refuses a member: a forged request gets the API's 403.
    status = browser.execute_async_script(
        """const done = arguments[0];
        const token = JSON.parse(sessionStorage.getItem('dropzone.session')).idToken;
        fetch('/api/partners/beta-freight', {method: 'DELETE', headers: {Authorization: token}})
          .then(r => r.json().then(b => done([r.status, b.error.code])), e => done(String(e)));"""
    )
    assert status == [403, "forbidden"]
    # Coming back to the tab after the sign-in expired shows the sign-in page and says why.
    browser.execute_script(
        "const s = JSON.parse(sessionStorage.getItem('dropzone.session')); s.expiresAt = 0;"
        "sessionStorage.setItem('dropzone.session', JSON.stringify(s));"
    )
    browser.refresh()
    page.wait(lambda: page.visible("#page-signin"), "the sign-in page after the session expired")
    assert page.text("#signin-reason") == "Your session has expired; sign in again."
    assert not page.visible("#nav")


def test_a_user_in_no_group_is_told_to_ask_for_access(stack, browser):
    server, _ = stack
    page = Page(browser, server.origin)
    # A callback this tab did not ask for (forged or replayed state) signs nobody in.
    browser.get(f"{server.origin}/callback?code=stolen&state=forged")
    page.wait(lambda: page.visible("#page-signin") and page.text("#banner"), "the refused callback")
    assert page.text("#banner") == "Sign-in could not be completed; please sign in again."
    # Nor does a crafted error: its description never reaches the page (issue 12).
    browser.get(f"{server.origin}/callback?error=access_denied&error_description=Call+support+at+evil.example&state=forged")
    page.wait(lambda: page.visible("#page-signin") and page.text("#banner"), "the refused error callback")
    assert "evil.example" not in page.text("#banner")
    assert browser.current_url == f"{server.origin}/"
    browser.get(f"{server.origin}/upload")
    page.click("#sign-in")
    page.wait(lambda: "/oauth2/authorize" in browser.current_url, "the identity provider")
    page.type("#username", "mallory")
    page.find("#group option[value='']").click()
    page.find("#login").click()
    page.wait(lambda: "neither the admin nor the member group" in page.text("#signin-reason"), "the no-access message")
    assert not page.visible("#page-upload")
    assert not page.visible("#nav") and not page.visible("#sign-in") and page.visible("#sign-out")
    page.shot("16-no-group")
    page.sign_out()
