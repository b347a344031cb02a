"""Idle cost estimate of the master and silo stacks: `python -m cost` (see docs/cost.md)."""
