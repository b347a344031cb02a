"""Runs the policy pack's rules over a `Recording`, in-process: no CLI, no analyzer server.

Each recorded resource becomes the `ResourceValidationArgs` the engine would send (camelCase inputs,
URN, name, parent) and the whole recording one `StackValidationArgs` (with dependencies). Used by the
tests and by `python -m offline.policy_check`, which checks the shipped master and silo programs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import Policy

from .harness import RecordedResource, Recording


@dataclass(frozen=True)
class Violation:
    policy: str
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.policy}] {self.urn}: {self.message}"


def _options(resource: RecordedResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], resource.parent or None)


def resource_args(resource: RecordedResource, config: Optional[Mapping[str, Any]] = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource.type, resource.inputs, resource.urn, resource.name, _options(resource), None, dict(config or {})
    )


def stack_args(recording: Recording, config: Optional[Mapping[str, Any]] = None) -> StackValidationArgs:
    resources = {
        r.urn: PolicyResource(r.type, r.outputs or r.inputs, r.urn, r.name, _options(r), None, None, [], {})
        for r in recording.resources
    }
    for recorded in recording.resources:
        resource = resources[recorded.urn]
        resource.parent = resources.get(recorded.parent)
        resource.dependencies = [resources[d] for d in recorded.dependencies if d in resources]
    return StackValidationArgs(list(resources.values()), dict(config or {}))


def check(
    recording: Recording,
    policies: Sequence[Policy],
    config: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> list[Violation]:
    """Every violation any of `policies` reports; `config` maps policy name → its config."""
    config = config or {}
    found: list[Violation] = []
    for policy in policies:
        policy_config = config.get(policy.name, {})
        if isinstance(policy, StackValidationPolicy):
            policy.validate(
                stack_args(recording, policy_config),
                lambda message, urn=None, name=policy.name: found.append(Violation(name, urn or "<stack>", message)),
            )
        elif isinstance(policy, ResourceValidationPolicy):
            for resource in recording.resources:
                policy.validate(
                    resource_args(resource, policy_config),
                    lambda message, urn=None, name=policy.name, at=resource.urn: found.append(Violation(name, at, message)),
                )
    return found


def pack_config(master_account_id: str) -> dict[str, dict[str, Any]]:
    """The pack config every stack of the project is checked with (`--policy-pack-config` JSON)."""
    return {"resource-policy-org-scoped": {"masterAccountId": master_account_id}}


def main() -> int:
    from policy.rules import POLICIES

    from .harness import MASTER_ACCOUNT_ID
    from .stacks import run_master, run_silo

    # One config for every stack: the master's account is the master stack's home and the one
    # account a silo may name besides its own.
    config = pack_config(MASTER_ACCOUNT_ID)
    total = 0
    for label, recording in (("master", run_master()), ("silo", run_silo())):
        violations = check(recording, POLICIES, config)
        total += len(violations)
        print(f"{label}: {len(recording.resources)} resources, {len(POLICIES)} policies, {len(violations)} violations")
        for violation in violations:
            print(f"  {violation}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
