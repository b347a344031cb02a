"""Rollout benchmark: how close the runner's executor gets to ideal parallelism, and discovery speed.

1. 200 simulated accounts whose stack operation takes a fixed 50 ms (the fake stack operations):
   wall time at concurrency 1, 8 and 16 against the ideal `ceil(N/c) * t`; efficiency = ideal / wall.
2. Discovery of 1,000 accounts spread over nested OUs, against moto Organizations (in-process).

Prints a table; `--json` prints one JSON object with the same figures. Medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offline.fake_stacks import FakeStackOperations  # noqa: E402
from runner.discovery import Backoff, DiscoverySettings, discover  # noqa: E402
from runner.execution import ExecutionSettings, execute  # noqa: E402
from runner.model import Action, PlannedOperation, Result  # noqa: E402


def operations(n: int) -> list[PlannedOperation]:
    return [
        PlannedOperation(f"{i:012d}", f"Team {i}", f"silo-{i:012d}", Action.UPDATE, "bench", f"team-{i}", {"datalake:accountId": f"{i:012d}"})
        for i in range(1, n + 1)
    ]


def rollout(n: int, concurrency: int, latency: float, repeat: int) -> dict[str, float]:
    walls = []
    for _ in range(repeat):
        fake = FakeStackOperations(latency=latency)
        with tempfile.TemporaryDirectory() as tmp:
            settings = ExecutionSettings(log_dir=Path(tmp), max_concurrency=concurrency, failure_tolerance=0)
            started = time.perf_counter()
            results = execute(operations(n), fake, settings, lambda stack, state: "")
            walls.append(time.perf_counter() - started)
        assert all(r.result is Result.SUCCEEDED for r in results)
        assert fake.max_running <= concurrency
    wall = statistics.median(walls)
    ideal = math.ceil(n / concurrency) * latency
    return {"accounts": n, "concurrency": concurrency, "wallSeconds": wall, "idealSeconds": ideal, "efficiency": ideal / wall}


def discovery(n: int, repeat: int) -> dict[str, float]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        org.create_organization(FeatureSet="ALL")
        root = org.list_roots()["Roots"][0]["Id"]
        silo = org.create_organizational_unit(ParentId=root, Name="silos")["OrganizationalUnit"]["Id"]
        # 5 regions x 4 business units x 2 environments = 40 leaf OUs, three levels below the silo OU.
        leaves = []
        for region in range(5):
            r = org.create_organizational_unit(ParentId=silo, Name=f"region-{region}")["OrganizationalUnit"]["Id"]
            for unit in range(4):
                u = org.create_organizational_unit(ParentId=r, Name=f"unit-{unit}")["OrganizationalUnit"]["Id"]
                for env in ("prod", "dev"):
                    leaves.append(org.create_organizational_unit(ParentId=u, Name=env)["OrganizationalUnit"]["Id"])
        for i in range(n):
            account = org.create_account(Email=f"a{i}@example.com", AccountName=f"Account {i}")["CreateAccountStatus"]["AccountId"]
            org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=leaves[i % len(leaves)])
        seconds = []
        for _ in range(repeat):
            started = time.perf_counter()
            found = discover(org, DiscoverySettings(silo_ou_id=silo), Backoff())
            seconds.append(time.perf_counter() - started)
            assert len(found.accounts) == n
    return {"accounts": n, "ous": 1 + 5 + 20 + len(leaves), "seconds": statistics.median(seconds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--discovery-accounts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the executor logs progress per operation

    latency = args.latency_ms / 1000
    rows = [rollout(args.accounts, c, latency, args.repeat) for c in (1, 8, 16)]
    found = discovery(args.discovery_accounts, args.repeat)
    if args.json:
        print(json.dumps({"rollout": rows, "latencySeconds": latency, "repeat": args.repeat, "discovery": found}))
        return 0
    print(f"Rollout of {args.accounts} accounts, {args.latency_ms:.0f} ms per stack operation (median of {args.repeat} runs)")
    print(f"{'concurrency':>11}  {'wall s':>7}  {'ideal s':>7}  {'efficiency':>10}")
    for row in rows:
        print(f"{row['concurrency']:>11}  {row['wallSeconds']:>7.3f}  {row['idealSeconds']:>7.3f}  {row['efficiency']:>10.3f}")
    print()
    print(f"Discovery of {found['accounts']} accounts in {found['ous']} nested OUs (moto, in-process): "
          f"{found['seconds']:.2f} s (median of {args.repeat} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
