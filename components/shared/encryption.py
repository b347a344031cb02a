"""`EncryptionKey`: a customer-managed KMS key with rotation, an alias and an explicit key policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .adoption import NO_ADOPTION, Adoption
from .iam import AccountContext, Statement, policy_json, statement


def key_admin_statement(account: AccountContext) -> Statement:
    """Lets the owning account's IAM policies govern the key (AWS's default key policy statement).

    Without it a key policy that forgets an admin makes the key unmanageable. In a key policy,
    `Resource: "*"` means "this key", not every resource.
    """
    return statement(
        "EnableAccountIamPolicies",
        "kms:*",
        "*",
        principal={"AWS": account.root_principal()},
    )


@dataclass(frozen=True)
class EncryptionKeyArgs:
    """Arguments of `EncryptionKey`."""

    account: AccountContext
    """The account that owns the key; its root principal administers it through IAM."""
    alias: str
    """Alias name without the `alias/` prefix, e.g. `datalake-sales`."""
    description: str
    """What the key protects, shown in the KMS console."""
    policy_statements: Sequence[Statement] = ()
    """Extra key policy statements (cross-account or service grants), each with a Sid. Default none."""
    deletion_window_days: int = 30
    """Waiting period before a scheduled deletion takes effect (default 30, the maximum)."""
    retain_on_delete: bool = True
    """Keep the key when the stack is destroyed (default True): retained buckets stay readable."""
    adoption: Adoption = NO_ADOPTION
    """Retained key and alias of a returning silo to import instead of create (default none)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of the key (default none)."""


class EncryptionKey(pulumi.ComponentResource):
    """A symmetric KMS key with yearly rotation, an alias and a key policy built from statements.

    The key is retained on stack destruction by default: deleting it would make every retained
    SSE-KMS object unreadable 30 days later.
    """

    key: aws.kms.Key
    alias: aws.kms.Alias
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: EncryptionKeyArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:encryption:EncryptionKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_on_delete)

        self.key = aws.kms.Key(
            f"{name}-key",
            description=args.description,
            enable_key_rotation=True,
            deletion_window_in_days=args.deletion_window_days,
            policy=policy_json([key_admin_statement(args.account), *args.policy_statements]),
            tags=args.tags,
            opts=args.adoption.options("aws:kms/key:Key", f"{name}-key", child),
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{args.alias}",
            target_key_id=self.key.key_id,
            opts=args.adoption.options("aws:kms/alias:Alias", f"{name}-alias", child),
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.key.arn, "alias": self.alias.name})
