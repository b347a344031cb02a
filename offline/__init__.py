"""Evaluate the project's Pulumi programs without a cloud and without the Pulumi CLI.

Used by the tests, `bench/synth.py`, the demo and the cost estimate.
"""

from .harness import Recording, RecordedResource, run_program

__all__ = ["Recording", "RecordedResource", "run_program"]
