"""Service roles with one inline policy: the shape every data-flow component needs several times."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from .iam import Statement, policy_json


def role_with_policy(
    name: str,
    *,
    role_name: str,
    trust_policy: pulumi.Input[str],
    statements: Sequence[Statement],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """`<name>-role` and its inline `<name>-policy`.

    Resources that the role must already be able to act for (a Firehose stream, a crawler) should
    depend on the returned policy, not only on the role: AWS checks the permissions at creation.
    """
    role = aws.iam.Role(f"{name}-role", name=role_name, assume_role_policy=trust_policy, tags=tags, opts=opts)
    policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy_json(statements), opts=opts)
    return role, policy
