"""Scheduled janitor of the dropzone: expired partners lose their keys, retired keys are deleted.

Runs on an EventBridge schedule. For every partner of the silo:
- expired (or without a readable expiry): every active access key and SSH key is deactivated
  (not deleted, so an admin can still see what the partner had; `DELETE /partners/{name}` removes it);
- a key whose rotation grace period has ended (tag `datalake:retire:<key id>`) is deleted.
Each change writes one audit record; the function returns a report of what it did.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any, Optional

import boto3

from dropzone_partners.partners import (
    TAG_RETIRE_PREFIX,
    Dropzone,
    PartnerUser,
    is_expired,
    list_partners,
    parse_time,
    utc_now,
)

from .audit import AuditLog

ACTOR = "janitor"


def retire_due_keys(iam: Any, partner: PartnerUser, now: datetime) -> list[str]:
    """Deletes the partner's keys whose rotation grace period has ended; returns their ids."""
    retired = []
    for tag_key, value in partner.tags.items():
        if not tag_key.startswith(TAG_RETIRE_PREFIX):
            continue
        deadline = parse_time(value)
        if deadline is not None and deadline > now:
            continue
        key_id = tag_key[len(TAG_RETIRE_PREFIX):]
        try:
            iam.delete_access_key(UserName=partner.name, AccessKeyId=key_id)
            retired.append(key_id)
        except iam.exceptions.NoSuchEntityException:
            pass
        iam.untag_user(UserName=partner.name, TagKeys=[tag_key])
    return retired


def deactivate_partner(iam: Any, partner: PartnerUser) -> dict[str, list[str]]:
    """Sets every active access key and SSH key of the partner to Inactive; returns their ids."""
    done: dict[str, list[str]] = {"access_key_ids": [], "ssh_key_ids": []}
    for key in iam.list_access_keys(UserName=partner.name)["AccessKeyMetadata"]:
        if key["Status"] == "Active":
            iam.update_access_key(UserName=partner.name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
            done["access_key_ids"].append(key["AccessKeyId"])
    for ssh in iam.list_ssh_public_keys(UserName=partner.name)["SSHPublicKeys"]:
        if ssh["Status"] == "Active":
            iam.update_ssh_public_key(UserName=partner.name, SSHPublicKeyId=ssh["SSHPublicKeyId"], Status="Inactive")
            done["ssh_key_ids"].append(ssh["SSHPublicKeyId"])
    return done


def run(
    iam: Any, audit: AuditLog, dropzone: Dropzone, request_id: str, clock: Callable[[], datetime] = utc_now
) -> dict[str, Any]:
    """One janitor pass; returns `{"checked", "deactivated": [...], "retired": [...]}`."""
    now = clock()
    report: dict[str, Any] = {"checked": 0, "deactivated": [], "retired": []}
    for partner in list_partners(iam, dropzone):
        report["checked"] += 1
        retired = retire_due_keys(iam, partner, now)
        if retired:
            report["retired"].append({"partner": partner.name, "access_key_ids": retired})
            audit.record("partner.key.retire", actor=ACTOR, request_id=request_id, partner=partner.name,
                         details={"access_key_ids": retired})
        if is_expired(partner.tags, now):
            done = deactivate_partner(iam, partner)
            if done["access_key_ids"] or done["ssh_key_ids"]:
                report["deactivated"].append({"partner": partner.name, **done})
                audit.record("partner.expire", actor=ACTOR, request_id=request_id, partner=partner.name, details=done)
    return report


def handler(event: dict[str, Any], context: Any, session: Optional[Any] = None) -> dict[str, Any]:
    """EventBridge scheduled entry point."""
    session = session or boto3.session.Session()
    dropzone = Dropzone.from_env(os.environ)
    audit = AuditLog(session.client("logs", region_name=dropzone.region), os.environ["AUDIT_LOG_GROUP"], source="janitor")
    request_id = getattr(context, "aws_request_id", None) or event.get("id", "manual")
    report = run(session.client("iam"), audit, dropzone, request_id)
    print(f"janitor: checked {report['checked']} partners, deactivated {len(report['deactivated'])}, "
          f"retired keys of {len(report['retired'])}")
    return report
