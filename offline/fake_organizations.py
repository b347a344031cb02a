"""An in-memory Organizations client for fleets too large for moto to build quickly (`bench/fleet.py`).

It answers the five read calls discovery makes, the way the service does: pages of at most 20
accounts (`ListAccountsForParent`'s and `ListOrganizationalUnitsForParent`'s `MaxResults` ceiling),
a `NextToken` between pages, `AccountNotFoundException` / `ChildNotFoundException` for ids it does
not know. Every call's parameters are checked against botocore's model of the operation (unknown or
missing members raise `ParamValidationError`, as boto3 would), and each call may take a simulated
latency (`latency` seconds, through an injectable `sleep`). `tests/test_fake_organizations.py`
holds it to moto: the same organization gives the same discovery and the same calls per operation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import botocore.session
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator

PAGE = 20

_MODEL = botocore.session.get_session().get_service_model("organizations")


@dataclass
class FakeAccount:
    id: str
    name: str
    parent: str
    state: str = "ACTIVE"
    tags: dict[str, str] = field(default_factory=dict)


class FakeOrganizations:
    """`FakeOrganizations(ous={ou_id: (name, parent_id)}, accounts=[FakeAccount, ...])`."""

    def __init__(self, ous: Mapping[str, tuple[str, str]], accounts: Iterable[FakeAccount], *, latency: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.ous = dict(ous)
        self.accounts = {a.id: a for a in accounts}
        self.latency = latency
        self.sleep = sleep
        self._lock = threading.Lock()
        self._validator = ParamValidator()

    # -- changes the bench makes between runs (not API calls) --

    def add_account(self, account: FakeAccount) -> None:
        with self._lock:
            self.accounts[account.id] = account

    def set_tags(self, account_id: str, tags: Mapping[str, str]) -> None:
        with self._lock:
            self.accounts[account_id].tags = dict(tags)

    # -- the API --

    def _enter(self, operation: str, params: dict[str, Any]) -> None:
        report = self._validator.validate(params, _MODEL.operation_model(operation).input_shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())
        if self.latency:
            self.sleep(self.latency)

    @staticmethod
    def _error(code: str, message: str, operation: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message}}, operation)

    def _page(self, items: list[Any], token: Optional[str], max_results: Optional[int]) -> tuple[list[Any], dict[str, str]]:
        start = int(token or 0)
        size = min(max_results or PAGE, PAGE)
        rest = {"NextToken": str(start + size)} if start + size < len(items) else {}
        return items[start:start + size], rest

    def describe_organizational_unit(self, **params: Any) -> dict[str, Any]:
        self._enter("DescribeOrganizationalUnit", params)
        ou_id = params["OrganizationalUnitId"]
        if ou_id not in self.ous:
            raise self._error("OrganizationalUnitNotFoundException", "You specified an OU that doesn't exist.", "DescribeOrganizationalUnit")
        return {"OrganizationalUnit": {"Id": ou_id, "Name": self.ous[ou_id][0]}}

    def list_accounts_for_parent(self, **params: Any) -> dict[str, Any]:
        self._enter("ListAccountsForParent", params)
        parent = params["ParentId"]
        with self._lock:
            children = sorted((a for a in self.accounts.values() if a.parent == parent), key=lambda a: a.id)
        page, rest = self._page(children, params.get("NextToken"), params.get("MaxResults"))
        return {"Accounts": [{"Id": a.id, "Name": a.name, "State": a.state, "Status": "SUSPENDED" if a.state != "ACTIVE" else "ACTIVE"}
                             for a in page], **rest}

    def list_organizational_units_for_parent(self, **params: Any) -> dict[str, Any]:
        self._enter("ListOrganizationalUnitsForParent", params)
        parent = params["ParentId"]
        children = sorted((ou_id, name) for ou_id, (name, up) in self.ous.items() if up == parent)
        page, rest = self._page(children, params.get("NextToken"), params.get("MaxResults"))
        return {"OrganizationalUnits": [{"Id": ou_id, "Name": name} for ou_id, name in page], **rest}

    def list_tags_for_resource(self, **params: Any) -> dict[str, Any]:
        self._enter("ListTagsForResource", params)
        account = self.accounts.get(params["ResourceId"])
        if account is None:
            raise self._error("TargetNotFoundException", "You specified a target that doesn't exist.", "ListTagsForResource")
        tags = sorted(account.tags.items())
        page, rest = self._page(tags, params.get("NextToken"), None)
        return {"Tags": [{"Key": k, "Value": v} for k, v in page], **rest}

    def describe_account(self, **params: Any) -> dict[str, Any]:
        self._enter("DescribeAccount", params)
        account = self.accounts.get(params["AccountId"])
        if account is None:
            raise self._error("AccountNotFoundException", "You specified an account that doesn't exist.", "DescribeAccount")
        return {"Account": {"Id": account.id, "Name": account.name, "State": account.state}}


def fleet(accounts: int, *, leaves: int = 40, silo_ou: str = "ou-silo-00000000", latency: float = 0.0,
          sleep: Callable[[float], None] = time.sleep) -> FakeOrganizations:
    """A silo OU with 5 regions x (leaves / 5) leaf OUs, `accounts` ACTIVE accounts spread over the leaves."""
    ous: dict[str, tuple[str, str]] = {silo_ou: ("silos", "r-root")}
    leaf_ids = []
    regions = 5
    for region in range(regions):
        region_id = f"ou-silo-r{region:07d}"
        ous[region_id] = (f"region-{region}", silo_ou)
        for leaf in range(max(1, leaves // regions)):
            leaf_id = f"ou-silo-l{region}{leaf:06d}"
            ous[leaf_id] = (f"unit-{leaf}", region_id)
            leaf_ids.append(leaf_id)
    members = [FakeAccount(id=f"{100000000000 + i:012d}", name=f"Team {i}", parent=leaf_ids[i % len(leaf_ids)]) for i in range(accounts)]
    return FakeOrganizations(ous, members, latency=latency, sleep=sleep)
