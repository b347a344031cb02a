"""parliament, the offline IAM linter, over one policy document: the project's one way to call it."""

from __future__ import annotations

import json
from typing import Any

from parliament import analyze_policy_string


# Actions whose resource types parliament's IAM definition (1.6.4) lists incompletely. The Athena API
# reference says TagResource/UntagResource/ListTagsForResource act on "workgroups, data catalogs, or
# capacity reservations"; parliament knows only workgroups and capacity reservations, so a statement
# on `datacatalog/...` is reported as a mismatch that AWS does not make.
DEFINITION_GAPS = {
    "athena:TagResource": "datacatalog/",
    "athena:UntagResource": "datacatalog/",
    "athena:ListTagsForResource": "datacatalog/",
}


def _definition_gap(detail: Any, statements: list[dict[str, Any]]) -> bool:
    """A RESOURCE_MISMATCH only because of `DEFINITION_GAPS`: every action named is a gap and its statement's resources are of the missing type."""
    if not isinstance(detail, list) or not detail:
        return False
    for item in detail:
        gap = DEFINITION_GAPS.get(item.get("action", "")) if isinstance(item, dict) else None
        if gap is None:
            return False
        owners = [s for s in statements if item["action"] in (s.get("Action") if isinstance(s.get("Action"), list) else [s.get("Action")])]
        resources = [r for s in owners for r in (s.get("Resource") if isinstance(s.get("Resource"), list) else [s.get("Resource")])]
        if not resources or not all(isinstance(r, str) and r.split(":", 5)[-1].startswith(gap) for r in resources):
            return False
    return True


def parliament_findings(document: dict[str, Any], *, key_policy: bool = False, trust_policy: bool = False) -> list[str]:
    """Findings of parliament on `document`, as `ISSUE detail` lines (empty: clean).

    Resource policies (with Principal) are linted statement by statement as identity policies would
    be: parliament does not model principals. A key policy's `Resource: "*"` means "this key", and a
    trust policy names no Resource (the role is the resource); those two findings are not defects.
    """
    stripped = {
        "Version": document["Version"],
        "Statement": [{k: v for k, v in s.items() if k != "Principal"} for s in document["Statement"]],
    }
    findings = []
    for finding in analyze_policy_string(json.dumps(stripped), ignore_private_auditors=True).findings:
        if key_policy and finding.issue == "RESOURCE_STAR":
            continue
        if trust_policy and finding.issue == "MALFORMED" and "neither Resource" in str(finding.detail):
            continue
        if finding.issue == "RESOURCE_MISMATCH" and _definition_gap(finding.detail, stripped["Statement"]):
            continue
        findings.append(f"{finding.issue} {finding.detail}")
    return findings
