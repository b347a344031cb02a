"""Partner conventions: names, IAM paths, tags, expiry and the policy that confines a partner.

There is no database: a partner *is* an IAM user named after the partner under the path
`/datalake/partners/<silo>/`, and everything else about it lives in the user's tags (who created
it, contact, expiry, allowed CIDRs, keys awaiting retirement), its inline policy, its access keys
and its SSH public keys. Every function that reads or changes partners goes through this module,
so the conventions exist once.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from botocore.exceptions import ClientError

# Matched with `fullmatch`: `$` alone would let a trailing newline through.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
NAME_RULE = "2-63 lowercase letters, digits or hyphens, starting with a letter or digit"

# Staff uploads (`POST /uploads`) live under a prefix no partner name can produce: partner names
# never contain `_`. They used to go to `dropzone/internal/`, which a partner named `internal`
# owned too (issue 12); that prefix keeps its old files until the bucket's lifecycle expires them,
# so partners are denied both, and `internal` is a reserved name.
STAFF_PREFIX = "dropzone/_staff/"
LEGACY_STAFF_PREFIX = "dropzone/internal/"
STAFF_PREFIXES = (STAFF_PREFIX, LEGACY_STAFF_PREFIX)
# Names no new partner may take, and no partner may sign in with (API, console form, SFTP). The
# console's `functions/console/validate.js` holds the same list; a test compares the two.
RESERVED_NAMES = ("internal", "staff")
# What a partner may do to objects of its own prefix: abort included, so a partner can clean up a
# multipart upload that failed (`aws s3 cp` aborts its own on error; parts cost until aborted).
PARTNER_OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload")
# Denied on the staff prefixes: every object read, write, delete and restore, and aborts.
STAFF_DENIED_OBJECT_ACTIONS = ("s3:*Object", "s3:AbortMultipartUpload")

TAG_PARTNER = "datalake:partner"
TAG_SILO = "datalake:silo"
TAG_CREATOR = "datalake:creator"
TAG_CONTACT = "datalake:contact"
TAG_EXPIRES = "datalake:expires"
TAG_CIDRS = "datalake:allowed-cidrs"
# One tag per access key that a rotation with a grace period left active: its deletion time.
TAG_RETIRE_PREFIX = "datalake:retire:"

INLINE_POLICY_NAME = "dropzone-access"
MAX_CIDRS = 10  # the CIDRs are kept in one tag value (256 characters)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the second (tag values and API responses)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> Optional[datetime]:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def name_problem(value: Any) -> Optional[str]:
    """Why `value` is not a valid partner name, or None when it is."""
    if not isinstance(value, str):
        return f"must be a string of {NAME_RULE}"
    if not NAME_PATTERN.fullmatch(value):
        return f"got {value[:80]!r}; use {NAME_RULE}, for example: acme-logistics"
    return None


def reserved_name_problem(value: str) -> Optional[str]:
    """Why `value` may not be a partner's name although it has the right form, or None."""
    if value in RESERVED_NAMES:
        return f"{value!r} is reserved ({', '.join(RESERVED_NAMES)} are); choose another name, for example: acme-logistics"
    return None


def new_name_problem(value: Any) -> Optional[str]:
    """Why `value` cannot name a new partner (form, then the reserved names), or None."""
    return name_problem(value) or reserved_name_problem(value)


CIDR_FORM = re.compile(r"[0-9A-Fa-f.:]+(/[0-9]{1,3})?")


