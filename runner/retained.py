"""The ledger of retained data: what a retired silo leaves behind, what it costs, and how to purge it.

A retirement removes the silo's stack, but its data buckets, their key and alias, the dropzone audit
log group and the partner boundary policy are `retain_on_delete`: they stay in the silo account,
owned by nobody. After every retirement the runner records them in the silo's ledger entry
(`LedgerEntry.extra["retained"]`):

- the resources, from the exported state: every custom resource with `retainOnDelete: true`, with its
  URN, type, logical name and id (the ids let a returning account adopt them, `runner/lifecycle.py`);
- what they hold, by cheap reads in the silo account through the deploy role: per bucket
  `ListObjectVersions` totals (current objects, noncurrent versions, delete markers, bytes by storage
  class; one request per 1,000 versions), `DescribeLogGroups` `storedBytes`, `DescribeKey` state;
- the monthly cost of keeping them, priced from `cost/prices.yaml` (`retained_storage` and the KMS
  key row).

`python -m runner retained` lists the ledger with totals; `python -m runner purge <silo> --confirm
<silo>` deletes a retired silo's retained resources (dry run without `--confirm`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from components.shared.errors import RunnerError, UsageError
from cost.estimate import PRICE_TABLE, load_price_table, load_storage_prices

from .ledger import GRACE_STARTED, Ledger, LedgerEntry, now_iso
from .silo_access import ClientFactory

log = logging.getLogger(__name__)

RETAINED = "retained"
"""Key of the retained-data record in `LedgerEntry.extra`."""
GIB = 2**30
BUCKET = "aws:s3/bucket:Bucket"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
POLICY = "aws:iam/policy:Policy"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
# Retained resources that are settings of a bucket: they go with the bucket.
BUCKET_SETTINGS = frozenset(
    {
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:s3/bucketLogging:BucketLogging",
        "aws:s3/bucketPolicy:BucketPolicy",
    }
)
MIN_KEY_DELETION_DAYS, MAX_KEY_DELETION_DAYS = 7, 30
DEFAULT_KEY_DELETION_DAYS = 30


@dataclass(frozen=True)
class RetainedResource:
    """One resource a retirement left in the silo account."""

    urn: str
    type: str
    name: str
    """The logical name (the URN's last part)."""
    id: str
    """The provider id: what `import_` needs to adopt it (a bucket's name, a key's id, a policy's ARN, ...)."""
    physical: str = ""
    """What AWS calls it, when that is not the id (a key's ARN, an alias's name)."""
    receives_logs: bool = False
    """A bucket other buckets deliver access logs to (purged last)."""
    parent: str = ""
    """URN of its parent component (a bucket's settings share their bucket's parent)."""

    @property
    def key(self) -> str:
        """`<type>::<logical name>`: how the program finds it to adopt (`datalake:adopt`)."""
        return f"{self.type}::{self.name}"


def _urn_name(urn: str) -> str:
    return urn.split("::", 3)[3] if urn.count("::") >= 3 else urn


def retained_resources(state: Mapping[str, Any]) -> list[RetainedResource]:
    """Every custom resource of an exported stack (`pulumi stack export`) marked `retainOnDelete`.

    Resources pending deletion (`delete: true`, the old half of a replacement) and read-only
    references (`external`) are not the stack's to keep, so they are left out.
    """
    resources = (state.get("deployment") or {}).get("resources") or []
    log_targets = {
        str((r.get("inputs") or {}).get("targetBucket"))
        for r in resources
        if r.get("type") == BUCKET_LOGGING and (r.get("inputs") or {}).get("targetBucket")
    }
    found = []
    for r in resources:
        if not (r.get("custom") and r.get("retainOnDelete") and r.get("id")) or r.get("delete") or r.get("external"):
            continue
        outputs = r.get("outputs") or {}
        physical = ""
        if r["type"] == KEY:
            physical = str(outputs.get("arn") or "")
        elif r["type"] == ALIAS:
            physical = str(outputs.get("name") or r["id"])
        found.append(
            RetainedResource(
                urn=r["urn"], type=r["type"], name=_urn_name(r["urn"]), id=str(r["id"]), physical=physical,
                receives_logs=r["type"] == BUCKET and str(r["id"]) in log_targets, parent=str(r.get("parent") or ""),
            )
        )
    return sorted(found, key=lambda x: (x.type, x.name))


@dataclass
class BucketUsage:
    """What one bucket holds (every version counts: noncurrent versions are billed like current ones)."""

    objects: int = 0
    """Current object versions."""
    noncurrent_versions: int = 0
    delete_markers: int = 0
    bytes: int = 0
    bytes_by_class: dict[str, int] = field(default_factory=dict)
    exists: bool = True


@dataclass
class Usage:
    """The measured contents of a retired silo's resources."""

    measured_at: str = ""
    buckets: dict[str, BucketUsage] = field(default_factory=dict)
    log_group_bytes: dict[str, int] = field(default_factory=dict)
    key_states: dict[str, str] = field(default_factory=dict)
    error: str = ""
    """Why nothing (or not everything) could be measured, e.g. the account cannot be reached."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Usage":
        return cls(
            measured_at=data.get("measured_at", ""),
            buckets={name: BucketUsage(**b) for name, b in (data.get("buckets") or {}).items()},
            log_group_bytes=dict(data.get("log_group_bytes") or {}),
            key_states=dict(data.get("key_states") or {}),
            error=data.get("error", ""),
        )


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def measure_bucket(s3: Any, bucket: str) -> BucketUsage:
    """`ListObjectVersions` totals of one bucket: one request per 1,000 versions and delete markers."""
    usage = BucketUsage()
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                if version.get("IsLatest"):
                    usage.objects += 1
                else:
                    usage.noncurrent_versions += 1
                size = int(version.get("Size", 0))
                usage.bytes += size
                storage_class = version.get("StorageClass") or "STANDARD"
                usage.bytes_by_class[storage_class] = usage.bytes_by_class.get(storage_class, 0) + size
            usage.delete_markers += len(page.get("DeleteMarkers", []))
    except ClientError as exc:
        if _code(exc) != "NoSuchBucket":
            raise
        usage.exists = False
    return usage


def measure(clients: ClientFactory, account_id: str, resources: Sequence[RetainedResource]) -> Usage:
    """Reads what the retained resources hold, in the silo account; a failure is recorded, never raised."""
    usage = Usage(measured_at=now_iso())
    try:
        s3 = clients(account_id, "s3")
        for r in resources:
            if r.type == BUCKET:
                usage.buckets[r.id] = measure_bucket(s3, r.id)
        logs = clients(account_id, "logs")
        for r in resources:
            if r.type == LOG_GROUP:
                groups = logs.describe_log_groups(logGroupNamePrefix=r.id).get("logGroups", [])
                usage.log_group_bytes[r.id] = next((int(g.get("storedBytes", 0)) for g in groups if g["logGroupName"] == r.id), 0)
        kms = clients(account_id, "kms")
        for r in resources:
            if r.type == KEY:
                try:
                    usage.key_states[r.id] = kms.describe_key(KeyId=r.id)["KeyMetadata"]["KeyState"]
                except ClientError as exc:
                    if _code(exc) != "NotFoundException":
                        raise
                    usage.key_states[r.id] = "gone"
    except (ClientError, BotoCoreError) as exc:
        usage.error = f"could not measure in {account_id}: {_aws_error(exc)}"
        log.warning("%s", usage.error)
    return usage


@dataclass(frozen=True)
class CostLine:
    what: str
    quantity: float
    unit: str
    usd_per_month: float


def monthly_cost(resources: Sequence[RetainedResource], usage: Usage, region: str) -> list[CostLine]:
    """What keeping the retained resources costs per month, from `cost/prices.yaml`."""
    storage = load_storage_prices(PRICE_TABLE)
    table = load_price_table(PRICE_TABLE)
    lines = []
    by_class: dict[str, int] = {}
    for bucket in usage.buckets.values():
        for storage_class, size in bucket.bytes_by_class.items():
            by_class[storage_class] = by_class.get(storage_class, 0) + size
    for storage_class, size in sorted(by_class.items()):
        row = storage.get(f"s3:{storage_class}")
        label = f"S3 {storage_class}"
        if row is None:
            row, label = storage["s3:STANDARD"], f"S3 {storage_class} (priced as STANDARD)"
        gib = size / GIB
        lines.append(CostLine(label, gib, row.unit, gib * row.price(region)[0]))
    logged = sum(usage.log_group_bytes.values())
    if logged:
        row = storage["logs:stored"]
        lines.append(CostLine("CloudWatch Logs storage", logged / GIB, row.unit, logged / GIB * row.price(region)[0]))
    keys = [r for r in resources if r.type == KEY and usage.key_states.get(r.id) not in ("PendingDeletion", "gone")]
    if keys:
        [row] = table.rows_for(KEY)
        lines.append(CostLine("KMS customer managed keys", len(keys), row.unit, len(keys) * row.price(region)[0]))
    return lines


@dataclass(frozen=True)
class RetainedSilo:
    """One retired silo's entry in the ledger of retained data."""

    stack: str
    account_id: str
    silo_name: str
    action: str
    retired_at: str
    region: str
    resources: tuple[RetainedResource, ...]
    usage: Usage
    exported_to: str = ""
    purged_at: str = ""
    purged: tuple[str, ...] = ()

    @property
    def adoptable(self) -> dict[str, str]:
        """`<type>::<name>` → id of every retained resource still there to adopt."""
        return {r.key: r.id for r in self.resources}

    def cost(self) -> list[CostLine]:
        return monthly_cost(self.resources, self.usage, self.region)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        for key in ("stack", "account_id", "silo_name"):
            body.pop(key)  # the ledger entry holds them
        return body

    @classmethod
    def from_entry(cls, entry: LedgerEntry) -> Optional["RetainedSilo"]:
        data = entry.extra.get(RETAINED)
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(
                stack=entry.stack, account_id=entry.account_id, silo_name=entry.silo_name or "",
                action=data.get("action", ""), retired_at=data.get("retired_at", ""), region=data.get("region", ""),
                resources=tuple(RetainedResource(**r) for r in data.get("resources") or ()),
                usage=Usage.from_json(data.get("usage") or {}), exported_to=data.get("exported_to", ""),
                purged_at=data.get("purged_at", ""), purged=tuple(data.get("purged") or ()),
            )
        except TypeError:
            log.warning("ledger entry %s: the retained-data record is malformed; ignored", entry.stack)
            return None


def record_retirement(
    ledger: Ledger, *, stack: str, account_id: str, silo_name: Optional[str], action: str,
    state: Mapping[str, Any], region: str, exported_to: str, usage: Optional[Usage] = None,
) -> LedgerEntry:
    """Writes what a retirement left behind into the stack's ledger entry (and ends any grace period)."""
    resources = tuple(retained_resources(state))
    retired_at = now_iso()

    def change(entry: Optional[LedgerEntry]) -> LedgerEntry:
        base = entry or LedgerEntry(stack=stack, account_id=account_id)
        silo = RetainedSilo(
            stack=stack, account_id=account_id, silo_name=silo_name or base.silo_name or "", action=action,
            retired_at=retired_at, region=region, resources=resources, usage=usage or Usage(), exported_to=exported_to,
        )
        extra = {key: value for key, value in base.extra.items() if key != GRACE_STARTED}
        extra[RETAINED] = silo.to_json()
        return replace(base, silo_name=silo.silo_name or None, action=action, result="succeeded", fingerprint="", extra=extra)

    return ledger.update(stack, change)


def record_usage(ledger: Ledger, entry: LedgerEntry, usage: Usage) -> LedgerEntry:
    """Replaces the measured figures of a retired silo's record (`retained --refresh`)."""

    def change(current: Optional[LedgerEntry]) -> LedgerEntry:
        base = current or entry
        return replace(base, extra={**base.extra, RETAINED: {**base.extra.get(RETAINED, {}), "usage": asdict(usage)}})

    return ledger.update(entry.stack, change)


def retained_silos(entries: Iterable[LedgerEntry]) -> list[RetainedSilo]:
    """Every ledger entry with retained resources still in place, by silo name."""
    silos = [s for s in (RetainedSilo.from_entry(e) for e in entries) if s is not None and s.resources]
    return sorted(silos, key=lambda s: (s.silo_name, s.account_id))


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def retained_table(silos: Sequence[RetainedSilo]) -> str:
    """One line per retired silo (buckets, objects, bytes, keys, cost) and a total line."""
    from .report import table

    rows, totals = [], [0, 0, 0, 0, 0.0]
    for silo in silos:
        buckets = [r for r in silo.resources if r.type == BUCKET]
        objects = sum(b.objects + b.noncurrent_versions for b in silo.usage.buckets.values())
        size = sum(b.bytes for b in silo.usage.buckets.values())
        keys = sum(1 for r in silo.resources if r.type == KEY)
        usd = sum(line.usd_per_month for line in silo.cost())
        measured = silo.usage.error or (f"measured {silo.usage.measured_at}" if silo.usage.measured_at else "not measured")
        rows.append((silo.silo_name, silo.account_id, silo.action, silo.retired_at[:10], len(buckets), objects,
                     _human_bytes(size), keys, f"{usd:.2f}", measured))
        for i, value in enumerate((len(buckets), objects, size, keys, usd)):
            totals[i] += value
    rows.append(("total", f"{len(silos)} silos", "", "", totals[0], totals[1], _human_bytes(totals[2]), totals[3], f"{totals[4]:.2f}", ""))
    return table(("silo", "account", "retired by", "on", "buckets", "objects", "bytes", "keys", "USD/month", "figures"), rows)


def retained_details(silo: RetainedSilo) -> str:
    lines = [f"{silo.silo_name} ({silo.account_id}), retired {silo.retired_at} by {silo.action}; state export: {silo.exported_to or '-'}"]
    for r in silo.resources:
        if r.type in BUCKET_SETTINGS:
            continue
        detail = ""
        if r.type == BUCKET and r.id in silo.usage.buckets:
            b = silo.usage.buckets[r.id]
            detail = (f": {b.objects} objects, {b.noncurrent_versions} noncurrent versions, {b.delete_markers} delete markers, {b.bytes} bytes"
                      if b.exists else ": already gone")
        elif r.type == KEY and r.id in silo.usage.key_states:
            detail = f": {silo.usage.key_states[r.id]}"
        lines.append(f"  {r.type} {r.physical or r.id}{detail}")
    for line in silo.cost():
        lines.append(f"  cost: {line.what}: {line.quantity:.3f} {line.unit} = {line.usd_per_month:.2f} USD/month")
    return "\n".join(lines)


# -- purge ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeStep:
    """One deletion of a purge, in the order they run."""

    resource: RetainedResource
    description: str


def purge_steps(silo: RetainedSilo, key_deletion_days: int = DEFAULT_KEY_DELETION_DAYS) -> tuple[list[PurgeStep], list[RetainedResource]]:
    """(the deletions, in order; the retained resources no step deletes and that are left alone).

    Buckets go first (each emptied of every version and delete marker, then deleted with its
    settings), the access-log bucket last (deleting the others may still deliver logs to it); then
    the log group, the boundary policy, the key alias, and the key, whose deletion KMS only schedules.
    """
    if not MIN_KEY_DELETION_DAYS <= key_deletion_days <= MAX_KEY_DELETION_DAYS:
        raise UsageError(f"--key-deletion-days {key_deletion_days}: KMS allows {MIN_KEY_DELETION_DAYS} to {MAX_KEY_DELETION_DAYS} days; for example: 30")
    steps, left = [], []
    buckets = sorted((r for r in silo.resources if r.type == BUCKET), key=lambda r: (r.receives_logs, r.id))
    for r in buckets:
        b = silo.usage.buckets.get(r.id)
        held = f" ({b.objects} objects, {b.noncurrent_versions} noncurrent versions, {b.delete_markers} delete markers, {b.bytes} bytes)" if b else ""
        steps.append(PurgeStep(r, f"empty bucket {r.id}{held} of every version and delete marker, then delete it with its settings"))
    order = {LOG_GROUP: 0, POLICY: 1, ALIAS: 2, KEY: 3}
    for r in sorted((r for r in silo.resources if r.type in order), key=lambda r: (order[r.type], r.id)):
        if r.type == LOG_GROUP:
            steps.append(PurgeStep(r, f"delete log group {r.id}"))
        elif r.type == POLICY:
            steps.append(PurgeStep(r, f"delete IAM policy {r.id} (and its non-default versions)"))
        elif r.type == ALIAS:
            steps.append(PurgeStep(r, f"delete KMS alias {r.physical or r.id}"))
        else:
            steps.append(PurgeStep(r, f"schedule deletion of KMS key {r.id} in {key_deletion_days} days (KMS cannot delete a key at once)"))
    left = [r for r in silo.resources if r.type not in order and r.type != BUCKET and r.type not in BUCKET_SETTINGS]
    return steps, left


def empty_bucket(s3: Any, bucket: str) -> int:
    """Deletes every object version and delete marker of a bucket; returns how many. Raises if S3 refuses one."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        batch = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(batch), 1000):
            chunk = batch[start : start + 1000]
            response = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise RunnerError(f"bucket {bucket}: could not delete {first['Key']} ({first.get('Code')}: {first.get('Message')})")
            deleted += len(chunk)
    return deleted


def _purge_bucket(s3: Any, bucket: str) -> str:
    deleted = 0
    for _ in range(3):  # log delivery may add objects while the other buckets go
        try:
            deleted += empty_bucket(s3, bucket)
            s3.delete_bucket(Bucket=bucket)
            return f"deleted bucket {bucket} ({deleted} versions and delete markers)"
        except ClientError as exc:
            if _code(exc) == "NoSuchBucket":
                return f"bucket {bucket} was already gone"
            if _code(exc) != "BucketNotEmpty":
                raise
    raise RunnerError(f"bucket {bucket} kept receiving objects while it was emptied; run the purge again")


def _purge_policy(iam: Any, arn: str) -> str:
    try:
        attached = iam.list_entities_for_policy(PolicyArn=arn)
        users = [u["UserName"] for u in attached.get("PolicyUsers", [])] + [r["RoleName"] for r in attached.get("PolicyRoles", [])]
        if users:
            raise RunnerError(f"IAM policy {arn} is still attached to {', '.join(users)}; revoke those partners first (DELETE /partners/<name>)")
        for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not version["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
        iam.delete_policy(PolicyArn=arn)
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return f"IAM policy {arn} was already gone"
        raise
    return f"deleted IAM policy {arn}"


def run_step(step: PurgeStep, clients: ClientFactory, account_id: str, key_deletion_days: int) -> str:
    """Performs one purge step in the silo account; returns what it did. Raises on failure."""
    r = step.resource
    if r.type == BUCKET:
        return _purge_bucket(clients(account_id, "s3"), r.id)
    if r.type == POLICY:
        return _purge_policy(clients(account_id, "iam"), r.id)
    try:
        if r.type == LOG_GROUP:
            clients(account_id, "logs").delete_log_group(logGroupName=r.id)
            return f"deleted log group {r.id}"
        if r.type == ALIAS:
            clients(account_id, "kms").delete_alias(AliasName=r.physical or r.id)
            return f"deleted KMS alias {r.physical or r.id}"
        response = clients(account_id, "kms").schedule_key_deletion(KeyId=r.id, PendingWindowInDays=key_deletion_days)
        return f"scheduled deletion of KMS key {r.id} on {str(response.get('DeletionDate', ''))[:10]}"
    except ClientError as exc:
        if _code(exc) in ("ResourceNotFoundException", "NotFoundException"):
            return f"{r.type} {r.physical or r.id} was already gone"
        if r.type == KEY and _code(exc) == "KMSInvalidStateException":
            return f"KMS key {r.id} was already pending deletion"
        raise


def purge(
    ledger: Ledger, entry: LedgerEntry, silo: RetainedSilo, clients: ClientFactory, out: TextIO,
    key_deletion_days: int = DEFAULT_KEY_DELETION_DAYS,
) -> tuple[list[str], str]:
    """Runs every purge step in order; after each, the ledger forgets that resource (so a rerun resumes).

    Returns (what was done, the error that stopped it or ''). The retained record keeps what was purged.
    """
    steps, _ = purge_steps(silo, key_deletion_days)
    done: list[str] = []
    remaining = list(silo.resources)
    error = ""
    for step in steps:
        try:
            line = run_step(step, clients, silo.account_id, key_deletion_days)
        except (ClientError, BotoCoreError, RunnerError) as exc:
            error = f"{step.description.split(' (')[0]}: {_aws_error(exc)}"
            out.write(f"FAILED {error}\n")
            break
        out.write(f"{line}\n")
        done.append(line)
        remaining = [r for r in remaining if r.urn != step.resource.urn and not _goes_with(r, step.resource)]
        entry = _store_progress(ledger, entry, remaining, done, finished=False)
    if not error:
        entry = _store_progress(ledger, entry, remaining, done, finished=True)
    return done, error


def _goes_with(resource: RetainedResource, bucket: RetainedResource) -> bool:
    """A bucket's settings (versioning, policy, ...) are deleted with it: they share its SecureBucket parent."""
    return bucket.type == BUCKET and resource.type in BUCKET_SETTINGS and bool(bucket.parent) and resource.parent == bucket.parent


def _store_progress(ledger: Ledger, entry: LedgerEntry, remaining: list[RetainedResource], done: list[str], *, finished: bool) -> LedgerEntry:
    record = dict(entry.extra.get(RETAINED) or {})
    record["resources"] = [asdict(r) for r in remaining]
    record["purged"] = list(dict.fromkeys([*(record.get("purged") or []), *done]))
    if finished:
        record["purged_at"] = now_iso()
    return ledger.put(replace(entry, extra={**entry.extra, RETAINED: record}))


def find_retained(silos: Sequence[RetainedSilo], ref: str) -> RetainedSilo:
    """The retired silo named `ref` (silo name or account id); `UsageError` naming the choices otherwise."""
    found = [s for s in silos if ref in (s.silo_name, s.account_id)]
    if len(found) == 1:
        return found[0]
    known = ", ".join(f"{s.silo_name} ({s.account_id})" for s in silos) or "none"
    if not found:
        raise UsageError(f"purge {ref!r}: no retired silo of that name or account holds retained resources; retained silos: {known}")
    raise UsageError(f"purge {ref!r}: {len(found)} retired silos match; name one by its account id: {known}")


def purge_command(
    ledger: Ledger, ref: str, confirm: Optional[str], refusal: str, clients: ClientFactory, out: TextIO,
    key_deletion_days: int = DEFAULT_KEY_DELETION_DAYS,
) -> int:
    """`purge <silo> [--confirm <silo>]`: prints every deletion, then (only when confirmed) runs them.

    `refusal` says why the silo's account must not be purged ('' when it may): it is an active silo,
    it still has a stack, or it cannot be reached. Returns the exit code (0 done or dry run, 1 failed).
    """
    entries = ledger.entries()
    silo = find_retained(retained_silos(entries.values()), ref)
    if confirm is not None and confirm != silo.silo_name:
        raise UsageError(f"--confirm {confirm!r} does not match the silo {silo.silo_name!r}; to purge it, pass --confirm {silo.silo_name}")
    if refusal:
        raise UsageError(f"purge {silo.silo_name}: refused, account {silo.account_id} {refusal}")
    steps, left = purge_steps(silo, key_deletion_days)
    out.write(f"purge of retired silo {silo.silo_name} (account {silo.account_id}, retired {silo.retired_at} by {silo.action}) "
              f"{'deletes' if confirm else 'would delete'}:\n")
    for number, step in enumerate(steps, 1):
        out.write(f"  {number}. {step.description}\n")
    for r in left:
        out.write(f"  left alone (no purge step for its type): {r.type} {r.id}\n")
    if confirm is None:
        out.write(f"dry run: nothing was deleted. To delete, run: python -m runner purge {silo.silo_name} --confirm {silo.silo_name}\n")
        return 0
    done, error = purge(ledger, entries[silo.stack], silo, clients, out, key_deletion_days)
    if error:
        out.write(f"purge stopped after {len(done)} of {len(steps)} steps: {error}; the ledger keeps what is left, so running it again resumes\n")
        return 1
    out.write(f"purged {silo.silo_name}: {len(done)} steps done\n")
    return 0


def present_keys(clients: ClientFactory, account_id: str, adopt: Mapping[str, str]) -> set[str]:
    """Which `<type>::<name>` keys of `adopt` still exist in the account (cheap reads, one per resource).

    A bucket's settings exist while their bucket does (their id is the bucket's name); a key
    pending deletion, and an alias whose key is pending deletion or gone, count as gone: importing
    them would bring back a key nobody can use. Types without a check count as present.
    """
    present: set[str] = set()
    cache: dict[tuple[str, str], bool] = {}

    def exists(kind: str, ident: str, probe: Callable[[], Any], missing: tuple[str, ...]) -> bool:
        if (kind, ident) not in cache:
            try:
                cache[(kind, ident)] = probe() is not False
            except ClientError as exc:
                if _code(exc) not in missing:
                    raise
                cache[(kind, ident)] = False
        return cache[(kind, ident)]

    def usable_key(kms: Any, ident: str) -> bool:
        return kms.describe_key(KeyId=ident)["KeyMetadata"]["KeyState"] not in ("PendingDeletion", "PendingReplicaDeletion")

    for key, ident in adopt.items():
        type_ = key.split("::", 1)[0]
        if type_.startswith("aws:s3/"):
            s3 = clients(account_id, "s3")
            ok = exists("bucket", ident, lambda: s3.head_bucket(Bucket=ident), ("404", "NoSuchBucket", "NotFound"))
        elif type_ in (KEY, ALIAS):
            kms = clients(account_id, "kms")
            ok = exists("kms", ident, lambda: usable_key(kms, ident), ("NotFoundException", "ValidationException", "InvalidArnException"))
        elif type_ == LOG_GROUP:
            logs = clients(account_id, "logs")
            ok = exists("logs", ident, lambda: any(g["logGroupName"] == ident for g in logs.describe_log_groups(logGroupNamePrefix=ident)["logGroups"]), ())
        elif type_ == POLICY:
            iam = clients(account_id, "iam")
            ok = exists("iam", ident, lambda: iam.get_policy(PolicyArn=ident), ("NoSuchEntity", "ValidationError", "InvalidInput"))
        else:
            ok = True
        if ok:
            present.add(key)
    return present
