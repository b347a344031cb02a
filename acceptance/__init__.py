"""The acceptance path for the first person with a real (sandbox) AWS organization: `./dev acceptance`.

It deploys the master and one silo, runs the runner (create, no-change update, retire-destroy of
the opted-out silo), ingests records through the ingestion API (SigV4), runs the ETL state
machine, queries the result with Athena, and tears everything down. See docs/acceptance.md.

It needs AWS credentials of a sandbox organization's management account and a `pulumi` CLI, and
refuses to start without them (exit 2). The pieces that can run offline (the step plan, the
preflight messages, the signed ingest request, the Athena and Step Functions polls, the purge of
retained resources, the CLI wrapper) are tested against moto, botocore's Stubber and a fake
`pulumi` executable (tests/test_acceptance.py).
"""