def cidr_problem(values: Any) -> Optional[str]:
    """Why `values` is not a list of IPv4/IPv6 CIDRs, or None when it is."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return 'must be a list of CIDR strings, for example: ["203.0.113.0/24"]'
    if len(values) > MAX_CIDRS:
        return f"got {len(values)} CIDRs; at most {MAX_CIDRS} are allowed"
    if len(" ".join(values)) > 256:
        return "the CIDRs take more than 256 characters together; use fewer, wider blocks"
    for value in values:
        if not CIDR_FORM.fullmatch(value):
            # `ipaddress` also takes netmasks (`/255.0.0.0`) and IPv6 scope ids (`fe80::%eth0/64`),
            # which an `aws:SourceIp` condition does not.
            return f"got {value[:60]!r}, which is not a CIDR block; for example: 203.0.113.0/24"
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            return f"got {value[:60]!r}, which is not a CIDR block; for example: 203.0.113.0/24"
    return None

# IAM's tag value pattern is `[\p{L}\p{Z}\p{N}_.:/=+\-@]*` (botocore's iam model, `tagValueType`).
# Python's `re` has no `\p{..}`, and `\w\s` let control characters through (`\n`, `\t`, U+0085,
# U+001C). Of the separators only spaces (Zs) pass: IAM would also take U+2028/U+2029, which break
# lines in logs and the console.
TAG_VALUE_PUNCTUATION = frozenset("_.:/=+-@")
TAG_VALUE_CATEGORIES = ("L", "N")
TAG_VALUE_RULE = "1-256 letters, digits, spaces or _.:/=+-@ characters"


def is_tag_value(value: Any, *, min_length: int = 1) -> bool:
    """Whether IAM would store `value` as a tag value (and it holds no line separator)."""
    return (
        isinstance(value, str)
        and min_length <= len(value) <= 256
        and all(
            ch in TAG_VALUE_PUNCTUATION
            or unicodedata.category(ch)[0] in TAG_VALUE_CATEGORIES
            or unicodedata.category(ch) == "Zs"
            for ch in value
        )
    )


def tag_value_problem(value: Any, example: str) -> Optional[str]:
    """Why `value` cannot be stored as an IAM tag value, or None."""
    if not is_tag_value(value):
        return f"must be {TAG_VALUE_RULE}; for example: {example}"
    return None


def tag_map(tags: Sequence[Mapping[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags}


def expiry_of(tags: Mapping[str, str]) -> Optional[datetime]:
    return parse_time(tags.get(TAG_EXPIRES, ""))


def is_expired(tags: Mapping[str, str], now: datetime) -> bool:
    """A partner without a readable expiry tag counts as expired: fail closed."""
    expiry = expiry_of(tags)
    return expiry is None or expiry <= now


DEFAULT_NAMESPACE = "datalake"
NAMESPACE_ENV = "DATALAKE_NAMESPACE"


def partner_path(silo: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The IAM path of a silo's partner users: `/datalake/partners/<silo>/`.

    A silo of a named environment has its own namespace (`/datalake-<env>/partners/<silo>/`), so
    that two environments' silos in one account never manage each other's partners.
    """
    return f"/{namespace}/partners/{silo}/"


