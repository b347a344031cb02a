"""Service roles with one inline policy: the shape the dropzone, SFTP and data-flow components all need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import pulumi
import pulumi_aws as aws

from .iam import Statement, policy_json


def role_with_policy(
    name: str,
    physical_name: str,
    trust_policy: pulumi.Input[str],
    statements: Sequence[Statement],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    description: Optional[str] = None,
    max_session_duration: Optional[int] = None,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """A role `<name>-role` and its one inline policy `<name>-policy`.

    Resources that the role must already be able to act for (a Firehose stream, a crawler) should
    depend on the returned policy, not only on the role: AWS checks the permissions at creation.
    """
    role = aws.iam.Role(
        f"{name}-role",
        name=physical_name[:64],
        description=description,
        assume_role_policy=trust_policy,
        max_session_duration=max_session_duration,
        tags=tags,
        opts=opts,
    )
    policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy_json(statements), opts=opts)
    return role, policy
