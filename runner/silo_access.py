"""Reaching a silo account from the runner: boto3 clients through the deploy role.

The runner runs with the master's credentials; everything it does *inside* a silo account (revoking
dropzone partners, measuring and purging retained data) goes through the role the silo stacks deploy
with, `arn:<partition>:iam::<account>:role/<deployRoleName>`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from components.shared.iam import partition_of

ClientFactory = Callable[[str, str], Any]
"""(account id, service name) → a boto3 client whose calls act in that account."""


@dataclass
class AssumedRoleClients:
    """A `ClientFactory` that assumes the deploy role with STS, once per account.

    `session` is a boto3 session (one default session per factory when None). Clients are cached
    per (account, service): boto3 clients are thread-safe, sessions are not, so clients are only
    created under a lock. Credentials last the STS default of one hour: make one factory per run.
    """

    role_name: str
    """The deploy role the stacks' providers assume (`datalake:deployRoleName`)."""
    region: str
    """Region of the STS endpoint and of regional clients."""
    endpoint_url: Optional[str] = None
    """An AWS emulator's endpoint (None: AWS)."""
    session: Optional[Any] = None
    purpose: str = "runner"
    """Part of the role session name, so CloudTrail says why the runner was in the account."""
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, init=False, repr=False)
    _credentials: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def role_arn(self, account_id: str) -> str:
        return f"arn:{partition_of(self.region)}:iam::{account_id}:role/{self.role_name}"

    def _session(self) -> Any:
        if self.session is None:
            import boto3

            self.session = boto3.session.Session()
        return self.session

    def __call__(self, account_id: str, service: str) -> Any:
        with self._lock:
            client = self._clients.get((account_id, service))
            if client is None:
                credentials = self._credentials.get(account_id)
                if credentials is None:
                    sts = self._session().client("sts", region_name=self.region, endpoint_url=self.endpoint_url)
                    credentials = self._credentials[account_id] = sts.assume_role(
                        RoleArn=self.role_arn(account_id), RoleSessionName=f"datalake-{self.purpose}-{account_id}"[:64]
                    )["Credentials"]
                client = self._clients[(account_id, service)] = self._session().client(
                    service,
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=credentials["AccessKeyId"],
                    aws_secret_access_key=credentials["SecretAccessKey"],
                    aws_session_token=credentials["SessionToken"],
                )
        return client