@dataclass(frozen=True)
class Dropzone:
    """Where one silo's partners live and what they may reach."""

    silo: str
    """The silo name, e.g. `sales`."""
    bucket: str
    """The silo's dropzone bucket name."""
    key_arn: str
    """ARN of the silo's KMS key (the bucket's default encryption key)."""
    namespace: str = DEFAULT_NAMESPACE
    """First part of the partner path (`datalake`, or `datalake-<env>` in a named environment)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Dropzone":
        return cls(
            silo=env["SILO_NAME"], bucket=env["DROPZONE_BUCKET"], key_arn=env["KMS_KEY_ARN"],
            namespace=env.get(NAMESPACE_ENV, DEFAULT_NAMESPACE),
        )

    @property
    def partition(self) -> str:
        return self.key_arn.split(":")[1]

    @property
    def region(self) -> str:
        return self.key_arn.split(":")[3]

    @property
    def user_path(self) -> str:
        return partner_path(self.silo, self.namespace)

    @staticmethod
    def prefix(partner: str) -> str:
        """The partner's key prefix in the dropzone bucket: `dropzone/<partner>/`."""
        return f"dropzone/{partner}/"

    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    def access_policy(self, partner: str, cidrs: Sequence[str] = ()) -> dict[str, Any]:
        """The partner's whole permission: its own prefix of this silo's dropzone, nothing else.

        Used as the partner user's inline policy, as the session policy of `POST .../session` and
        of SFTP sessions. With CIDRs, every S3 call from another address is denied. KMS is not: S3
        calls KMS on the partner's behalf (`kms:ViaService`), and such forwarded calls do not carry
        the partner's source address. It is tied to this bucket by
        the encryption context S3 sends (the bucket ARN with S3 Bucket Keys, else the object ARN).
        The staff prefixes are denied outright, whatever a name turns out to match.
        """
        prefix = self.prefix(partner)
        bucket_arn = self.bucket_arn()
        # The CIDRs appear once, in a Deny, not in each Allow: session policies (STS, Transfer) are
        # capped at 2,048 characters, and a 63-character name with 256 characters of CIDRs must fit.
        outside_cidrs = [
            {
                "Sid": "DenyOutsideAllowedCidrs",
                "Effect": "Deny",
                "Action": ["s3:*"],
                "Resource": ["*"],
                "Condition": {"NotIpAddress": {"aws:SourceIp": list(cidrs)}},
            }
        ] if cidrs else []
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadWriteOwnPrefix",
                    "Effect": "Allow",
                    "Action": list(PARTNER_OBJECT_ACTIONS),
                    "Resource": [f"{bucket_arn}/{prefix}*"],
                },
                {
                    "Sid": "ListOwnPrefix",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": [bucket_arn],
                    "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
                },
                {
                    "Sid": "UseSiloKeyThroughS3",
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                    "Resource": [self.key_arn],
                    # components.shared.iam.kms_via_service's rule (`.amazonaws.com` in every partition);
                    # this package ships inside Lambda functions, without the components.
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"},
                        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]},
                    },
                },
                *outside_cidrs,
                # The legacy staff prefix is `dropzone/internal/`: only a partner named `internal`
                # reaches it, a reserved name, and the boundary denies it to every partner user.
                *staff_deny_statements(bucket_arn, prefixes=(STAFF_PREFIX,)),
            ],
        }


def _concat(*parts: Any) -> str:
    return "".join(parts)


def staff_deny_statements(
    bucket_arn: Any,
    concat: Callable[..., Any] = _concat,
    sid_prefix: str = "",
    prefixes: Sequence[str] = STAFF_PREFIXES,
) -> list[dict[str, Any]]:
    """Explicit Denies on the staff prefixes: their objects, and listings that start there.

    Shared by the partner policy above, the permissions boundary and the session and Transfer
    roles (`components/silo/dropzone_site.py`, which pass `pulumi.Output.concat` for `concat`). An explicit
    Deny wins over any Allow, in a permissions boundary and in a session policy too
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
    """
    listed: list[str] = []
    for prefix in prefixes:
        # `dropzone/_staff*` may match loosely (no partner name has a `_`); `dropzone/internal`
        # must not catch names that merely start alike (`internal-audit`).
        listed += [f"{prefix.rstrip('/')}*"] if prefix == STAFF_PREFIX else [prefix.rstrip("/"), f"{prefix}*"]
    return [
        {
            "Sid": f"{sid_prefix}DenyStaffObjects",
            "Effect": "Deny",
            "Action": list(STAFF_DENIED_OBJECT_ACTIONS),
            "Resource": [concat(bucket_arn, f"/{prefix}*") for prefix in prefixes],
        },
        {
            "Sid": f"{sid_prefix}DenyStaffListing",
            "Effect": "Deny",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket_arn],
            "Condition": {"StringLike": {"s3:prefix": listed}},
        },
    ]


@dataclass(frozen=True)
class PartnerUser:
    """A partner as IAM holds it: the user and its tags."""

    name: str
    arn: str
    path: str
    created: datetime
    tags: dict[str, str]

    @property
    def cidrs(self) -> list[str]:
        value = self.tags.get(TAG_CIDRS, "")
        return [c for c in value.split(" ") if c]


def get_user(iam: Any, name: str) -> Optional[dict[str, Any]]:
    """The IAM user `name`, or None when it does not exist or lies outside what we may read.

    The functions' roles may read users under the partner path only; IAM answers `AccessDenied`
    (not `NoSuchEntity`) for any other name, which here means "not one of our partners".
    """
    try:
        return iam.get_user(UserName=name)["User"]
    except iam.exceptions.NoSuchEntityException:
        return None
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "AccessDenied":
            return None
        raise


