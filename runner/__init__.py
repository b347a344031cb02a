"""The runner: Pulumi Automation API reconciling one `silo-<account-id>` stack per account of the silo OU.

`python -m runner discover|plan|apply|drift|report|demo`; see docs/runner.md.
"""
