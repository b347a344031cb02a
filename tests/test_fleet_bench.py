"""bench/fleet.py on a small fleet, against figures computed by hand from its duration table."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import fleet  # noqa: E402

# Only the CLI's own durations: every request and listing takes no time, so the figures are sums
# of the table's entries along each scenario's critical path.
DURATIONS = fleet.Durations(noop_up=40, update=180, create=720, codebuild_start=60, organizations_call=0, s3_request=0,
                            stack_listing_base=0, stack_listing_per_stack=0, silo_name_read=0, versions=0)
ENGINE = fleet.Engine(batch_size=8, map_max_concurrency=25, max_concurrency=8, targeted_concurrency=4, discovery_concurrency=4)
FACTORS = {"io": 1.0, "todayIo": 1.0, "noChange": 20.0, "rollout": 300.0, "todayNoChange": 300.0, "todayRollout": 300.0}


@pytest.fixture(scope="module")
def figures():
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            # 16 accounts in 5 leaf OUs (one per region): 11 OUs, one page each.
            original = fleet.fleet
            fleet.fleet = lambda accounts, **kw: original(accounts, leaves=5, **kw)
            try:
                return fleet.simulate(16, DURATIONS, ENGINE, FACTORS, event_after=300)
            finally:
                fleet.fleet = original
    finally:
        logging.disable(logging.NOTSET)


def near(value, expected):
    """Scaled sleeps end late on a loaded machine, never early: tight below, looser above."""
    return 0.97 * expected <= value <= 1.25 * expected


def test_no_change_run(figures):
    new, today = figures["new"], figures["today"]
    # Nothing to deploy and no tag to read: 1 DescribeOrganizationalUnit + 11 x (accounts page + OUs page).
    assert new["noChangeCallsByOperation"] == {"DescribeOrganizationalUnit": 1, "ListAccountsForParent": 11, "ListOrganizationalUnitsForParent": 11}
    assert new["noChangeUnchanged"] == 16 and new["noChangeSeconds"] < 5
    # Today: every account's tags (17 by then: the event's account joined), ceil(17 / 8) = 3 waves of 40 s no-op ups.
    assert today["noChangeCallsByOperation"]["ListTagsForResource"] == 17
    assert near(today["noChangeSeconds"], 3 * 40)
    assert new["dailySweepOrganizationsCalls"] == 23 + 16


def test_template_change(figures):
    rollout = figures["new"]["templateChange"]
    # 16 updates in 2 batches of 8; a child runs its 8 at once (one 180 s wave) after its 60 s start.
    assert (rollout["operations"], rollout["batches"], rollout["failedBatches"], rollout["mergeExitCode"]) == (16, 2, 0, 0)
    assert near(rollout["planSeconds"], 60) and near(rollout["mapSeconds"], 60 + 180) and near(rollout["mergeSeconds"], 60)
    assert near(figures["new"]["templateChangeSeconds"], 60 + 240 + 60)
    # Today: one build, 17 stacks in ceil(17 / 8) = 3 waves of 180 s.
    assert near(figures["today"]["templateChangeSeconds"], 60 + 3 * 180)
    assert figures["new"]["codebuildConcurrentBuilds"] == 3  # 2 children and the targeted build beside them


def test_new_account_during_a_rollout(figures):
    # New: its own build at once, 60 s start + a 720 s create.
    assert figures["new"]["newAccountExitCode"] == 0
    assert near(figures["new"]["newAccountSeconds"], 60 + 720)
    # Today: queued behind the rollout's build (600 s; the event came at 300 s), then 60 s start + the create (creates go first).
    assert near(figures["today"]["newAccountWaitedSeconds"], 600 - 300)
    assert near(figures["today"]["newAccountSeconds"], 300 + 60 + 720)


def test_makespan_is_distributed_map_scheduling():
    assert fleet.makespan([10, 10, 10], 25) == 10
    assert fleet.makespan([10, 10, 10, 4], 2) == 20  # slot 1: 10 then 10, slot 2: 10 then 4
    assert fleet.makespan([], 4) == 0


def test_unknown_duration_keys_are_refused():
    with pytest.raises(SystemExit, match="unknown key"):
        fleet.Durations().with_overrides(["upp=1"])
    assert fleet.Durations().with_overrides(["update=240"]).update == 240
