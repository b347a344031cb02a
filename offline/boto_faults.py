"""Failures injected into real boto3 clients, after botocore has validated the call.

Tests that need AWS to fail (throttling, AccessDenied, a quota, a crash) register a handler on the
client's `before-call.<service>.<Operation>` event. botocore emits it only after it has validated
the parameters against the service model and serialised the request, so a call with a wrong or
missing parameter still fails as it would on AWS, never reaching the fault. An AWS error comes back
through botocore's own error path: the modeled exception class (`client.exceptions.X`) with the
code and message, exactly what the code under test would catch from AWS. moto answers every other
call, since it hooks a later event (`before-send`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from botocore.awsrequest import AWSResponse


def operation_name(client: Any, method_or_operation: str) -> str:
    """`list_users` or `ListUsers` → `ListUsers`; an operation the service does not have raises."""
    mapping = client.meta.method_to_api_mapping
    if method_or_operation in mapping:
        return mapping[method_or_operation]
    if method_or_operation in mapping.values():
        return method_or_operation
    service = client.meta.service_model.service_name
    raise ValueError(f"{service} has no operation {method_or_operation!r}")


@dataclass
class Fault:
    """One registered failure; `calls` holds the serialised request of every call it failed."""

    events: Any
    """The event emitter of a client (`client.meta.events`) or of a session (its later clients)."""
    service_id: str
    operation: str
    times: Optional[int]
    error_code: str = ""
    message: str = ""
    status: int = 400
    exception: Optional[BaseException] = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def event(self) -> str:
        return f"before-call.{self.service_id}.{self.operation}"

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:
        if self.times is not None and len(self.calls) >= self.times:
            return None  # let the call through to moto
        self.calls.append(params)
        if self.exception is not None:
            raise self.exception
        http = AWSResponse(params.get("url", ""), self.status, {}, None)
        parsed = {
            "Error": {"Code": self.error_code, "Message": self.message},
            "ResponseMetadata": {"HTTPStatusCode": self.status, "HTTPHeaders": {}},
        }
        return http, parsed

    def remove(self) -> None:
        self.events.unregister(self.event, self)


def _register(fault: Fault) -> Fault:
    fault.events.register(fault.event, fault)
    return fault


def _of_client(client: Any, operation: str, times: Optional[int], **kw: Any) -> Fault:
    service_id = client.meta.service_model.service_id.hyphenize()
    return _register(Fault(client.meta.events, service_id, operation_name(client, operation), times, **kw))


def fail_with_error(
    client: Any, operation: str, code: str, message: str = "", *, times: Optional[int] = None, status: int = 400
) -> Fault:
    """Every call of `operation` (or the first `times`) fails with the AWS error `code`."""
    return _of_client(client, operation, times, error_code=code, message=message or code, status=status)


def fail_with_exception(client: Any, operation: str, exception: BaseException, *, times: Optional[int] = None) -> Fault:
    """Every call of `operation` (or the first `times`) raises `exception` (a crash, not an AWS error)."""
    return _of_client(client, operation, times, exception=exception)


def fail_session_with_error(
    session: Any, service: str, operation: str, code: str, message: str = "", *, times: Optional[int] = None
) -> Fault:
    """Like `fail_with_error` for every client `session` (a boto3 Session) creates from now on."""
    probe = session.client(service, region_name="us-east-1")
    service_id = probe.meta.service_model.service_id.hyphenize()
    events = session._session.get_component("event_emitter")
    return _register(Fault(events, service_id, operation_name(probe, operation), times, error_code=code, message=message or code))
