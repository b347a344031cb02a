"""The dropzone audit log: one structured JSON record per state change, in CloudWatch Logs.

Records go to the log group `datalake/<silo>/audit` (its retention is set by the infrastructure),
into one stream per Lambda instance. A record never holds a secret: callers pass only names,
key ids and settings.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Optional

from dropzone_partners.partners import format_time, utc_now

LOG = logging.getLogger(__name__)


class AuditLog:
    """Writes audit records with an injectable CloudWatch Logs client."""

    def __init__(self, logs: Any, group: str, source: str, clock: Callable[[], datetime] = utc_now):
        self.logs = logs
        self.group = group
        self.source = source
        self.clock = clock
        self.stream: Optional[str] = None

    def _ensure_stream(self) -> str:
        if self.stream is None:
            stream = f"{self.clock().strftime('%Y/%m/%d')}/{self.source}/{uuid.uuid4().hex}"
            try:
                self.logs.create_log_stream(logGroupName=self.group, logStreamName=stream)
            except self.logs.exceptions.ResourceAlreadyExistsException:
                pass
            self.stream = stream
        return self.stream

    def record(
        self,
        action: str,
        *,
        actor: str,
        request_id: str,
        partner: Optional[str] = None,
        details: Optional[Mapping[str, Any]] = None,
    ) -> dict[str, Any]:
        """Writes one record and returns it. If CloudWatch refuses it, the record still reaches the
        function's own log (and the failure is logged), so no state change goes unrecorded."""
        now = self.clock()
        entry = {
            "time": format_time(now),
            "action": action,
            "actor": actor,
            "partner": partner,
            "request_id": request_id,
            "source": self.source,
            "details": dict(details or {}),
        }
        message = json.dumps(entry, sort_keys=True, default=str)
        try:
            # The event's timestamp is when it was written (CloudWatch refuses events from the
            # future or the far past); the record's own `time` is the clock the handler used.
            answer = self.logs.put_log_events(
                logGroupName=self.group,
                logStreamName=self._ensure_stream(),
                logEvents=[{"timestamp": int(time.time() * 1000), "message": message}],
            )
            if answer.get("rejectedLogEventsInfo"):
                raise RuntimeError(f"CloudWatch rejected the event: {answer['rejectedLogEventsInfo']}")
        except Exception as exc:  # noqa: BLE001 - the audit trail must survive a CloudWatch outage
            LOG.error("audit record not written to %s (%s): %s", self.group, type(exc).__name__, message)
        return entry
