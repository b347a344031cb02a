"""`python -m cost`: the idle monthly cost of the master and of one default silo, offline.

Evaluates the programs under Pulumi mocks with the shipped stack files (or `--config <stack file>`),
walks the recorded resources and prices them from `cost/prices.yaml`. No cloud, no CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from offline.harness import SILO_ACCOUNT_ID
from offline.stacks import PROJECT_DIR, master_config, run_master, run_silo, silo_config

from .estimate import PriceTableError, as_json, estimate, load_price_table, render

SILO_IDLE_GOAL_USD = 3.0


def _config_from(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())["config"]
    placeholders = {"__ACCOUNT_ID__": SILO_ACCOUNT_ID, "__SILO_NAME__": "sales"}
    return {k: placeholders.get(v, v) if isinstance(v, str) else v for k, v in data.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cost", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=["master", "silo", "both"], default="both", help="which program (default both)")
    parser.add_argument("--config", type=Path, help="a stack file to evaluate instead of the shipped one")
    parser.add_argument("--region", help="price in this region instead of the stack's aws:region")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)

    try:
        table = load_price_table()
    except PriceTableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    configs = []
    if args.config is not None:
        path = args.config if args.config.is_absolute() else Path.cwd() / args.config
        if not path.exists():
            print(f"error: --config {args.config}: no such stack file", file=sys.stderr)
            return 2
        config = _config_from(path)
        configs.append(("master" if config.get("datalake:kind") == "master" else "silo", config))
    else:
        if args.stack in ("master", "both"):
            configs.append(("master", master_config()))
        if args.stack in ("silo", "both"):
            configs.append(("silo", silo_config()))

    results = []
    for kind, config in configs:
        recording = run_master(config) if kind == "master" else run_silo(config)
        region = args.region or str(config.get("aws:region"))
        results.append(estimate(recording, "master" if kind == "master" else f"silo-{config['datalake:accountId']}", region, table))

    if args.json:
        print(json.dumps({"stacks": [as_json(r) for r in results], "siloIdleGoalUsd": SILO_IDLE_GOAL_USD}, indent=2))
        return 0
    for result in results:
        print(render(result))
        if result.stack.startswith("silo-"):
            verdict = "met" if result.total <= SILO_IDLE_GOAL_USD else "NOT met"
            print(f"Goal for an idle silo: at most {SILO_IDLE_GOAL_USD:.2f} USD/month: {verdict}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
