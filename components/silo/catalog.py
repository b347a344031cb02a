"""`SiloCatalog`: the silo's Glue databases and the catalog policy that shares `processed` (analytics OU, master)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from ..shared.iam import AccountContext, Statement, policy_json, statement
from ..shared.naming import catalog_name
from ..shared.context import SiloContext
from .sharing import Reader


def catalog_arns(account: AccountContext, database: str) -> dict[str, pulumi.Output[str]]:
    """ARNs a Glue call on `database` and its tables is authorized against."""
    return {
        "catalog": account.arn("glue", "catalog"),
        "database": account.arn("glue", f"database/{database}"),
        "tables": account.arn("glue", f"table/{database}/*"),
    }


def processed_catalog_statement(account: AccountContext, database: str, reader: Reader) -> Statement:
    """Catalog policy grant: `reader` may read `database`'s metadata (the catalog, the database, its
    tables), nothing else."""
    arns = catalog_arns(account, database)
    return statement(
        f"{reader.sid}ReadsProcessedCatalog",
        list(reader.catalog_actions),
        [arns["catalog"], arns["database"], arns["tables"]],
        principal=reader.principal,
        conditions=reader.conditions,
    )


@dataclass(frozen=True)
class SiloCatalogArgs:
    """Arguments of `SiloCatalog`."""

    context: SiloContext
    """The silo: account, names, key and tags (`SiloAccount` passes its own)."""
    readers: tuple[Reader, ...] = ()
    """Who may read the processed database's metadata (`sharing.analytics_reader`,
    `sharing.master_reader`); default none: no catalog resource policy at all."""


class SiloCatalog(pulumi.ComponentResource):
    """Glue databases `<prefix>_<silo>_raw` and `<prefix>_<silo>_processed`, and the catalog policy.

    Glue allows one resource policy per account and region; this component owns it in a silo account.
    """

    raw_database: aws.glue.CatalogDatabase
    processed_database: aws.glue.CatalogDatabase
    raw_database_name: str
    processed_database_name: str

    def __init__(self, name: str, args: SiloCatalogArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:catalog:SiloCatalog", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.raw_database_name = catalog_name(args.context.name_prefix, args.context.silo_name, "raw")
        self.processed_database_name = catalog_name(args.context.name_prefix, args.context.silo_name, "processed")
        self.raw_database = self._database(
            name, args, "raw", self.raw_database_name, "raw records as Firehose wrote them (Parquet, by ingestion date)"
        )
        self.processed_database = self._database(
            name, args, "processed", self.processed_database_name,
            "cleaned, typed, deduplicated data (shared read-only with analytics)",
        )
        outputs: dict[str, pulumi.Input[str]] = {
            "rawDatabase": self.raw_database.name,
            "processedDatabase": self.processed_database.name,
        }
        grants = [processed_catalog_statement(args.context.account, self.processed_database_name, r) for r in args.readers]
        if grants:
            policy = aws.glue.ResourcePolicy(f"{name}-policy", policy=policy_json(grants), opts=child)
            outputs["catalogPolicyId"] = policy.id
        self.register_outputs(outputs)

    def _database(
        self, name: str, args: SiloCatalogArgs, layer: str, database_name: str, holds: str
    ) -> aws.glue.CatalogDatabase:
        """The Glue database of one layer; `holds` says what its tables hold."""
        return aws.glue.CatalogDatabase(
            f"{name}-{layer}",
            name=database_name,
            description=f"Silo {args.context.silo_name}: {holds}",
            tags=args.context.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
