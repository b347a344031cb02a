"""`SiloContext`: what every component of one silo shares, passed whole instead of field by field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import pulumi

from .environments import NAMESPACE as DEFAULT_NAMESPACE
from .iam import AccountContext


@dataclass(frozen=True)
class SiloContext:
    """Where a silo component lives and what it shares with its siblings: the account (partition,
    region), the names, the silo key and the tags. `SiloAccount` builds one; a component used on its
    own needs only the account and the two names."""

    account: AccountContext
    """The silo account: its id, partition and region."""
    name_prefix: str
    """Prefix of physical names, e.g. `datalake` (`datalake-<env>` in environment `<env>`)."""
    silo_name: str
    """Short silo name, e.g. `sales`."""
    key_arn: Optional[pulumi.Input[str]] = None
    """The silo's KMS key (from `SiloStorage`), which encrypts its buckets, logs and secrets; None
    before the key exists (the storage component creates it)."""
    namespace: str = DEFAULT_NAMESPACE
    """First part of log-group names and IAM paths that carry no prefix: `datalake`, or `datalake-<env>`."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of every resource that takes tags (default none)."""

    @property
    def base_name(self) -> str:
        """`<prefix>-<silo>`, the start of every physical name."""
        return f"{self.name_prefix}-{self.silo_name}"

    @property
    def key(self) -> pulumi.Input[str]:
        """The silo key's ARN; a component that encrypts with it cannot be built before the key."""
        if self.key_arn is None:
            raise ValueError(f"SiloContext of silo {self.silo_name!r} has no key_arn; pass the silo key (SiloStorage.key.arn)")
        return self.key_arn

    def with_key(self, key_arn: pulumi.Input[str]) -> "SiloContext":
        """The same silo, with its key."""
        return dataclasses.replace(self, key_arn=key_arn)
