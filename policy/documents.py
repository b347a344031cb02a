"""Reading the inputs the policy engine hands over: policy documents (as JSON text or objects, inside
read-only proxies), their statements, principals and condition keys, and the accounts a stack may name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

ORG_CONDITION_KEYS = ("aws:principalorgpaths", "aws:principalorgid")
# Stacks the runner creates are named `silo-<account id>`: the account a silo's policies may name.
SILO_STACK = re.compile(r"^urn:pulumi:silo-(\d{12})::")
ACCOUNT_IN_TEXT = re.compile(r"(?<![0-9])(\d{12})(?![0-9])")
ACCOUNT_PRINCIPAL = re.compile(r"^(?:arn:aws[a-z-]*:(?:iam|sts)::)?(\d{12})(?::|$)")


def is_list(value: Any) -> bool:
    # The engine hands policies read-only Mapping/Sequence proxies, not dicts and lists.
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if is_list(value) else [value]


def plain(value: Any) -> Any:
    """Proxies → dicts and lists (touching an unknown value during preview raises, as it should)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if is_list(value):
        return [plain(v) for v in value]
    return value


def document_of(value: Any) -> Optional[Mapping[str, Any]]:
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, Mapping) and "Statement" in value:
        return plain(value)
    return None


def policy_documents(props: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every IAM/resource policy document anywhere in a resource's inputs: (property path, document).

    Finds `policy`, `assumeRolePolicy`, `inlinePolicies[*].policy` and any other property that holds
    a policy document, as JSON text or as an object.
    """
    for key, value in props.items():
        where = f"{path}{key}"
        document = document_of(value)
        if document is not None:
            yield where, document
        elif isinstance(value, Mapping):
            yield from policy_documents(value, f"{where}.")
        elif is_list(value):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from policy_documents(item, f"{where}[{index}].")


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in as_list(document.get("Statement")) if isinstance(s, Mapping)]


def allows(statement: Mapping[str, Any]) -> bool:
    return statement.get("Effect") == "Allow"


def label(statement: Mapping[str, Any]) -> str:
    return f"statement {statement.get('Sid') or '(no Sid)'}"


def condition_keys(statement: Mapping[str, Any]) -> set[str]:
    """Condition keys of a statement, lowercased, whatever the operator."""
    keys = set()
    for block in (statement.get("Condition") or {}).values():
        if isinstance(block, Mapping):
            keys.update(str(k).lower() for k in block)
    return keys


def has_org_condition(statement: Mapping[str, Any]) -> bool:
    return bool(condition_keys(statement) & set(ORG_CONDITION_KEYS))


def aws_principals(statement: Mapping[str, Any]) -> list[str]:
    """The `AWS` principals of a statement; `"Principal": "*"` counts as `*`."""
    principal = statement.get("Principal")
    if principal is None:
        return []
    if isinstance(principal, str):
        return [principal]
    if isinstance(principal, Mapping):
        return [str(p) for p in as_list(principal.get("AWS"))]
    return []


def principal_account(principal: str) -> Optional[str]:
    match = ACCOUNT_PRINCIPAL.match(principal)
    return match.group(1) if match else None


def home_account(urn: str, config: Mapping[str, Any]) -> Optional[str]:
    """The account a stack deploys into: from a `silo-<account>` stack name, else the policy config
    (`homeAccountId`, or `masterAccountId`: a stack that is not a silo is the master)."""
    match = SILO_STACK.match(urn)
    if match:
        return match.group(1)
    value = config.get("homeAccountId") or config.get("masterAccountId")
    return str(value) if value else None


def accounts_a_silo_may_name(home: Optional[str], config: Mapping[str, Any]) -> set[Optional[str]]:
    """Its own account, the master (`masterAccountId`: not a silo, its Athena catalogs query every
    silo) and `trustedAccountIds`; never another silo's account."""
    allowed = {home, *(str(a) for a in as_list(config.get("trustedAccountIds")))}
    if config.get("masterAccountId"):
        allowed.add(str(config["masterAccountId"]))
    return allowed


def config_of(args: Any) -> Mapping[str, Any]:
    try:
        return args.get_config() or {}
    except AttributeError:
        return {}


def urn_of(resource: Any) -> str:
    return resource if isinstance(resource, str) else resource.urn
