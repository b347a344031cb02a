"""Small pure helpers that build IAM and resource policies as Python dicts.

Policies stay dicts until the last moment (`policy_json`, which uses `Output.json_dumps`), so tests
read the statements a program sends instead of canned `get_policy_document` JSON. Every statement
carries a `Sid`; every `Resource` is a full ARN with partition, region and account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import pulumi

Statement = dict[str, Any]
Strings = Union[pulumi.Input[str], Sequence[pulumi.Input[str]]]


@dataclass(frozen=True)
class AccountContext:
    """Where a component's resources live: used to build ARNs and service principals."""

    account_id: pulumi.Input[str]
    """The 12-digit account id."""
    partition: pulumi.Input[str]
    """`aws`, `aws-cn` or `aws-us-gov`."""
    region: pulumi.Input[str]
    """The region name."""

    def arn(self, service: str, resource: str, *, regional: bool = True, account: bool = True) -> pulumi.Input[str]:
        """`arn:<partition>:<service>:<region>:<account>:<resource>` (region/account left empty when global)."""
        return concat(
            "arn:", self.partition, ":", service, ":",
            self.region if regional else "", ":",
            self.account_id if account else "", ":", resource,
        )

    def root_principal(self) -> pulumi.Input[str]:
        """The account's root principal ARN, which delegates to the account's IAM policies."""
        return concat("arn:", self.partition, ":iam::", self.account_id, ":root")

    @property
    def dns_suffix(self) -> pulumi.Output[str]:
        """Domain of the partition's service endpoints: `amazonaws.com`, `amazonaws.com.cn` in China."""
        return pulumi.Output.from_input(self.partition).apply(dns_suffix_of)


def concat(*parts: pulumi.Input[str]) -> pulumi.Input[str]:
    """`Output.concat`, or a plain string when every part is one.

    The same policy helpers then serve the programs (Outputs) and boto3 code such as
    `runner/bootstrap/policies.py` (strings), so both build one posture from one definition.
    """
    if all(isinstance(part, str) for part in parts):
        return "".join(parts)  # type: ignore[arg-type]
    return pulumi.Output.concat(*parts)


SUPPORTED_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")

# Endpoint domains per partition (botocore's endpoints.json, `dnsSuffix`).
_DNS_SUFFIXES = {"aws": "amazonaws.com", "aws-cn": "amazonaws.com.cn", "aws-us-gov": "amazonaws.com"}


def partition_of(region: str) -> str:
    """The ARN partition of a region: `aws-cn` for `cn-*`, `aws-us-gov` for `us-gov-*`, else `aws`.

    For ARNs built before any provider exists (the provider's own assume-role ARN); inside programs
    use `aws.get_partition_output`. Config refuses regions of other partitions (`us-iso-*`, ...).
    """
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def dns_suffix_of(partition: str) -> str:
    """Domain of a partition's service endpoints and URLs (`https://<api>.execute-api.<region>.<suffix>`).

    Not for service principals: those are `<service>.amazonaws.com` in every partition.
    """
    try:
        return _DNS_SUFFIXES[partition]
    except KeyError:
        raise ValueError(f"partition {partition!r} is not supported; supported: {', '.join(SUPPORTED_PARTITIONS)}") from None


def kms_via_service(service: str, region: pulumi.Input[str]) -> pulumi.Output[str]:
    """The `kms:ViaService` value of `service` in `region`: `<service>.<region>.amazonaws.com`.

    The suffix is `.amazonaws.com` in every partition, China included: "Use the .amazonaws.com suffix
    of the AWS KMS ViaService name in all AWS partitions" (AWS KMS developer guide, kms:ViaService),
    although China's endpoints end in `.amazonaws.com.cn`.
    """
    return pulumi.Output.concat(service, ".", region, ".amazonaws.com")


def _listify(value: Strings) -> list[pulumi.Input[str]]:
    if isinstance(value, (str, pulumi.Output)):
        return [value]
    return list(value)


def statement(
    sid: str,
    actions: Strings,
    resources: Strings,
    *,
    effect: str = "Allow",
    principal: Optional[dict[str, Any]] = None,
    conditions: Optional[dict[str, dict[str, Any]]] = None,
) -> Statement:
    """One policy statement; `principal` only for resource policies."""
    result: Statement = {"Sid": sid, "Effect": effect}
    if principal is not None:
        result["Principal"] = principal
    result["Action"] = _listify(actions)
    result["Resource"] = _listify(resources)
    if conditions:
        result["Condition"] = conditions
    return result


