"""The credential-vending REST API, independent of API Gateway.

`CredentialVendingApi.dispatch(method, path, body, claims)` takes what an HTTP request carries and
returns a `Response` (status, JSON body, headers): the Lambda entry point (`handler.py`) adapts API
Gateway proxy events to it, and a local HTTP adapter can do the same against moto_server. Every
route, body and error is described in `docs/dropzone-api.md`.

Rules every route keeps:
- the caller's Cognito groups decide (`admin` manages partners, `member` lists them and uploads);
- bad requests get a 4xx JSON error that names the field; nothing from AWS, no traceback and no
  secret ever reaches a response body, except a new secret returned once to the admin who asked;
- every state change writes one audit record;
- a partner half created when a step fails is rolled back.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional

from dropzone_partners.partners import (
    INLINE_POLICY_NAME,
    STAFF_PREFIX,
    TAG_CIDRS,
    TAG_CONTACT,
    TAG_CREATOR,
    TAG_EXPIRES,
    TAG_PARTNER,
    TAG_RETIRE_PREFIX,
    TAG_SILO,
    Dropzone,
    PartnerUser,
    cidr_problem,
    expiry_of,
    find_partner,
    get_user,
    format_time,
    is_expired,
    is_tag_value,
    list_partners,
    name_problem,
    new_name_problem,
    remove_partner_user,
    reserved_name_problem,
    tag_value_problem,
    utc_now,
)

from .audit import AuditLog

LOG = logging.getLogger(__name__)

ADMIN_GROUP = "admin"
MEMBER_GROUP = "member"
MIN_EXPIRY_DAYS, MAX_EXPIRY_DAYS = 1, 365
# AssumeRole called with a Lambda's role credentials is role chaining, which AWS caps at one hour.
MIN_SESSION_SECONDS, MAX_SESSION_SECONDS = 900, 3600
MAX_GRACE_HOURS = 168
# S3 object keys are at most 1,024 bytes of UTF-8; the staff prefix takes its share of that.
MAX_OBJECT_KEY_BYTES = 1024
MAX_UPLOAD_KEY_BYTES = MAX_OBJECT_KEY_BYTES - len(STAFF_PREFIX.encode())
# Request bodies are a few hundred bytes; anything far larger is refused before it is parsed.
MAX_BODY_BYTES = 64 * 1024
SSH_KEY_PATTERN = re.compile(r"(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]{16,}( [^\r\n]{0,200})?")
ALLOWED_METHODS = "GET,POST,DELETE,OPTIONS"


@dataclass(frozen=True)
class Settings:
    """What the API needs to know about its silo, read from the Lambda environment."""

    dropzone: Dropzone
    """The silo's dropzone bucket, key and partner path."""
    permissions_boundary_arn: str
    """Managed policy set as every partner user's permissions boundary."""
    session_role_arn: str
    """Role assumed for `POST /partners/{name}/session`; its session policy narrows to the partner."""
    audit_log_group: str
    """CloudWatch log group of audit records, `datalake/<silo>/audit`."""
    allowed_origin: str = ""
    """Browser origin allowed by CORS (default none: no CORS headers)."""
    upload_max_bytes: int = 1024**3
    """Largest object a presigned upload accepts (default 1 GiB)."""
    upload_url_seconds: int = 900
    """Lifetime of a presigned upload (default 15 minutes)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        return cls(
            dropzone=Dropzone.from_env(env),
            permissions_boundary_arn=env["PERMISSIONS_BOUNDARY_ARN"],
            session_role_arn=env["SESSION_ROLE_ARN"],
            audit_log_group=env["AUDIT_LOG_GROUP"],
            allowed_origin=env.get("ALLOWED_ORIGIN", ""),
            upload_max_bytes=int(env.get("UPLOAD_MAX_BYTES", str(1024**3))),
            upload_url_seconds=int(env.get("UPLOAD_URL_SECONDS", "900")),
        )


@dataclass(frozen=True)
class Response:
    """An HTTP response: status, JSON body (None for an empty body) and headers."""

    status: int
    body: Optional[dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """A request the API refuses; becomes `{"error": {"code", "message", "field"}}`."""

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _invalid(field_name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{field_name}: {message}", field_name)


@dataclass(frozen=True)
class Caller:
    """Who calls, from the Cognito authorizer's claims."""

    name: str
    groups: frozenset[str]

    @classmethod
    def from_claims(cls, claims: Optional[Mapping[str, Any]]) -> "Caller":
        if not claims:
            raise ApiError(401, "unauthenticated", "no identity: call the API with a Cognito ID token")
        name = claims.get("cognito:username") or claims.get("username") or claims.get("sub")
        if not name:
            raise ApiError(401, "unauthenticated", "the token names no user")
        return cls(name=str(name), groups=frozenset(groups_of(claims.get("cognito:groups"))))