def find_partner(iam: Any, dropzone: Dropzone, name: str) -> Optional[PartnerUser]:
    """The partner `name` of this silo, or None (no such user, or a user outside the silo's path).

    Users of the same name under another path (another silo's partner, an unrelated IAM user) are
    not partners of this silo and are never returned.
    """
    if name_problem(name) is not None:
        return None
    user = get_user(iam, name)
    if user is None or user.get("Path") != dropzone.user_path:
        return None
    tags = user.get("Tags")
    if tags is None:  # GetUser returns tags on AWS; some emulators leave them out
        tags = iam.list_user_tags(UserName=name)["Tags"]
    return PartnerUser(
        name=user["UserName"], arn=user["Arn"], path=user["Path"], created=user["CreateDate"], tags=tag_map(tags)
    )


def _users_at(iam: Any, path: str) -> list[dict[str, Any]]:
    """IAM users whose path is exactly `path` (`PathPrefix` also returns deeper paths)."""
    return [
        user
        for page in iam.get_paginator("list_users").paginate(PathPrefix=path)
        for user in page["Users"]
        if user.get("Path") == path
    ]


def list_partners(iam: Any, dropzone: Dropzone) -> list[PartnerUser]:
    """Every partner of this silo, by IAM path, sorted by name."""
    found = [
        PartnerUser(
            name=user["UserName"], arn=user["Arn"], path=user["Path"], created=user["CreateDate"],
            tags=tag_map(iam.list_user_tags(UserName=user["UserName"])["Tags"]),
        )
        for user in _users_at(iam, dropzone.user_path)
    ]
    return sorted(found, key=lambda partner: partner.name)


def remove_partner_user(iam: Any, name: str) -> dict[str, list[str]]:
    """Deletes a partner user and everything attached to it; returns the ids and names removed.

    The one removal of a partner: `DELETE /partners/{name}` and the runner's revocation of a
    retiring silo both call it. Every access key and SSH key is made inactive first, so a step that
    fails later leaves a partner that can no longer sign in, rather than one with working keys.
    Each part may already be gone (a concurrent delete): a missing user ends the removal quietly;
    any other error (e.g. `AccessDenied`) propagates, and the caller must treat the partner as
    still present.
    """
    missing = iam.exceptions.NoSuchEntityException
    removed: dict[str, list[str]] = {"access_key_ids": [], "ssh_key_ids": [], "policies": [], "login_profile": []}
    try:
        keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        ssh_keys = iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"]
        for key in keys:
            if key["Status"] == "Active":
                iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
        for ssh in ssh_keys:
            if ssh["Status"] == "Active":
                iam.update_ssh_public_key(UserName=name, SSHPublicKeyId=ssh["SSHPublicKeyId"], Status="Inactive")
        for key in keys:
            iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
            removed["access_key_ids"].append(key["AccessKeyId"])
        for ssh in ssh_keys:
            iam.delete_ssh_public_key(UserName=name, SSHPublicKeyId=ssh["SSHPublicKeyId"])
            removed["ssh_key_ids"].append(ssh["SSHPublicKeyId"])
        try:  # the API never creates one; a partner given a console password by hand would keep it
            iam.delete_login_profile(UserName=name)
            removed["login_profile"].append(name)
        except missing:
            pass
        for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
            iam.delete_user_policy(UserName=name, PolicyName=policy)
            removed["policies"].append(policy)
        for attached in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
            iam.detach_user_policy(UserName=name, PolicyArn=attached["PolicyArn"])
            removed["policies"].append(attached["PolicyArn"])
        iam.delete_user(UserName=name)
    except missing:
        pass
    return removed


def revoke_silo_partners(iam: Any, silo: str, namespace: str = DEFAULT_NAMESPACE) -> dict[str, dict[str, list[str]]]:
    """Removes every partner user of `silo` (`remove_partner_user` each); returns partner → what went.

    Only users whose path is exactly `partner_path(silo)` are touched: another silo's partners and
    every other IAM user of the account stay. Raises on the first error, leaving the partners not
    yet reached in place (a rerun finishes the job: removal is idempotent).
    """
    return {user["UserName"]: remove_partner_user(iam, user["UserName"]) for user in _users_at(iam, partner_path(silo, namespace))}
