"""`python -m offline`: evaluate the master and a silo program under mocks and summarise them.

Needs no cloud account and no Pulumi CLI: it shows what `pulumi up` would create for the shipped
`Pulumi.master.yaml` and for `Pulumi.silo-template.yaml` filled in for an example account.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from components.shared.errors import ConfigError

from .harness import Recording
from .stacks import run_master, run_silo


def summarise(title: str, recording: Recording) -> str:
    counts = Counter(r.type for r in recording.resources if r.custom)
    lines = [f"{title}: {sum(counts.values())} resources, {len(counts)} types"]
    lines += [f"  {count:>4}  {type_}" for type_, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines.append("  outputs:")
    lines += [f"    {key} = {value}" for key, value in sorted(recording.outputs.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)
    try:
        programs = {"master": run_master(), "silo-222222222222": run_silo()}
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({
            name: {
                "resources": Counter(r.type for r in rec.resources if r.custom),
                "outputs": rec.outputs,
            }
            for name, rec in programs.items()
        }, indent=2, sort_keys=True))
    else:
        print("\n\n".join(summarise(f"stack {name}", rec) for name, rec in programs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
