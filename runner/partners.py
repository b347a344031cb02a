"""Revoking a retiring silo's dropzone partners before its stack is destroyed.

The dropzone creates partner IAM users at run time, outside the stack, under
`/datalake/partners/<silo>/` (`docs/dropzone.md`). `destroy` does not know them and the dropzone
bucket is retained, so without this step a retired silo's partners would keep working keys into
retained data. Before a retire-destroy the executor calls a `PartnerRevoker`, which assumes the
deploy role in the silo account and removes every partner of that silo with the dropzone's own
removal (`dropzone_partners.partners.remove_partner_user`, the code behind `DELETE /partners/{name}`).
If revocation fails, the destroy does not start.

A retire-forget cannot revoke anything: the account is closed, suspended or gone and cannot be
reached; its result carries a note saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional, TextIO

from components.shared.errors import StackOperationError
from components.shared.environments import name_namespace
from functions.dropzone_partners.partners import partner_path, revoke_silo_partners

from .model import PlannedOperation
from .silo_access import AssumedRoleClients

IamFactory = Callable[[str], Any]
"""account id → an IAM client whose calls act in that account."""

UNREACHABLE_NOTE = "dropzone partner users could not be revoked: the account cannot be reached ({reason})"


class PartnerRevocationError(StackOperationError):
    """Revoking a retiring silo's partners failed, so its stack was not destroyed."""


@dataclass(frozen=True)
class AssumedRoleIam:
    """An `IamFactory` that assumes `arn:<partition>:iam::<account>:role/<role_name>` with STS.

    `session` is a boto3 session (a fresh default one when None); each call builds its own clients,
    so concurrent retirements never share a client across threads.
    """

    role_name: str
    """The deploy role the stacks' providers assume (`datalake:deployRoleName`)."""
    region: str
    """Region of the STS endpoint (IAM itself is global)."""
    endpoint_url: Optional[str] = None
    """An AWS emulator's endpoint for STS and IAM (None: AWS)."""
    session: Optional[Any] = None

    def role_arn(self, account_id: str) -> str:
        return self._clients().role_arn(account_id)

    def _clients(self) -> AssumedRoleClients:
        return AssumedRoleClients(self.role_name, self.region, self.endpoint_url, self.session, purpose="runner-revoke")

    def __call__(self, account_id: str) -> Any:
        return self._clients()(account_id, "iam")


@dataclass(frozen=True)
class PartnerRevoker:
    """The revocation step of a retire-destroy: every partner of the silo, in the silo account."""

    iam_for: IamFactory

    def __call__(self, op: PlannedOperation, out: TextIO) -> list[str]:
        """Removes the silo's partners; returns one note for the result. Raises `PartnerRevocationError`."""
        if not op.silo_name:
            raise PartnerRevocationError(
                f"{op.stack}: the silo name is unknown, so its dropzone partners cannot be found",
                "stack not destroyed: its silo name is unknown (no `datalake:silo-name` tag, no `siloName` output), "
                "so its partners under /datalake/partners/<silo>/ cannot be revoked; tag the stack "
                "datalake:silo-name=<silo> and rerun",
            )
        namespace = name_namespace(op.environment)
        path = partner_path(op.silo_name, namespace)
        try:
            revoked = revoke_silo_partners(self.iam_for(op.account_id), op.silo_name, namespace)
        except Exception as exc:  # noqa: BLE001 - any failure (AccessDenied, no credentials, a bug) must stop the destroy
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise PartnerRevocationError(
                f"{op.stack}: revoking partners under {path} failed",
                f"stack not destroyed: revoking dropzone partners under {path} in {op.account_id} failed: {detail}",
            ) from exc
        for name, removed in revoked.items():
            out.write(
                f"# revoked partner {name}: access keys {removed['access_key_ids']}, ssh keys {removed['ssh_key_ids']}, "
                f"policies {removed['policies']}{', login profile' if removed['login_profile'] else ''}\n"
            )
        note = f"revoked {len(revoked)} dropzone partner(s) under {path}" + (f": {', '.join(revoked)}" if revoked else "")
        out.write(f"# {note}\n")
        return [note]


def unreachable_note(op: PlannedOperation) -> str:
    """The note of a retire-forget: its partners (if any) were left, since the account is unreachable."""
    return UNREACHABLE_NOTE.format(reason=op.reason)


RevokePartners = Callable[[PlannedOperation, TextIO], list[str]]
"""The revocation step the executor runs before a destroy; returns notes, raises on failure."""