def groups_of(value: Any) -> list[str]:
    """The group names of a `cognito:groups` claim, in the two forms it reaches this function in.

    - A list of strings: the ID token's own claim (a JWT array), as the local adapter passes it.
    - One string, the names joined by commas: a REST API's Cognito user-pool authorizer turns
      every claim into a string, and the array into `"admin,member"` (one group: `"admin"`).
      Sources: AWS re:Post "AWS Cognito Group" (questions/QUFJRBaEJRSmmqarNrvCWoQA, the claims
      of a REST API proxy event, `'cognito:groups': 'team_manager'`) and aws/chalice#783 (a maintainer
      splitting the authorizer's claim on `,`). The `"[a b]"` form is the HTTP API JWT authorizer's,
      which this REST API does not use: such a string is not read as groups here.

    Cognito group names may hold commas, brackets and other punctuation (botocore's
    `GroupNameType` is `[\p{L}\p{M}\p{S}\p{N}\p{P}]+`), so `"ops,admin"` in a list is one group
    whose name contains the separator: it is ignored, never split into `ops` and `admin`. Names
    holding whitespace or brackets are ignored too: no real group is called `[admin`.
    """
    if isinstance(value, (list, tuple)):
        names = [v for v in value if isinstance(v, str)]
    elif isinstance(value, str):
        names = value.split(",")
    else:
        return []
    return [name for name in names if name and not GROUP_SEPARATORS & set(name)]


GROUP_SEPARATORS = frozenset(",[] \t\r\n")


def _object(body: Any) -> dict[str, Any]:
    if body is None or body == "" or body == b"":
        return {}
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        if len(body) > MAX_BODY_BYTES or len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"the request body exceeds {MAX_BODY_BYTES} bytes", "body")
        try:
            body = json.loads(body)
        # ValueError covers JSONDecodeError and integers longer than Python converts (4,300 digits);
        # RecursionError comes from arrays or objects nested thousands deep.
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_json", "the request body is not valid JSON", "body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object", "body")
    return body


def _fields(body: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    values = _object(body)
    for name in values:
        if name not in allowed:
            known = ", ".join(allowed) if allowed else "none"
            raise ApiError(400, "unknown_field", f"{name[:60]}: is not a known field; known fields: {known}", name[:60])
    for name in required:
        if name not in values:
            raise ApiError(400, "missing_field", f"{name}: is required", name)
    return values


def _integer(values: Mapping[str, Any], name: str, low: int, high: int, default: Optional[int] = None) -> int:
    value = values.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(name, f"got {json.dumps(value)[:40]}; use a whole number from {low} to {high}")
    return value


def _partner_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise _invalid("name", problem)
    return name


def upload_key_problem(key: Any) -> Optional[str]:
    """Why `key` cannot be a staff upload's key (relative to the staff prefix), or None.

    No `$`: a key ending in `${filename}` turns the presigned POST's exact key condition into
    `starts-with` (botocore's `generate_presigned_post`), which would let the form write any key
    under the prefix. No empty, `.` or `..` segments and no control characters; at most
    `MAX_UPLOAD_KEY_BYTES` bytes of UTF-8, so prefix and key stay within S3's 1,024 bytes.
    """
    rule = (
        f"must be a relative object key of at most {MAX_UPLOAD_KEY_BYTES} bytes (UTF-8) without empty, '.' or '..' "
        "segments, '$' or control characters; for example: 2026/11/orders.csv"
    )
    if not isinstance(key, str) or not key:
        return rule
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (`"\ud800"` in JSON) is no character S3 stores
        return rule
    if (
        size > MAX_UPLOAD_KEY_BYTES
        or "$" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
        or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in key)
    ):
        return rule
    return None


