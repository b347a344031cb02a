"""AWS Transfer Family custom identity provider for the dropzone's SFTP server.

A partner logs in with its partner name as user name and either
- its secret access key as password: the handler tries the pair against STS
  (`GetCallerIdentity` signed with each of the partner's active key ids and that secret) and accepts
  it only when STS answers with the partner's own user ARN; or
- an SSH key: with no password, the handler returns the partner's active SSH public keys
  (uploaded with `iam:UploadSSHPublicKey`) and Transfer checks the client's key against them.

Either way the partner must be this silo's (its IAM path), not under a reserved name
(`dropzone_partners.partners.RESERVED_NAMES`), not expired, and, when the partner has
allowed CIDRs, connect from one of them (checked here: Transfer's own S3 calls do not carry the
client's address, so an `aws:SourceIp` condition in the session policy could not do it).

On success the response chroots the partner to `/<bucket>/dropzone/<partner>` (logical home
directory) with a session policy narrowed to that prefix. On any failure the response is empty,
which Transfer treats as access denied; the reason is logged, the password never.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Optional

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from dropzone_partners.partners import (
    Dropzone,
    PartnerUser,
    find_partner,
    is_expired,
    name_problem,
    reserved_name_problem,
    utc_now,
)

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)

StsFactory = Callable[[str, str], Any]


class Denied(Exception):
    """Authentication failed; the message is the logged reason (never holds the password)."""


def _source_allowed(partner: PartnerUser, source_ip: Any) -> bool:
    if not partner.cidrs:
        return True
    try:
        address = ipaddress.ip_address(str(source_ip))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr) for cidr in partner.cidrs)


def _password_matches(iam: Any, sts_for: StsFactory, partner: PartnerUser, password: str) -> bool:
    for key in iam.list_access_keys(UserName=partner.name)["AccessKeyMetadata"]:
        if key["Status"] != "Active":
            continue
        try:
            arn = sts_for(key["AccessKeyId"], password).get_caller_identity()["Arn"]
        except (ClientError, BotoCoreError):
            continue
        if arn == partner.arn:
            return True
    return False


def _public_keys(iam: Any, partner: PartnerUser) -> list[str]:
    bodies = []
    for ssh in iam.list_ssh_public_keys(UserName=partner.name)["SSHPublicKeys"]:
        if ssh["Status"] == "Active":
            key = iam.get_ssh_public_key(UserName=partner.name, SSHPublicKeyId=ssh["SSHPublicKeyId"], Encoding="SSH")
            bodies.append(key["SSHPublicKey"]["SSHPublicKeyBody"])
    return bodies


def authenticate(
    event: Mapping[str, Any],
    *,
    iam: Any,
    sts_for: StsFactory,
    dropzone: Dropzone,
    role_arn: str,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """The Transfer identity-provider response for `event`, or raises `Denied` with the reason."""
    if not isinstance(event, Mapping):
        raise Denied("event is not an object")
    username = event.get("username")
    if name_problem(username) is not None:
        raise Denied("user name is not a partner name")
    if reserved_name_problem(username) is not None:
        # A partner created under `internal` before the name was reserved would get the old staff prefix as home.
        raise Denied("user name is reserved")
    if event.get("protocol", "SFTP") != "SFTP":
        raise Denied(f"protocol {str(event.get('protocol'))[:10]!r} is not SFTP")
    password = event.get("password") or ""
    if not isinstance(password, str):
        raise Denied("password is not a string")
    partner = find_partner(iam, dropzone, username)
    if partner is None:
        raise Denied("no partner of this name in this silo")
    if is_expired(partner.tags, clock()):
        raise Denied("partner expired")
    if not _source_allowed(partner, event.get("sourceIp")):
        raise Denied("source address outside the partner's allowed CIDRs")

    response: dict[str, Any] = {
        "Role": role_arn,
        "HomeDirectoryType": "LOGICAL",
        "HomeDirectoryDetails": json.dumps(
            [{"Entry": "/", "Target": f"/{dropzone.bucket}/{dropzone.prefix(partner.name).rstrip('/')}"}]
        ),
        "Policy": json.dumps(dropzone.access_policy(partner.name), separators=(",", ":")),
    }
    if password:
        if not _password_matches(iam, sts_for, partner, password):
            raise Denied("password does not match an active access key of the partner")
    else:
        keys = _public_keys(iam, partner)
        if not keys:
            raise Denied("no password and no active SSH public key")
        response["PublicKeys"] = keys
    return response


def identify(event: Any, **kwargs: Any) -> dict[str, Any]:
    """`authenticate`, with every failure turned into the empty (denied) response and one log line."""
    username = event.get("username") if isinstance(event, Mapping) else None
    source = event.get("sourceIp") if isinstance(event, Mapping) else None
    try:
        response = authenticate(event, **kwargs)
    except Denied as denied:
        LOG.info(json.dumps({"outcome": "denied", "reason": str(denied), "username": str(username)[:64], "source_ip": str(source)[:45]}))
        return {}
    except Exception as exc:  # noqa: BLE001 - Transfer must get "denied", never a crash
        LOG.error(json.dumps({"outcome": "error", "error": type(exc).__name__, "username": str(username)[:64]}))
        return {}
    method = "password" if "PublicKeys" not in response else "ssh-key"
    LOG.info(json.dumps({"outcome": "allowed", "method": method, "username": username, "source_ip": str(source)[:45]}))
    return response


def sts_factory(region: str, session: Optional[Any] = None) -> StsFactory:
    """Builds STS clients signed with a given key pair and nothing else of the Lambda's identity.

    One boto3 session is shared, so each login pays for a client, not for loading the service
    model again; no client (and so no secret) outlives the login it was made for.
    """
    shared = session or boto3.session.Session()

    def make(access_key_id: str, secret: str) -> Any:
        return shared.client("sts", region_name=region, aws_access_key_id=access_key_id, aws_secret_access_key=secret)

    return make


_IAM: Optional[Any] = None
_STS_FOR: Optional[StsFactory] = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Transfer Family `AWS_LAMBDA` identity provider entry point."""
    global _IAM, _STS_FOR
    dropzone = Dropzone.from_env(os.environ)
    if _IAM is None or _STS_FOR is None:
        _IAM, _STS_FOR = boto3.client("iam"), sts_factory(dropzone.region)
    return identify(event, iam=_IAM, sts_for=_STS_FOR, dropzone=dropzone, role_arn=os.environ["TRANSFER_ROLE_ARN"])
