"""Adopting retained resources: import what a retired silo left behind instead of creating it again.

A retire-destroy keeps a silo's buckets, key, alias, audit log group and partner boundary policy
(`retain_on_delete`). When the account comes back, creating them again fails with AlreadyExists
(the physical names are the same). The runner passes their ids as `datalake:adopt`
(`<type>::<logical name>` → provider id, read from the retired stack's export), and each component
asks `Adoption.options` for the options of its retained resources: an id found there becomes
`import_`, so the engine imports the resource instead of creating it. Nothing else changes - not the
type, not the name, not the parent - so every URN stays what it was.

Pulumi imports a resource only when the program's inputs match what exists: otherwise the import
fails with a diff and the `up` stops (see docs/runner.md, "Accounts that come back").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

import pulumi


@dataclass(frozen=True)
class Adoption:
    """Retained resources to import: `<type>::<logical name>` → provider id (default: none)."""

    ids: Mapping[str, str] = field(default_factory=dict)
    _claimed: set[str] = field(default_factory=set, compare=False, repr=False)

    def options(self, type_token: str, name: str, opts: Optional[pulumi.ResourceOptions] = None) -> pulumi.ResourceOptions:
        """`opts`, plus `import_=<id>` when the resource `type_token::name` is to be adopted."""
        key = f"{type_token}::{name}"
        found = self.ids.get(key)
        if found is None:
            return opts or pulumi.ResourceOptions()
        self._claimed.add(key)
        return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(import_=found))

    def unclaimed(self) -> list[str]:
        """Keys no resource asked for: retained resources this program no longer declares."""
        return sorted(set(self.ids) - self._claimed)


NO_ADOPTION = Adoption()
