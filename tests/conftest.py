"""Shared fixtures: the two programs evaluated under mocks with the shipped stack files."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest


from offline.harness import Recording
from offline.stacks import master_config, run_master, run_silo, silo_config
from offline.urns import CONFIGURATIONS as URN_CONFIGURATIONS, recording_of


class Evaluations:
    """The master and silo programs evaluated once per distinct configuration and process.

    An evaluation under mocks depends only on its config (the programs read no environment, and the
    mocks are set afresh by every run), yet a silo takes seconds: tests that only differ in what they
    assert share one. Each caller gets its own copy (unpickled), so a test that edits its recording
    cannot change what another sees. A run that raises is not kept: the next caller runs it again.
    Tests that patch what the program reads (a module attribute, a file) must call `run_silo` /
    `run_master` themselves, after patching.
    """

    def __init__(self) -> None:
        self._pickled: dict[str, bytes] = {}
        self._urn_configurations: dict[str, str] | None = None

    def _urn_configuration(self, key: str) -> str | None:
        """The URN guard's configuration of that program and config: offline/urns.py evaluates those
        once per process for the URN and IAM-lint tests, so these share its run."""
        if self._urn_configurations is None:
            self._urn_configurations = {self._key(c.program, c.config()): c.name for c in URN_CONFIGURATIONS}
        return self._urn_configurations.get(key)

    @staticmethod
    def _key(program: str, config: dict[str, Any]) -> str:
        return json.dumps([program, config], sort_keys=True)

    def master(self, config: dict[str, Any] | None = None) -> Recording:
        return self._evaluated("master", config or master_config(), run_master)

    def silo(self, config: dict[str, Any] | None = None) -> Recording:
        return self._evaluated("silo", config or silo_config(), run_silo)

    def _evaluated(self, program: str, config: dict[str, Any], run: Callable[[dict[str, Any]], Recording]) -> Recording:
        key = self._key(program, config)
        if key not in self._pickled:
            name = self._urn_configuration(key)
            recording = recording_of(name) if name else run(copy.deepcopy(config))
            self._pickled[key] = pickle.dumps(recording)
        return pickle.loads(self._pickled[key])


@pytest.fixture(scope="session")
def evaluations() -> Evaluations:
    return Evaluations()


@pytest.fixture
def master(evaluations: Evaluations) -> Recording:
    return evaluations.master()


@pytest.fixture
def silo(evaluations: Evaluations) -> Recording:
    return evaluations.silo()
