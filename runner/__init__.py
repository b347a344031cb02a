"""The runner: Pulumi Automation API reconciling one `silo-<account-id>` stack per account of the silo OU.

`python -m runner discover|plan|apply|drift|merge-reports|report|demo|bootstrap|restore`; see docs/runner.md.
"""