def policy_document(statements: Sequence[Statement]) -> dict[str, Any]:
    """Wraps statements into a policy document, rejecting duplicate Sids (AWS does too)."""
    sids = [s["Sid"] for s in statements]
    duplicates = sorted({sid for sid in sids if sids.count(sid) > 1})
    if duplicates:
        raise ValueError(f"duplicate policy statement Sid(s): {', '.join(duplicates)}")
    return {"Version": "2012-10-17", "Statement": list(statements)}


def policy_json(statements: Sequence[Statement]) -> pulumi.Output[str]:
    """Serialises statements (which may hold Outputs) into policy JSON."""
    return pulumi.Output.json_dumps(policy_document(statements))


def org_path_pattern(ou_path: str) -> str:
    """`o-x/r-y/ou-z/` → `o-x/r-y/ou-z/*`: every account in the OU and in OUs below it."""
    return ou_path if ou_path.endswith("*") else f"{ou_path}*"


def principal_in_ou(ou_path: str) -> dict[str, dict[str, Any]]:
    """Condition: the calling principal's account sits under `ou_path` (no account lists)."""
    return {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [org_path_pattern(ou_path)]}}


def merge_conditions(*blocks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Condition blocks combined per operator (`StringEquals` of both, ...); a key set twice is a bug."""
    merged: dict[str, dict[str, Any]] = {}
    for block in blocks:
        for operator, keys in block.items():
            target = merged.setdefault(operator, {})
            twice = sorted(set(target) & set(keys))
            if twice:
                raise ValueError(f"condition key(s) {', '.join(twice)} set twice under {operator}")
            target.update(keys)
    return merged


def organizations_arns(
    partition: pulumi.Input[str], management_account_id: str, organization_id: str
) -> list[pulumi.Output[str]]:
    """ARNs of the organization's roots, OUs and accounts, for Organizations read permissions.

    Organizations ARNs always carry the management account's id, whichever account calls (a
    delegated administrator included): `arn:<partition>:organizations::<management>:ou/o-…/ou-…`.
    """

    def arn(resource: str) -> pulumi.Output[str]:
        return pulumi.Output.concat("arn:", partition, ":organizations::", management_account_id, ":", resource)

    return [
        arn(f"root/{organization_id}/r-*"),
        arn(f"ou/{organization_id}/ou-*"),
        arn(f"account/{organization_id}/*"),
    ]


def role_arn_pattern(partition: pulumi.Input[str], role_name: str) -> pulumi.Output[str]:
    """`arn:<partition>:iam::*:role/<role_name>`: the role of that name in any account."""
    return pulumi.Output.concat("arn:", partition, ":iam::*:role/", role_name)


def deploy_role_in_ou(partition: pulumi.Input[str], role_name: str, ou_path: str) -> dict[str, dict[str, Any]]:
    """Condition: the principal is the deploy role of an account under `ou_path`.

    The article's policy, written correctly: both keys sit inside their condition operators.
    """
    return {
        "ArnLike": {"aws:PrincipalArn": role_arn_pattern(partition, role_name)},
        **principal_in_ou(ou_path),
    }


def trust_statement(sid: str, principal: dict[str, Any], conditions: Optional[dict[str, dict[str, Any]]] = None) -> Statement:
    """One trust-policy statement: `principal` may assume the role (no `Resource`: the role is it)."""
    result: Statement = {"Sid": sid, "Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if conditions:
        result["Condition"] = conditions
    return result


def assume_role_policy(service: str) -> pulumi.Output[str]:
    """Trust policy that lets one AWS service assume a role."""
    return policy_json([trust_statement("AllowServiceAssumeRole", {"Service": service})])


def service_trust_policy(
    service: str | Sequence[str], conditions: dict[str, dict[str, Any]], *, sid: str = "AllowServiceAssumeRole"
) -> pulumi.Output[str]:
    """Trust policy for service principals, with a condition that ties them to one account or
    resource (the confused-deputy guard: `aws:SourceAccount`, `sts:ExternalId`, ...)."""
    principal = {"Service": service if isinstance(service, str) else list(service)}
    return policy_json([trust_statement(sid, principal, conditions)])


def role_trust_policy(sid: str, role_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """Trust policy: exactly one IAM role, by ARN, may assume the role."""
    return policy_json([trust_statement(sid, {"AWS": role_arn})])


def account_service_trust(service: str, account: AccountContext) -> pulumi.Output[str]:
    """Trust policy: `service` may assume the role only on behalf of `account` (`aws:SourceAccount`)."""
    return service_trust_policy(service, {"StringEquals": {"aws:SourceAccount": account.account_id}})
