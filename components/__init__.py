"""The data lake's Pulumi components, by area: `shared/` (keys, buckets, IAM helpers, naming, logs),
`master/` (the master account's capabilities) and `silo/` (one project's data silo), each with the config models of its
capabilities (`<area>/config.py`); `stack_config.py` validates a stack's whole configuration."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The project's root: the Lambda handlers under `functions/` are packaged from here."""
FUNCTIONS_DIR = PROJECT_DIR / "functions"
