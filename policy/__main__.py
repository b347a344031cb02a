"""Entry point of the policy pack: `pulumi preview --policy-pack policy`.

Constructing `PolicyPack` starts the analyzer's gRPC server and blocks, so only this file does it;
the rules live in `rules.py`, importable by tests and `offline/policy_check.py`.
"""

import sys
from pathlib import Path

# The CLI runs this directory as the program; make `rules` importable either way.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulumi_policy import PolicyPack  # noqa: E402

from rules import ENFORCEMENT, POLICIES  # noqa: E402

PolicyPack(
    name="datalake-security",
    enforcement_level=ENFORCEMENT,
    policies=POLICIES,
    description="Security baseline of the multi-account data lake (see docs/policy-pack.md).",
)
