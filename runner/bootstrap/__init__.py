"""`python -m runner bootstrap`: the Pulumi backend of the master account, created once with boto3.

What exists before the first `pulumi login` (docs/operations.md):

- the **state key** `alias/<namePrefix>-pulumi-state` (rotation on): SSE-KMS key of the state bucket
  and the `awskms://` secrets provider of the master stack. A key of its own, not the master key:
  the master key is created *by* the master stack, so it cannot encrypt that stack's secrets before
  the stack exists, and a backend must not depend on the stack it stores;
- the **state bucket** (`runner.stateBucket`, default `<prefix>-master-pulumi-state-<account>`):
  versioned, SSE-KMS with the state key, TLS-only, all four public-access flags, BucketOwnerEnforced,
  noncurrent versions kept `--noncurrent-days` (default 90) for restores, server access logging to
- the **state log bucket** `<prefix>-master-state-logs-<account>` with the same protections;
- the **master deployer role** (`delivery.masterDeployRoleName`, default `datalake-master-deployer`):
  what `pulumi up -s master` needs and no more, assumable by the delivery pipeline's deploy project
  and by the `--operator` principals.

Idempotent: what exists is read and checked, never changed. A setting weaker than bootstrap's (no
versioning, another key, public access partly open, rotation off, a broader role policy) is a
*finding*: reported with the fix, and the command exits 1. `--dry-run` only reads.

Modules: `settings` (names, `settings_from`), `policies` (the documents), `compare` (what exists
against them), `resources` (`Bootstrap`, the boto3 calls), `command` (`add_parser`, `run_bootstrap`).
"""
