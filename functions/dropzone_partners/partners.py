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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from botocore.exceptions import ClientError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
NAME_RULE = "2-63 lowercase letters, digits or hyphens, starting with a letter or digit"

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
    if not NAME_PATTERN.match(value):
        return f"got {value[:80]!r}; use {NAME_RULE}, for example: acme-logistics"
    return None


def cidr_problem(values: Any) -> Optional[str]:
    """Why `values` is not a list of IPv4/IPv6 CIDRs, or None when it is."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return 'must be a list of CIDR strings, for example: ["203.0.113.0/24"]'
    if len(values) > MAX_CIDRS:
        return f"got {len(values)} CIDRs; at most {MAX_CIDRS} are allowed"
    if len(" ".join(values)) > 256:
        return "the CIDRs take more than 256 characters together; use fewer, wider blocks"
    for value in values:
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            return f"got {value[:60]!r}, which is not a CIDR block; for example: 203.0.113.0/24"
    return None


# IAM tag values allow letters, digits, spaces and _.:/=+-@ only.
TAG_VALUE_PATTERN = re.compile(r"^[\w\s.:/=+\-@]{1,256}$")


def tag_value_problem(value: Any, example: str) -> Optional[str]:
    """Why `value` cannot be stored as an IAM tag value, or None."""
    if not isinstance(value, str) or not TAG_VALUE_PATTERN.match(value):
        return f"must be 1-256 letters, digits, spaces or _.:/=+-@ characters; for example: {example}"
    return None


def tag_map(tags: Sequence[Mapping[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags}


def expiry_of(tags: Mapping[str, str]) -> Optional[datetime]:
    return parse_time(tags.get(TAG_EXPIRES, ""))


def is_expired(tags: Mapping[str, str], now: datetime) -> bool:
    """A partner without a readable expiry tag counts as expired: fail closed."""
    expiry = expiry_of(tags)
    return expiry is None or expiry <= now


def partner_path(silo: str) -> str:
    """The IAM path of a silo's partner users: `/datalake/partners/<silo>/`."""
    return f"/datalake/partners/{silo}/"


@dataclass(frozen=True)
class Dropzone:
    """Where one silo's partners live and what they may reach."""

    silo: str
    """The silo name, e.g. `sales`."""
    bucket: str
    """The silo's dropzone bucket name."""
    key_arn: str
    """ARN of the silo's KMS key (the bucket's default encryption key)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Dropzone":
        return cls(silo=env["SILO_NAME"], bucket=env["DROPZONE_BUCKET"], key_arn=env["KMS_KEY_ARN"])

    @property
    def partition(self) -> str:
        return self.key_arn.split(":")[1]

    @property
    def region(self) -> str:
        return self.key_arn.split(":")[3]

    @property
    def user_path(self) -> str:
        return partner_path(self.silo)

    @staticmethod
    def prefix(partner: str) -> str:
        """The partner's key prefix in the dropzone bucket: `dropzone/<partner>/`."""
        return f"dropzone/{partner}/"

    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    def access_policy(self, partner: str, cidrs: Sequence[str] = ()) -> dict[str, Any]:
        """The partner's whole permission: its own prefix of this silo's dropzone, nothing else.

        Used as the partner user's inline policy, as the session policy of `POST .../session` and
        of SFTP sessions. With CIDRs, the S3 statements only apply from those addresses. The KMS
        statement has no IP condition: S3 calls KMS on the partner's behalf (`kms:ViaService`), and
        such forwarded calls do not carry the partner's source address.
        """
        prefix = self.prefix(partner)
        ip_condition = {"IpAddress": {"aws:SourceIp": list(cidrs)}} if cidrs else {}
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadWriteOwnPrefix",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:GetObject"],
                    "Resource": [f"{self.bucket_arn()}/{prefix}*"],
                    **({"Condition": ip_condition} if cidrs else {}),
                },
                {
                    "Sid": "ListOwnPrefix",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": [self.bucket_arn()],
                    "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}, **ip_condition},
                },
                {
                    "Sid": "UseSiloKeyThroughS3",
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                    "Resource": [self.key_arn],
                    # components.iam.kms_via_service's rule (`.amazonaws.com` in every partition);
                    # this package ships inside Lambda functions, without the components.
                    "Condition": {"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"}},
                },
            ],
        }


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


def revoke_silo_partners(iam: Any, silo: str) -> dict[str, dict[str, list[str]]]:
    """Removes every partner user of `silo` (`remove_partner_user` each); returns partner → what went.

    Only users whose path is exactly `partner_path(silo)` are touched: another silo's partners and
    every other IAM user of the account stay. Raises on the first error, leaving the partners not
    yet reached in place (a rerun finishes the job: removal is idempotent).
    """
    return {user["UserName"]: remove_partner_user(iam, user["UserName"]) for user in _users_at(iam, partner_path(silo))}
