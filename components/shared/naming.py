"""Physical names: globally unique, readable, and derived in one place."""

from __future__ import annotations

import pulumi

# S3 bucket names are at most 63 characters; the config patterns keep every combination below it.
MAX_BUCKET_NAME = 63


def plain_bucket_name(prefix: str, owner: str, purpose: str, account_id: str) -> str:
    """`<prefix>-<owner>-<purpose>-<account-id>`, e.g. `datalake-sales-raw-123456789012`."""
    name = f"{prefix}-{owner}-{purpose}-{account_id}"
    if len(name) > MAX_BUCKET_NAME:
        raise ValueError(f"bucket name {name!r} is longer than {MAX_BUCKET_NAME} characters")
    return name


def bucket_name(prefix: str, owner: str, purpose: str, account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """`plain_bucket_name` of an account id that may be an Output (the program's caller identity)."""
    return pulumi.Output.from_input(account_id).apply(lambda account: plain_bucket_name(prefix, owner, purpose, account))


def bucket_output_key(purpose: str) -> str:
    """Stack output key of a bucket's name: `athena-results` → `athenaResultsBucketName`."""
    head, *rest = purpose.split("-")
    return head + "".join(part.capitalize() for part in rest) + "BucketName"


def bounded_name(*parts: str, limit: int = 64, separator: str = "-") -> str:
    """`parts` joined; when longer than `limit`, cut and suffixed with a hash so names stay unique.

    For names AWS caps (IAM roles 64, Firehose streams 64, Glue crawlers 255): the readable head
    stays, and two long names that share a head still differ.
    """
    import hashlib

    name = separator.join(parts)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip(separator)}{separator}{digest}"


def catalog_name(*parts: str) -> str:
    """Glue database names: lowercase with underscores (Athena and Redshift Spectrum dislike hyphens)."""
    return "_".join(part.replace("-", "_") for part in parts)
