"""The acceptance run's settings and its step plan: what each step does, creates and costs.

The plan is printed before anything happens (and alone with `--plan`, which needs no credentials),
so the person running it knows what will exist in their organization and what it will bill.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

DATASET = "orders"
OPT_OUT_TAG = ("datalake:silo", "false")
DEPLOY_ROLE = "OrganizationAccountAccessRole"
PULUMI_ORG = "organization"  # the only org a DIY (S3) backend accepts in a fully qualified stack name
PROJECT = "datalake"


def new_prefix() -> str:
    """`acc` + 4 hex digits: a fresh namePrefix per run, so a run never collides with another's retained buckets."""
    return f"acc{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Settings:
    """What one acceptance run works with (flags of `python -m acceptance`)."""

    silo_account: str = ""
    """An ACTIVE member account inside an OU (the silo OU is that OU)."""
    analytics_ou: str = ""
    """An OU id other than the silo's (it may be empty): the analytics OU the silo shares with."""
    region: str = "eu-west-1"
    prefix: str = field(default_factory=new_prefix)
    work_dir: Path = Path("out/acceptance")
    keep: bool = False
    """Skip the teardown (to inspect what was deployed); tear down later with `--teardown-only`."""
    keep_retained: bool = False
    """Leave the retained buckets, keys, log group and boundary policy (data survives destroy by design)."""
    master_account: Optional[str] = None
    """Filled by the preflight: the caller's account, the organization's management account."""

    @property
    def state_bucket(self) -> str:
        return f"{self.prefix}-acceptance-state-{self.master_account or '<master-account>'}"

    @property
    def backend_url(self) -> str:
        return f"s3://{self.state_bucket}?region={self.region}"

    @property
    def master_stack(self) -> str:
        return f"{PULUMI_ORG}/{PROJECT}/master"

    @property
    def silo_stack(self) -> str:
        return f"{PULUMI_ORG}/{PROJECT}/silo-{self.silo_account or '<silo-account>'}"


@dataclass(frozen=True)
class Step:
    name: str
    does: str
    creates: str
    cost: str


def steps(settings: Settings) -> tuple[Step, ...]:
    s = settings
    silo = s.silo_account or "<silo-account>"
    return (
        Step("preflight", "checks the pulumi CLI, the credentials (sts get-caller-identity), that they are the "
             "management account's, the silo account (ACTIVE, in an OU, not opted out, its "
             f"{DEPLOY_ROLE} assumable) and the analytics OU", "nothing (read-only calls)", "free"),
        Step("state-bucket", f"creates the Pulumi state bucket s3://{s.state_bucket} (versioned, encrypted, private) "
             "for a DIY backend", "1 S3 bucket", "cents"),
        Step("master", f"pulumi up of {s.master_stack} with a generated master config (namePrefix {s.prefix}, "
             "no delivery pipeline: its Git connection needs a person's handshake)",
             "master KMS key, 3 buckets (access logs, artifacts, Athena results), alerts topic, runner CodeBuild project + schedules + Organizations rule, "
             "Athena workgroup with one catalog per silo", "KMS key 1 USD/month prorated (~0.03 USD/day)"),
        Step("runner-create", f"python -m runner apply --allow {silo}: creates {s.silo_stack}",
             "the silo: KMS key, 6 buckets, Glue databases/crawlers/job, Firehose, ingestion API, Step Functions, "
             "Redshift Serverless in an isolated VPC, Athena workgroup, dropzone API + Cognito + Lambdas, console "
             "on CloudFront (SFTP stays off)", "KMS key 1 USD/month prorated, Secrets Manager secret 0.40 USD/month "
             "prorated; the rest bills per use"),
        Step("runner-update", f"python -m runner apply --allow {silo} again: the update must change 0 resources",
             "nothing", "free"),
        Step("ingest", f"SigV4-signed POST /{DATASET} (3 records) and /{DATASET}/batch (2 records) to the silo's "
             "ingestion endpoint, then waits for Firehose to write Parquet to the raw bucket",
             "5 records in the raw bucket", "< 0.01 USD"),
        Step("etl", "starts the silo's ETL state machine and waits for SUCCEEDED (crawl raw, Glue job, "
             "Redshift COPY, crawl processed)", "processed Parquet, Glue tables, a Redshift table",
             "~0.30 USD (2 crawler runs at the 10-minute minimum, one Glue run, one Redshift Serverless load)"),
        Step("query", f"Athena: SELECT order_id, amount FROM the processed {DATASET} table; must return the 5 records",
             "query results in the silo's athena-results bucket", "< 0.01 USD (10 MB minimum per query)"),
        Step("retire", f"tags {silo} {OPT_OUT_TAG[0]}={OPT_OUT_TAG[1]} (opt-out) and runs python -m runner apply "
             f"--allow {silo} --allow-mass-retire (1 of 1 stacks is above the 20% guard): retire-destroy exports "
             "the state, revokes dropzone partners, destroys the silo and removes its stack; then removes the tag",
             "a state export under the work directory", "free; the tag change also starts the master's runner "
             "build once (it fails: no bundle was uploaded), ~0.01 USD and one alert"),
        Step("teardown", f"pulumi destroy + stack rm of {s.master_stack}; then (unless --keep-retained) deletes what "
             "both stacks retain by design (buckets with every object version, the log group, the partner "
             "boundary policy, the aliases) and schedules both KMS keys for deletion (7 days; keys pending "
             "deletion are not billed); finally deletes the state bucket",
             "nothing left but the scheduled key deletions", "free"),
    )


def render(settings: Settings) -> str:
    lines = [
        "Acceptance run against a real AWS organization",
        f"  region {settings.region}, namePrefix {settings.prefix}, silo account {settings.silo_account or '<silo-account>'}, "
        f"analytics OU {settings.analytics_ou or '<analytics-ou>'}",
        f"  work directory {settings.work_dir} (project copy, generated stack files, logs, reports, state exports)",
        "",
    ]
    for number, step in enumerate(steps(settings), 1):
        lines.append(f"{number:2d}. {step.name}: {step.does}")
        lines.append(f"      creates: {step.creates}")
        lines.append(f"      cost: {step.cost}")
    lines += [
        "",
        "Expected total: under 1 USD for a run that completes in about an hour (list prices, eu-west-1).",
        "A failed step stops the run and tears down what was created (unless --keep); whatever could not be",
        "removed is listed at the end with the command that removes it.",
    ]
    return "\n".join(lines)
