"""Comparing what exists with what bootstrap would write: policy statements up to order, Sids and
AWS's scalar-for-one-element form."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _strings(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(sorted(str(v) for v in values))


def normalized_statement(st: Mapping[str, Any]) -> tuple[Any, ...]:
    """A statement without its Sid, in a form where `"*"` equals `{"AWS": "*"}` and order does not matter."""
    principal = st.get("Principal")
    if principal == "*":
        principal = {"AWS": "*"}
    principal_key = tuple(sorted((k, _strings(v)) for k, v in (principal or {}).items()))
    condition = tuple(
        sorted((op, tuple(sorted((key, _strings(v)) for key, v in keys.items()))) for op, keys in (st.get("Condition") or {}).items())
    )
    return (
        st.get("Effect"),
        principal_key,
        _strings(st.get("Action", [])),
        _strings(st.get("NotAction", [])),
        _strings(st.get("Resource", [])),
        condition,
    )


def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        from urllib.parse import unquote

        raw = json.loads(raw if raw.lstrip().startswith("{") else unquote(raw))
    statements = raw.get("Statement", [])
    return {**raw, "Statement": statements if isinstance(statements, list) else [statements]}


def trusted_patterns(raw: Any) -> tuple[set[str], list[str]]:
    """(principal ARN patterns trusted in bootstrap's form, Sids of the other Allow statements).

    Bootstrap's form: `sts:AssumeRole` for account roots narrowed by `ArnLike aws:PrincipalArn`. A pattern
    counts only when its account's root is among the statement's principals.
    """
    patterns: set[str] = set()
    foreign: list[str] = []
    for i, st in enumerate(_document(raw)["Statement"]):
        if st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal")
        roots = set(_strings(principal.get("AWS", []))) if isinstance(principal, dict) and set(principal) == {"AWS"} else set()
        condition = st.get("Condition") or {}
        narrowed = set(condition) == {"ArnLike"} and set(condition["ArnLike"]) == {"aws:PrincipalArn"}
        if _strings(st.get("Action", [])) != ("sts:AssumeRole",) or not roots or not all(r.endswith(":root") for r in roots) or not narrowed:
            foreign.append(st.get("Sid") or f"statement {i + 1}")
            continue
        for pattern in _strings(condition["ArnLike"]["aws:PrincipalArn"]):
            account = pattern.split(":")[4] if pattern.count(":") >= 5 else ""
            if any(root.split(":")[4] == account for root in roots):
                patterns.add(pattern)
    return patterns, foreign


def policy_gaps(actual_raw: Any, wanted: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(Sids of wanted statements missing from `actual`, Sids of actual Allow statements bootstrap would not write)."""
    actual = _document(actual_raw)["Statement"]
    have = {normalized_statement(st) for st in actual}
    want = {normalized_statement(st) for st in wanted["Statement"]}
    missing = [st["Sid"] for st in wanted["Statement"] if normalized_statement(st) not in have]
    extra = [st.get("Sid") or f"statement {i + 1}" for i, st in enumerate(actual) if st.get("Effect") == "Allow" and normalized_statement(st) not in want]
    return missing, extra
