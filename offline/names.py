"""Physical names the programs give their resources, evaluated under mocks.

Physical names are not URNs (`offline/urns.py` guards those), but changing one replaces the
resource. `tests/names/default.txt` holds the default environment's names (the shipped master and
silo stack files); `tests/test_environments.py` holds the programs to it and compares environments.

    python -m offline.names            # print the default environment's names
"""

from __future__ import annotations

from collections.abc import Iterable

from .harness import Recording

# Inputs that hold a physical name (or, for `path`, the IAM path a name lives under).
NAME_KEYS = ("name", "bucket", "domain", "workgroupName", "namespaceName", "dbName", "path")


def physical_names(recording: Recording, label: str) -> set[str]:
    """`<label> <type> <logical name> <input>=<value>`, one per name-holding input of a custom resource."""
    found = set()
    for resource in recording.resources:
        if not resource.custom or resource.type.startswith("pulumi:"):
            continue
        for key in NAME_KEYS:
            value = resource.inputs.get(key)
            if isinstance(value, str):
                found.add(f"{label} {resource.type} {resource.name} {key}={value}")
    return found


def name_values(recording: Recording) -> dict[tuple[str, str, str], list[str]]:
    """(type, input, value) → logical names of the resources that carry it."""
    found: dict[tuple[str, str, str], list[str]] = {}
    for line in physical_names(recording, "-"):
        _, type_, logical, assignment = line.split(" ", 3)
        key, _, value = assignment.partition("=")
        found.setdefault((type_, key, value), []).append(logical)
    return found


def default_names() -> list[str]:
    from .stacks import run_master, run_silo

    return sorted(physical_names(run_master(), "master") | physical_names(run_silo(), "silo"))


def main(argv: Iterable[str] = ()) -> int:
    print("\n".join(default_names()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
