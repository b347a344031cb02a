"""Organizations ARNs parsed against the IAM Service Authorization Reference (parliament's copy).

The reference gives each Organizations resource type an ARN template, e.g.
`arn:${Partition}:organizations::${Account}:ou/o-${OrganizationId}/ou-${OrganizationalUnitId}`,
where `${Account}` is the management account ("The organization and the organizational unit ARNs
contain the 12-digit management account number"). A policy may put `*` in an id, never in the
account. `parse` answers which resource type an ARN is and which account it names.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


@dataclass(frozen=True)
class OrganizationsArn:
    resource_type: str
    """`account`, `organization`, `organizationalunit`, `root`, `policy`, `handshake`, ..."""
    partition: str
    account: str


@lru_cache(maxsize=1)
def _templates() -> tuple[tuple[str, re.Pattern[str]], ...]:
    import parliament

    with open(os.path.join(os.path.dirname(parliament.__file__), "iam_definition.json")) as handle:
        (service,) = [s for s in json.load(handle) if s["prefix"] == "organizations"]
    patterns = []
    for resource in service["resources"]:
        parts = re.split(r"(\$\{\w+\})", resource["arn"])
        regex = ""
        for part in parts:
            if part == "${Partition}":
                regex += f"(?P<partition>{'|'.join(map(re.escape, PARTITIONS))})"
            elif part == "${Account}":
                regex += r"(?P<account>\d{12})"
            elif part.startswith("${"):
                regex += r"[A-Za-z0-9_*-]+"  # ids (a policy may wildcard them)
            else:
                regex += re.escape(part)
        patterns.append((resource["resource"], re.compile(f"^{regex}$")))
    return tuple(patterns)


def parse(arn: str) -> Optional[OrganizationsArn]:
    """The Organizations resource `arn` names, or None when it matches no resource type's format."""
    for resource_type, pattern in _templates():
        match = pattern.match(arn)
        if match:
            return OrganizationsArn(resource_type, match["partition"], match.groupdict().get("account") or "aws")
    return None