@dataclass(frozen=True)
class Route:
    """One route: method, path template (API Gateway syntax), handler method, groups allowed."""

    method: str
    template: str
    handler: str
    groups: frozenset[str]

    def pattern(self) -> re.Pattern[str]:
        """Matched with `fullmatch` (a `$` would let `/partners\n` through)."""
        return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template))


ADMINS = frozenset({ADMIN_GROUP})
EVERYONE = frozenset({ADMIN_GROUP, MEMBER_GROUP})
# The API Gateway resources in `components/silo/dropzone.py` are checked against this table by the tests.
ROUTES = (
    Route("GET", "/partners", "list_partners", EVERYONE),
    Route("POST", "/partners", "create_partner", ADMINS),
    Route("GET", "/partners/{name}", "get_partner", EVERYONE),
    Route("DELETE", "/partners/{name}", "delete_partner", ADMINS),
    Route("POST", "/partners/{name}/rotate", "rotate_key", ADMINS),
    Route("POST", "/partners/{name}/session", "create_session", ADMINS),
    Route("POST", "/partners/{name}/ssh-keys", "add_ssh_key", ADMINS),
    Route("POST", "/uploads", "create_upload", EVERYONE),
)


class CredentialVendingApi:
    """Routes of the API over injected boto3 clients (IAM, STS, S3) and an `AuditLog`."""

    def __init__(
        self,
        settings: Settings,
        *,
        iam: Any,
        sts: Any,
        s3: Any,
        audit: AuditLog,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.settings = settings
        self.dropzone = settings.dropzone
        self.iam, self.sts, self.s3, self.audit, self.clock = iam, sts, s3, audit, clock
        self.routes = [
            (route.method, route.pattern(), getattr(self, route.handler), route.groups) for route in ROUTES
        ]

    # -- dispatch ---------------------------------------------------------------------------

    def cors_headers(self) -> dict[str, str]:
        if not self.settings.allowed_origin:
            return {}
        return {
            "Access-Control-Allow-Origin": self.settings.allowed_origin,
            "Access-Control-Allow-Headers": "Authorization,Content-Type",
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    def _respond(self, status: int, body: Optional[dict[str, Any]]) -> Response:
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **self.cors_headers()}
        return Response(status, body, headers)

    def dispatch(
        self,
        method: str,
        path: str,
        body: Any = None,
        claims: Optional[Mapping[str, Any]] = None,
        request_id: Optional[str] = None,
    ) -> Response:
        """Answers one request. `claims` are the verified Cognito token claims (None: anonymous)."""
        request_id = request_id or uuid.uuid4().hex
        method = method.upper()
        path = "/" + path.strip("/")
        try:
            if method == "OPTIONS":  # CORS preflight: browsers send it without credentials
                return Response(204, None, self.cors_headers())
            matches = [(m, p.fullmatch(path), h, g) for m, p, h, g in self.routes if p.fullmatch(path)]
            if not matches:
                raise ApiError(404, "not_found", f"no route {path[:100]}")
            chosen = [(match, handler, groups) for m, match, handler, groups in matches if m == method]
            if not chosen:
                allowed = ", ".join(sorted({m for m, *_ in matches}))
                raise ApiError(405, "method_not_allowed", f"{method} is not allowed on this path; use {allowed}")
            match, handler, groups = chosen[0]
            caller = Caller.from_claims(claims)
            if not caller.groups & groups:
                raise ApiError(403, "forbidden", f"this call needs membership in: {', '.join(sorted(groups))}")
            status, payload = handler(caller, request_id, body, **match.groupdict())
            return self._respond(status, payload)
        except ApiError as error:
            detail = {"code": error.code, "message": error.message}
            if error.field:
                detail["field"] = error.field
            return self._respond(error.status, {"error": {**detail, "request_id": request_id}})
        except Exception:  # noqa: BLE001 - the client must never see an AWS error or a traceback
            LOG.exception("request %s failed: %s %s", request_id, method, path[:100])
            return self._respond(
                500, {"error": {"code": "internal_error", "message": "the request failed; quote the request id", "request_id": request_id}}
            )

    # -- shared steps -----------------------------------------------------------------------

    def _require_partner(self, name: str) -> PartnerUser:
        partner = find_partner(self.iam, self.dropzone, _partner_name(name))
        if partner is None:
            raise ApiError(404, "partner_not_found", f"name: no partner {name!r} in this silo", "name")
        return partner

    def _require_active_partner(self, name: str) -> PartnerUser:
        """The partner, when it may be given credentials: not expired, not under a reserved name
        (a partner named so before the names were reserved can still be read and deleted)."""
        partner = self._require_partner(name)
        reserved = reserved_name_problem(name)
        if reserved:
            raise ApiError(409, "name_reserved", f"name: {reserved}; delete this partner and create it anew", "name")
        if is_expired(partner.tags, self.clock()):
            raise ApiError(409, "partner_expired", f"name: partner {name!r} has expired; create it anew", "name")
        return partner

    def _record(self, action: str, caller: Caller, request_id: str, partner: Optional[str], **details: Any) -> None:
        self.audit.record(action, actor=caller.name, request_id=request_id, partner=partner, details=details)

    def _describe(self, partner: PartnerUser) -> dict[str, Any]:
        keys = self.iam.list_access_keys(UserName=partner.name)["AccessKeyMetadata"]
        ssh_keys = self.iam.list_ssh_public_keys(UserName=partner.name)["SSHPublicKeys"]
        return self._partner_view(partner, keys, ssh_keys)

    def _partner_view(
        self, partner: PartnerUser, keys: list[dict[str, Any]], ssh_keys: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The partner object of a response, from data in hand (no AWS call)."""
        expiry = expiry_of(partner.tags)
        return {
            "name": partner.name,
            "contact": partner.tags.get(TAG_CONTACT),
            "creator": partner.tags.get(TAG_CREATOR),
            "created": format_time(partner.created),
            "expires": format_time(expiry) if expiry else None,
            "expired": is_expired(partner.tags, self.clock()),
            "allowed_cidrs": partner.cidrs,
            "prefix": f"s3://{self.dropzone.bucket}/{self.dropzone.prefix(partner.name)}",
            "access_keys": [
                {
                    "access_key_id": key["AccessKeyId"],
                    "status": key["Status"],
                    "created": format_time(key["CreateDate"]),
                    "retires": partner.tags.get(TAG_RETIRE_PREFIX + key["AccessKeyId"]),
                }
                for key in sorted(keys, key=lambda k: k["CreateDate"])
            ],
            "ssh_keys": [{"ssh_key_id": k["SSHPublicKeyId"], "status": k["Status"]} for k in ssh_keys],
        }

    # -- routes -----------------------------------------------------------------------------

    def list_partners(self, caller: Caller, request_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"partners": [self._describe(p) for p in list_partners(self.iam, self.dropzone)]}

    def get_partner(self, caller: Caller, request_id: str, body: Any, name: str) -> tuple[int, dict[str, Any]]:
        return 200, {"partner": self._describe(self._require_partner(name))}

    def create_partner(self, caller: Caller, request_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        values = _fields(body, ("name", "contact", "expires_in_days", "allowed_cidrs"), ("name", "contact", "expires_in_days"))
        name = values["name"]
        problem = new_name_problem(name)
        if problem:
            raise _invalid("name", problem)
        problem = tag_value_problem(values["contact"], "data-team@acme.example")
        if problem:
            raise _invalid("contact", problem)
        days = _integer(values, "expires_in_days", MIN_EXPIRY_DAYS, MAX_EXPIRY_DAYS)
        cidrs = values.get("allowed_cidrs", [])
        problem = cidr_problem(cidrs)
        if problem:
            raise _invalid("allowed_cidrs", problem)
        # Cognito user names may hold symbols (`GroupNameType`-like `\p{S}\p{P}`) that IAM tags refuse.
        if not is_tag_value(caller.name):
            raise ApiError(
                400, "invalid_field",
                f"creator: your user name {caller.name[:60]!r} cannot be recorded in the partner's creator tag "
                "(IAM tag values take letters, digits, spaces and _.:/=+-@ only); ask a pool administrator "
                "for a user name of those characters",
                "creator",
            )
        self._check_name_free(name)

        expires = self.clock() + timedelta(days=days)
        tags = {
            TAG_PARTNER: name,
            TAG_SILO: self.dropzone.silo,
            TAG_CREATOR: caller.name,
            TAG_CONTACT: values["contact"],
            TAG_EXPIRES: format_time(expires),
        }
        if cidrs:
            tags[TAG_CIDRS] = " ".join(cidrs)
        try:
            user = self.iam.create_user(
                UserName=name,
                Path=self.dropzone.user_path,
                PermissionsBoundary=self.settings.permissions_boundary_arn,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )["User"]
        except self.iam.exceptions.EntityAlreadyExistsException:
            raise ApiError(409, "name_taken", f"name: an IAM user named {name!r} already exists; choose another name", "name") from None
        # Every later step is inside the rollback, and the answer is built from what the calls
        # returned: nothing can fail between creating the key and handing out its secret.
        try:
            self.iam.put_user_policy(
                UserName=name,
                PolicyName=INLINE_POLICY_NAME,
                PolicyDocument=json.dumps(self.dropzone.access_policy(name, cidrs)),
            )
            key = self.iam.create_access_key(UserName=name)["AccessKey"]
            partner = PartnerUser(name=name, arn=user["Arn"], path=user["Path"], created=user["CreateDate"], tags=tags)
            view = self._partner_view(partner, [key], [])
        except Exception:
            LOG.error("request %s: creating partner %s failed midway; rolling back", request_id, name)
            self._roll_back(request_id, f"partner {name}", lambda: remove_partner_user(self.iam, name))
            raise
        self._record(
            "partner.create", caller, request_id, name,
            expires=tags[TAG_EXPIRES], allowed_cidrs=cidrs, access_key_id=key["AccessKeyId"],
        )
        return 201, {
            "partner": view,
            "credentials": {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]},
        }

    @staticmethod
    def _roll_back(request_id: str, what: str, undo: Callable[[], Any]) -> None:
        """Runs `undo`; a failing rollback is logged, and the original error is what propagates."""
        try:
            undo()
        except Exception:  # noqa: BLE001 - the first failure is the one to report
            LOG.exception("request %s: rolling back %s failed; it needs a person", request_id, what)

    def _check_name_free(self, name: str) -> None:
        user = get_user(self.iam, name)
        if user is None:  # unknown, or outside what this role may read: CreateUser will tell which
            return
        if user.get("Path") == self.dropzone.user_path:
            raise ApiError(409, "partner_exists", f"name: partner {name!r} already exists", "name")
        raise ApiError(
            409, "name_taken", f"name: an IAM user named {name!r} exists outside this dropzone; choose another name", "name"
        )

    def rotate_key(self, caller: Caller, request_id: str, body: Any, name: str) -> tuple[int, dict[str, Any]]:
        """A new key; the old ones retire after the grace period, or are deleted last of all.

        Everything is read before anything changes. IAM allows two keys per user, so when a
        rotation's grace period still runs (two keys), its retiring key goes first; the partner keeps
        its newer key throughout. A failure after the new key exists deletes the new key again,
        so the partner is left with the keys it had and works as before.
        """
        values = _fields(body, ("grace_period_hours",))
        grace = _integer(values, "grace_period_hours", 0, MAX_GRACE_HOURS, default=0)
        partner = self._require_active_partner(name)
        old = sorted(self.iam.list_access_keys(UserName=name)["AccessKeyMetadata"], key=lambda k: k["CreateDate"])
        ssh_keys = self.iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"]
        tags = dict(partner.tags)
        deleted: list[str] = []
        if len(old) >= 2:
            if grace:
                raise ApiError(
                    409, "rotation_pending",
                    "grace_period_hours: the previous rotation's grace period is still running; "
                    "rotate with grace_period_hours 0 to end it now",
                    "grace_period_hours",
                )
            retiring_first = next((k for k in old if TAG_RETIRE_PREFIX + k["AccessKeyId"] in tags), old[0])
            self._delete_key(name, retiring_first["AccessKeyId"])
            tags.pop(TAG_RETIRE_PREFIX + retiring_first["AccessKeyId"], None)
            deleted.append(retiring_first["AccessKeyId"])
            old.remove(retiring_first)
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        retiring: dict[str, str] = {}
        try:
            if grace:
                retiring = {k["AccessKeyId"]: format_time(self.clock() + timedelta(hours=grace)) for k in old}
                if retiring:
                    self.iam.tag_user(
                        UserName=name, Tags=[{"Key": TAG_RETIRE_PREFIX + k, "Value": v} for k, v in retiring.items()]
                    )
                tags.update({TAG_RETIRE_PREFIX + k: v for k, v in retiring.items()})
                remaining = [*old, key]
            else:
                for previous in old:  # last: the old key goes only once the new one is in hand
                    self._delete_key(name, previous["AccessKeyId"])
                    tags.pop(TAG_RETIRE_PREFIX + previous["AccessKeyId"], None)
                    deleted.append(previous["AccessKeyId"])
                remaining = [key]
            view = self._partner_view(PartnerUser(partner.name, partner.arn, partner.path, partner.created, tags), remaining, ssh_keys)
        except Exception:
            LOG.error("request %s: rotating the key of %s failed midway; deleting the new key", request_id, name)
            self._roll_back(
                request_id, f"the new key of {name}",
                lambda: self.iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"]),
            )
            raise
        self._record(
            "partner.rotate", caller, request_id, name,
            new_access_key_id=key["AccessKeyId"], deleted_access_key_ids=deleted, retiring=retiring,
        )
        return 200, {
            "partner": view,
            "credentials": {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]},
            "retiring": [{"access_key_id": k, "retires": v} for k, v in retiring.items()],
        }

    def _delete_key(self, name: str, key_id: str) -> None:
        # The tag first: a tag without its key is harmless, a retiring key without its tag is not.
        self.iam.untag_user(UserName=name, TagKeys=[TAG_RETIRE_PREFIX + key_id])
        self.iam.delete_access_key(UserName=name, AccessKeyId=key_id)

    def create_session(self, caller: Caller, request_id: str, body: Any, name: str) -> tuple[int, dict[str, Any]]:
        values = _fields(body, ("duration_seconds",))
        duration = _integer(values, "duration_seconds", MIN_SESSION_SECONDS, MAX_SESSION_SECONDS, default=MAX_SESSION_SECONDS)
        partner = self._require_active_partner(name)
        session = self.sts.assume_role(
            RoleArn=self.settings.session_role_arn,
            RoleSessionName=f"partner-{name}"[:64],
            DurationSeconds=duration,
            Policy=json.dumps(self.dropzone.access_policy(name, partner.cidrs), separators=(",", ":")),
        )
        credentials = session["Credentials"]
        self._record(
            "partner.session", caller, request_id, name,
            duration_seconds=duration, session_access_key_id=credentials["AccessKeyId"],
        )
        return 200, {
            "credentials": {
                "access_key_id": credentials["AccessKeyId"],
                "secret_access_key": credentials["SecretAccessKey"],
                "session_token": credentials["SessionToken"],
                "expiration": format_time(credentials["Expiration"]),
            },
            "bucket": self.dropzone.bucket,
            "prefix": self.dropzone.prefix(name),
            "region": self.dropzone.region,
        }

    def add_ssh_key(self, caller: Caller, request_id: str, body: Any, name: str) -> tuple[int, dict[str, Any]]:
        values = _fields(body, ("public_key",), ("public_key",))
        public_key = values["public_key"]
        if not isinstance(public_key, str) or len(public_key) > 16384 or not SSH_KEY_PATTERN.fullmatch(public_key.strip()):
            raise _invalid("public_key", "must be one OpenSSH public key line, for example: ssh-ed25519 AAAAC3Nza... alice@laptop")
        self._require_active_partner(name)
        try:
            uploaded = self.iam.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=public_key.strip())["SSHPublicKey"]
        except self.iam.exceptions.DuplicateSSHPublicKeyException:
            raise ApiError(409, "duplicate_key", "public_key: this key is already registered", "public_key") from None
        except (self.iam.exceptions.InvalidPublicKeyException, self.iam.exceptions.UnrecognizedPublicKeyEncodingException):
            raise _invalid("public_key", "IAM rejected the key; use an RSA (2048 bits or more), ECDSA or Ed25519 key") from None
        except self.iam.exceptions.LimitExceededException:
            raise ApiError(409, "limit_exceeded", "public_key: the partner has the most SSH keys IAM allows", "public_key") from None
        self._record("partner.ssh_key.add", caller, request_id, name, ssh_key_id=uploaded["SSHPublicKeyId"])
        return 201, {"ssh_key_id": uploaded["SSHPublicKeyId"], "status": uploaded["Status"]}

    def delete_partner(self, caller: Caller, request_id: str, body: Any, name: str) -> tuple[int, dict[str, Any]]:
        _fields(body, ())
        partner = find_partner(self.iam, self.dropzone, _partner_name(name))
        if partner is None:  # idempotent: deleting twice is fine, and nothing outside the path is touched
            return 200, {"name": name, "deleted": False}
        removed = remove_partner_user(self.iam, name)
        self._record("partner.delete", caller, request_id, name, **removed)
        return 200, {"name": name, "deleted": True}

    def create_upload(self, caller: Caller, request_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        values = _fields(body, ("key",), ("key",))
        key = values["key"]
        problem = upload_key_problem(key)
        if problem:
            raise _invalid("key", problem)
        object_key = STAFF_PREFIX + key
        encryption = {
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-server-side-encryption-aws-kms-key-id": self.dropzone.key_arn,
        }
        uploader = {"x-amz-meta-uploaded-by": caller.name[:200]}
        post = self.s3.generate_presigned_post(
            Bucket=self.dropzone.bucket,
            Key=object_key,
            Fields={**encryption, **uploader},
            Conditions=[
                *({k: v} for k, v in encryption.items()),
                *({k: v} for k, v in uploader.items()),
                ["content-length-range", 1, self.settings.upload_max_bytes],
            ],
            ExpiresIn=self.settings.upload_url_seconds,
        )
        self._record("upload.presign", caller, request_id, None, bucket=self.dropzone.bucket, key=object_key)
        return 200, {
            "url": post["url"],
            "fields": post["fields"],
            "bucket": self.dropzone.bucket,
            "key": object_key,
            "max_bytes": self.settings.upload_max_bytes,
            "expires_in_seconds": self.settings.upload_url_seconds,
        }
