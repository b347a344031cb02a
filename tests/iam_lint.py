"""parliament over one policy document, for tests that build policies outside a program recording.

A thin front of `offline.iam_lint.lint` (the strict linter every program policy passes, with its
documented allowances), so there is one way to call parliament and one set of allowances.
"""

from __future__ import annotations

from typing import Any, Optional

from offline.iam_lint import IDENTITY, KEY, RESOURCE, TRUST, PolicyDocument, lint


def parliament_findings(
    document: dict[str, Any], *, key_policy: bool = False, trust_policy: bool = False, attached_to: Optional[str] = None
) -> list[str]:
    """Findings on `document` as `ISSUE detail` lines (empty: clean).

    A key policy is linted on its key, a trust policy on its role (`attached_to`, else any key or
    role ARN); a document whose statements name a Principal is a resource policy.
    """
    if key_policy:
        kind = KEY
    elif trust_policy:
        kind = TRUST
    elif any("Principal" in s or "NotPrincipal" in s for s in document["Statement"]):
        kind = RESOURCE
    else:
        kind = IDENTITY
    return [f"{f.issue} {f.detail}" for f in lint(PolicyDocument("test", kind, document, attached_to))]
