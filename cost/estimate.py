"""Idle monthly cost of a stack, from its recorded resources and the price table `prices.yaml`.

Table-driven by resource type: a row gives the unit price (per region), the unit and a quantity rule;
`QUANTITIES` turns one recorded resource into units per month. A new component is priced by adding
rows (and, rarely, a quantity rule); a type in neither the price rows nor `free_when_idle` is
reported as unpriced, never silently counted as free.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from offline.harness import RecordedResource, Recording

PRICE_TABLE = Path(__file__).resolve().parent / "prices.yaml"
# awsx defaults: 3 AZs, and NAT gateways one per AZ when private subnets exist.
AWSX_DEFAULT_AZS = 3
ON_DEMAND_STREAM_SHARD_EQUIVALENT = 0.04 / 0.015


class PriceTableError(ValueError):
    """The price table is malformed: names the row and the field."""


def _hours(table: "PriceTable") -> float:
    return float(table.hours_per_month)


def _count(resource: RecordedResource, table: "PriceTable") -> float:
    return 1.0


def _per_hour(resource: RecordedResource, table: "PriceTable") -> float:
    return _hours(table)


def _transfer_protocol_hours(resource: RecordedResource, table: "PriceTable") -> float:
    protocols = resource.inputs.get("protocols") or ["SFTP"]
    return len(protocols) * _hours(table)


def _interface_endpoint_az_hours(resource: RecordedResource, table: "PriceTable") -> float:
    if (resource.inputs.get("vpcEndpointType") or "Gateway") == "Gateway":
        return 0.0
    azs = len(resource.inputs.get("subnetIds") or []) or 1
    return azs * _hours(table)


def _awsx_vpc_nat_hours(resource: RecordedResource, table: "PriceTable") -> float:
    inputs = resource.inputs
    strategy = (inputs.get("natGateways") or {}).get("strategy", "OnePerAz")
    subnet_types = [s.get("type") for s in inputs.get("subnetSpecs") or [] if isinstance(s, Mapping)]
    if strategy == "None" or (subnet_types and "Private" not in subnet_types):
        return 0.0
    azs = inputs.get("numberOfAvailabilityZones") or len(inputs.get("availabilityZoneNames") or []) or AWSX_DEFAULT_AZS
    gateways = 1 if strategy == "Single" else int(azs)
    return gateways * _hours(table)


def _redshift_node_hours(resource: RecordedResource, table: "PriceTable") -> float:
    return float(resource.inputs.get("numberOfNodes") or 1) * _hours(table)


def _kinesis_shard_hours(resource: RecordedResource, table: "PriceTable") -> float:
    mode = ((resource.inputs.get("streamModeDetails") or {}).get("streamMode")) or "PROVISIONED"
    if mode == "ON_DEMAND":
        return ON_DEMAND_STREAM_SHARD_EQUIVALENT * _hours(table)
    return float(resource.inputs.get("shardCount") or 1) * _hours(table)


def _codepipeline_v1(resource: RecordedResource, table: "PriceTable") -> float:
    return 1.0 if (resource.inputs.get("pipelineType") or "V1") == "V1" else 0.0


Quantity = Callable[[RecordedResource, "PriceTable"], float]
QUANTITIES: dict[str, Quantity] = {
    "count": _count,
    "hours": _per_hour,
    "transfer_protocol_hours": _transfer_protocol_hours,
    "interface_endpoint_az_hours": _interface_endpoint_az_hours,
    "awsx_vpc_nat_hours": _awsx_vpc_nat_hours,
    "redshift_node_hours": _redshift_node_hours,
    "kinesis_shard_hours": _kinesis_shard_hours,
    "codepipeline_v1": _codepipeline_v1,
}


@dataclass(frozen=True)
class PriceRow:
    key: str
    """Resource type, optionally `#suffix` for a second price of the same type (e.g. a NAT's IP)."""
    usd: Mapping[str, float]
    unit: str
    quantity: str
    off: str
    note: str = ""
    page: str = ""

    @property
    def type(self) -> str:
        return self.key.split("#", 1)[0]

    def price(self, region: str) -> tuple[float, bool]:
        """(unit price, whether it holds for the region: its own price, or the only price there is)."""
        return regional_price(self.usd, region)


def regional_price(usd: Mapping[str, float], region: str) -> tuple[float, bool]:
    """(unit price in `region`, whether the table has that region's own price or only one price)."""
    if region in usd or len(usd) == 1:
        return float(usd.get(region, usd["default"])), True
    return float(usd["default"]), False


@dataclass(frozen=True)
class StoragePrice:
    """One row of `retained_storage`: a price per GB-month of stored data."""

    key: str
    usd: Mapping[str, float]
    unit: str
    page: str = ""

    def price(self, region: str) -> tuple[float, bool]:
        return regional_price(self.usd, region)


def load_storage_prices(path: Path = PRICE_TABLE) -> dict[str, StoragePrice]:
    """The `retained_storage` rows (`s3:<storage class>`, `logs:stored`) of the price table."""
    data = yaml.safe_load(path.read_text())
    rows = {}
    for key, row in (data.get("retained_storage") or {}).items():
        for required in ("usd", "unit"):
            if required not in row:
                raise PriceTableError(f"{path.name}: retained_storage.{key} has no '{required}'")
        if "default" not in row["usd"]:
            raise PriceTableError(f"{path.name}: retained_storage.{key}.usd has no 'default' price")
        rows[key] = StoragePrice(key, dict(row["usd"]), row["unit"], row.get("page", ""))
    return rows


@dataclass(frozen=True)
class PriceTable:
    source: str
    as_of: str
    hours_per_month: float
    rows: tuple[PriceRow, ...]
    free_when_idle: tuple[str, ...]

    def rows_for(self, type_: str) -> list[PriceRow]:
        return [row for row in self.rows if row.type == type_]

    def is_free(self, type_: str) -> bool:
        return any(fnmatch.fnmatchcase(type_, pattern) for pattern in self.free_when_idle)


def load_price_table(path: Path = PRICE_TABLE) -> PriceTable:
    data = yaml.safe_load(path.read_text())
    rows = []
    for key, row in (data.get("prices") or {}).items():
        for required in ("usd", "unit", "quantity", "turn_off"):
            if required not in row:
                raise PriceTableError(f"{path.name}: prices.{key} has no '{required}'")
        if "default" not in row["usd"]:
            raise PriceTableError(f"{path.name}: prices.{key}.usd has no 'default' price")
        if row["quantity"] not in QUANTITIES:
            raise PriceTableError(
                f"{path.name}: prices.{key}.quantity {row['quantity']!r} is unknown; one of {sorted(QUANTITIES)}"
            )
        rows.append(
            PriceRow(key, dict(row["usd"]), row["unit"], row["quantity"], row["turn_off"], row.get("note", ""), row.get("page", ""))
        )
    for required in ("source", "as_of", "hours_per_month"):
        if required not in data:
            raise PriceTableError(f"{path.name}: top-level '{required}' is missing")
    return PriceTable(
        str(data["source"]), str(data["as_of"]), float(data["hours_per_month"]), tuple(rows), tuple(data.get("free_when_idle") or ())
    )


@dataclass
class Line:
    """One priced resource type in a stack."""

    row: PriceRow
    resources: list[str] = field(default_factory=list)
    units: float = 0.0
    unit_price: float = 0.0
    regional: bool = True

    @property
    def monthly(self) -> float:
        return self.units * self.unit_price


@dataclass
class Estimate:
    stack: str
    region: str
    table: PriceTable
    lines: list[Line]
    free: dict[str, int]
    unpriced: dict[str, int]

    @property
    def total(self) -> float:
        return sum(line.monthly for line in self.lines)

    def drivers(self, top: int = 3) -> list[Line]:
        return sorted((l for l in self.lines if l.monthly > 0), key=lambda l: l.monthly, reverse=True)[:top]


def _priced_resources(recording: Recording) -> Iterable[RecordedResource]:
    for resource in recording.resources:
        if resource.type.startswith("pulumi:"):
            continue
        # Our own components are containers; an opaque third-party component (awsx) may be priced.
        if not resource.custom and resource.type.startswith("datalake:"):
            continue
        yield resource


def estimate(recording: Recording, stack: str, region: str, table: Optional[PriceTable] = None) -> Estimate:
    """Prices every recorded resource of a stack evaluated under mocks."""
    table = table or load_price_table()
    lines: dict[str, Line] = {}
    free: dict[str, int] = {}
    unpriced: dict[str, int] = {}
    for resource in _priced_resources(recording):
        rows = table.rows_for(resource.type)
        if not rows:
            bucket = free if table.is_free(resource.type) else unpriced
            bucket[resource.type] = bucket.get(resource.type, 0) + 1
            continue
        for row in rows:
            line = lines.get(row.key)
            if line is None:
                price, regional = row.price(region)
                line = lines[row.key] = Line(row, unit_price=price, regional=regional)
            line.resources.append(resource.name)
            line.units += QUANTITIES[row.quantity](resource, table)
    return Estimate(stack, region, table, list(lines.values()), free, unpriced)


def render(result: Estimate) -> str:
    """The readable report: one line per priced type, total, top drivers, free and unpriced types."""
    out = [
        f"Idle monthly cost of stack '{result.stack}' in {result.region} "
        f"(prices as of {result.table.as_of}, {result.table.source})",
        "",
        f"{'resource type':<44} {'count':>5} {'units/month':>12} {'unit':<28} {'USD/unit':>9} {'USD/month':>10}",
    ]
    for line in sorted(result.lines, key=lambda l: l.monthly, reverse=True):
        flag = "" if line.regional else " *"
        out.append(
            f"{line.row.key:<44} {len(line.resources):>5} {line.units:>12.1f} {line.row.unit:<28} "
            f"{line.unit_price:>9.4f} {line.monthly:>10.2f}{flag}"
        )
    out.append(f"{'total':<44} {'':>5} {'':>12} {'':<28} {'':>9} {result.total:>10.2f}")
    if any(not l.regional for l in result.lines):
        out.append(f"  * no {result.region} price in the table: priced at the table's default (us-east-1)")
    drivers = result.drivers()
    out.append("")
    out.append("Top cost drivers:" if drivers else "Top cost drivers: none, nothing bills while idle")
    for rank, line in enumerate(drivers, 1):
        out.append(f"  {rank}. {line.row.key}: {line.monthly:.2f} USD/month ({', '.join(line.resources)})")
        out.append(f"     turn off: {line.row.off}")
        if line.row.note:
            out.append(f"     note: {line.row.note}")
    out.append("")
    free_count = sum(result.free.values())
    out.append(f"Free while idle: {free_count} resources of {len(result.free)} types")
    if result.unpriced:
        out.append("NOT IN THE PRICE TABLE (add a row to cost/prices.yaml or to free_when_idle):")
        for type_, count in sorted(result.unpriced.items()):
            out.append(f"  {type_} x{count}")
    return "\n".join(out)


def as_json(result: Estimate) -> dict[str, Any]:
    return {
        "stack": result.stack,
        "region": result.region,
        "asOf": result.table.as_of,
        "source": result.table.source,
        "totalUsdPerMonth": round(result.total, 2),
        "lines": [
            {
                "type": line.row.key,
                "count": len(line.resources),
                "units": round(line.units, 3),
                "unit": line.row.unit,
                "unitPrice": line.unit_price,
                "regionalPrice": line.regional,
                "usdPerMonth": round(line.monthly, 2),
            }
            for line in sorted(result.lines, key=lambda l: l.monthly, reverse=True)
        ],
        "topDrivers": [{"type": l.row.key, "usdPerMonth": round(l.monthly, 2), "turnOff": l.row.off} for l in result.drivers()],
        "unpriced": result.unpriced,
    }
