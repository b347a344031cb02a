"""Shared fixtures: the two programs evaluated under mocks with the shipped stack files."""

from __future__ import annotations


import pytest


from offline.harness import Recording
from offline.stacks import run_master, run_silo


@pytest.fixture
def master() -> Recording:
    return run_master()


@pytest.fixture
def silo() -> Recording:
    return run_silo()
