"""Entry point of the policy pack: `pulumi preview --policy-pack policy`.

Constructing `PolicyPack` starts the analyzer's gRPC server and blocks, so only this file does it;
the rules live in `rules.py` (and the area modules it lists), importable by tests and
`offline/policy_check.py`.
"""

import sys
from pathlib import Path

# The CLI runs this directory as the program: make the `policy` package (whose modules import each
# other) importable from the project root, however the pack was started.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack  # noqa: E402

from policy.rules import ENFORCEMENT, POLICIES  # noqa: E402

PolicyPack(
    name="datalake-security",
    enforcement_level=ENFORCEMENT,
    policies=POLICIES,
    description="Security baseline of the multi-account data lake (see docs/policy-pack.md).",
)
