"""parliament, the offline IAM linter, over one policy document: the project's one way to call it."""

from __future__ import annotations

import json
from typing import Any

from parliament import analyze_policy_string


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
        findings.append(f"{finding.issue} {finding.detail}")
    return findings
