"""Revoking a retiring silo's dropzone partners before `destroy`: moto IAM in two accounts + the fake stack operations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from offline.boto_faults import fail_session_with_error, fail_with_error, operation_name
from offline.fake_stacks import FakeStackOperations
from runner.execution import ExecutionSettings, execute
from runner.model import Action, PlannedOperation, Result, StackInfo
from components.shared.errors import StackLockedError
from components.shared.iam import partition_of
from runner.partners import AssumedRoleIam, PartnerRevoker

SILO_ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
ROLE = "OrganizationAccountAccessRole"
REGION = "eu-west-1"
SSH_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDZ5Q5Q5Q5Q5Q5Q5Q5Q5Q5Q5Q5Q5Q ops@acme"


def add_partner(iam: Any, silo: str, name: str, *, login: bool = False) -> None:
    """A partner as the credential-vending API leaves it (plus, optionally, a console password set by hand)."""
    boundary = iam.create_policy(
        PolicyName=f"{name}-boundary", Path="/datalake/",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}),
    )["Policy"]["Arn"]
    iam.create_user(UserName=name, Path=f"/datalake/partners/{silo}/", PermissionsBoundary=boundary,
                    Tags=[{"Key": "datalake:partner", "Value": name}, {"Key": "datalake:silo", "Value": silo}])
    iam.put_user_policy(UserName=name, PolicyName="dropzone-access", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::b/dropzone/{name}/*"}]}
    ))
    iam.create_access_key(UserName=name)
    iam.create_access_key(UserName=name)  # a rotation with a grace period leaves two
    iam.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=SSH_KEY)
    if login:
        iam.create_login_profile(UserName=name, Password="Correct-Horse-Battery-9")


def user_names(iam: Any) -> set[str]:
    return {u["UserName"] for u in iam.list_users()["Users"]}


class Recording:
    """A real (moto) IAM client that records each call; `fail_on` makes one operation fail with AccessDenied.

    The failure is injected after botocore validated the call (offline.boto_faults), with AWS's message.
    """

    def __init__(self, real: Any, fail_on: str = ""):
        self._real, self.calls = real, []
        if fail_on:
            operation = operation_name(real, fail_on)
            fail_with_error(real, fail_on, "AccessDenied",
                            f"User: arn:aws:sts::{SILO_ACCOUNT}:assumed-role/{ROLE}/datalake-runner-revoke is not authorized "
                            f"to perform: iam:{operation} on resource: user")

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name in ("exceptions", "meta", "get_paginator") or not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return attribute(**kwargs)

        return call


class DestroyWatcher(FakeStackOperations):
    """Fake stacks that note which partner users still existed when `destroy` started."""

    def __init__(self, stacks, iam: Any):
        super().__init__(stacks)
        self.iam = iam
        self.users_at_destroy: set[str] | None = None

    def destroy(self, stack, log):
        self.users_at_destroy = user_names(self.iam)
        return super().destroy(stack, log)


@pytest.fixture
def accounts():
    """IAM in the silo account and in another account, each reached through the deploy role, like the runner does."""
    with mock_aws():
        factory = AssumedRoleIam(role_name=ROLE, region=REGION)
        yield factory, factory(SILO_ACCOUNT), factory(OTHER_ACCOUNT)


def retire(silo: str | None = "sales", action: Action = Action.RETIRE_DESTROY) -> PlannedOperation:
    reason = "account moved out of the silo OU" if action is Action.RETIRE_DESTROY else "account is SUSPENDED"
    return PlannedOperation(SILO_ACCOUNT, "Sales", f"silo-{SILO_ACCOUNT}", action, reason, silo_name=silo)


def settings(tmp_path: Path) -> ExecutionSettings:
    return ExecutionSettings(log_dir=tmp_path / "logs", lock_retry_seconds=0.01)


def no_export(stack: str, state: dict) -> str:
    return f"memory://{stack}"


def test_retire_destroy_revokes_the_silos_partners_before_destroy_and_nobody_else(accounts, tmp_path):
    factory, silo_iam, other_iam = accounts
    add_partner(silo_iam, "sales", "acme", login=True)
    add_partner(silo_iam, "sales", "initech")
    add_partner(silo_iam, "marketing", "globex")  # another silo's path in the same account
    silo_iam.create_user(UserName="ops-admin", Path="/")
    silo_iam.create_user(UserName="nested", Path="/datalake/partners/sales/archive/")  # deeper path: not a partner
    add_partner(other_iam, "sales", "acme")  # the same silo name in another account
    recorded: list[Recording] = []

    def iam_for(account_id: str) -> Any:
        recorded.append(Recording(factory(account_id)))
        return recorded[-1]

    fake = DestroyWatcher([StackInfo(f"silo-{SILO_ACCOUNT}", "sales")], silo_iam)
    [result] = execute([retire()], fake, settings(tmp_path), no_export, revoke_partners=PartnerRevoker(iam_for))

    assert result.result is Result.SUCCEEDED, result.error
    assert [c for c, _ in fake.calls] == ["export", "destroy", "remove"]
    assert fake.users_at_destroy == {"globex", "ops-admin", "nested"}  # the partners were gone before destroy began
    assert user_names(silo_iam) == {"globex", "ops-admin", "nested"}
    assert user_names(other_iam) == {"acme"}
    assert len(other_iam.list_access_keys(UserName="acme")["AccessKeyMetadata"]) == 2
    assert result.notes == ["revoked 2 dropzone partner(s) under /datalake/partners/sales/: acme, initech"]
    log = Path(result.log_file).read_text()
    assert "# revoked partner acme:" in log and "login profile" in log
    # Every key was made inactive before any was deleted; the console password went too.
    calls = [name for name, kwargs in recorded[0].calls if kwargs.get("UserName") == "acme"]
    assert calls.count("update_access_key") == 2 and calls.count("update_ssh_public_key") == 1
    assert max(i for i, c in enumerate(calls) if c.startswith("update_")) < calls.index("delete_access_key")
    assert "delete_login_profile" in calls and calls[-1] == "delete_user"


def test_a_failed_revocation_stops_the_destroy_and_leaves_the_partner_locked_out(accounts, tmp_path):
    factory, silo_iam, _ = accounts
    add_partner(silo_iam, "sales", "acme")
    fake = FakeStackOperations([StackInfo(f"silo-{SILO_ACCOUNT}", "sales")])
    revoker = PartnerRevoker(lambda account: Recording(factory(account), fail_on="delete_user"))
    [result] = execute([retire()], fake, settings(tmp_path), no_export, revoke_partners=revoker)

    assert result.result is Result.FAILED
    assert result.error.startswith(
        f"stack not destroyed: revoking dropzone partners under /datalake/partners/sales/ in {SILO_ACCOUNT} failed: "
    )
    assert "AccessDenied" in result.error and "iam:DeleteUser" in result.error
    assert [c for c, _ in fake.calls] == ["export"]
    assert f"silo-{SILO_ACCOUNT}" in fake.stacks and not fake.removed
    assert "# FAILED: stack not destroyed" in Path(result.log_file).read_text()
    # The user is still there, but its keys were deactivated and deleted before the failing step.
    assert silo_iam.list_access_keys(UserName="acme")["AccessKeyMetadata"] == []
    assert silo_iam.list_ssh_public_keys(UserName="acme")["SSHPublicKeys"] == []


def test_an_unreachable_account_fails_the_retirement_without_destroy(tmp_path):
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        fail_session_with_error(session, "sts", "assume_role", "AccessDenied",
                                f"User: arn:aws:iam::{OTHER_ACCOUNT}:user/runner is not authorized to perform: sts:AssumeRole "
                                f"on resource: arn:aws:iam::{SILO_ACCOUNT}:role/{ROLE}")
        fake = FakeStackOperations([StackInfo(f"silo-{SILO_ACCOUNT}", "sales")])
        revoker = PartnerRevoker(AssumedRoleIam(ROLE, REGION, session=session))
        [result] = execute([retire()], fake, settings(tmp_path), no_export, revoke_partners=revoker)
    assert result.result is Result.FAILED and "AccessDenied" in result.error and "sts:AssumeRole" in result.error
    assert ("destroy", f"silo-{SILO_ACCOUNT}") not in fake.calls


def test_a_stack_without_a_silo_name_is_not_destroyed(accounts, tmp_path):
    factory, silo_iam, _ = accounts
    add_partner(silo_iam, "sales", "acme")
    fake = FakeStackOperations([StackInfo(f"silo-{SILO_ACCOUNT}")])
    [result] = execute([retire(silo=None)], fake, settings(tmp_path), no_export, revoke_partners=PartnerRevoker(factory))
    assert result.result is Result.FAILED
    assert "silo name is unknown" in result.error and "datalake:silo-name=<silo>" in result.error
    assert [c for c, _ in fake.calls] == ["export"] and user_names(silo_iam) == {"acme"}


def test_without_a_revocation_step_no_stack_is_destroyed(tmp_path):
    fake = FakeStackOperations([StackInfo(f"silo-{SILO_ACCOUNT}", "sales")])
    [result] = execute([retire()], fake, settings(tmp_path), no_export)
    assert result.result is Result.FAILED and result.error == "stack not destroyed: the runner was given no partner revocation step"
    assert fake.calls == []


def test_retire_forget_revokes_nothing_and_says_so(tmp_path):
    asked: list[str] = []
    fake = FakeStackOperations([StackInfo(f"silo-{SILO_ACCOUNT}", "sales")])
    revoker = PartnerRevoker(lambda account: asked.append(account))
    [result] = execute([retire(action=Action.RETIRE_FORGET)], fake, settings(tmp_path), no_export, revoke_partners=revoker)
    assert result.result is Result.SUCCEEDED and asked == []
    assert result.notes == ["dropzone partner users could not be revoked: the account cannot be reached (account is SUSPENDED)"]
    assert result.to_json()["notes"] == result.notes


def test_a_locked_destroy_is_retried_and_keeps_the_revocation_note(accounts, tmp_path):
    factory, silo_iam, _ = accounts
    add_partner(silo_iam, "sales", "acme")
    stack = f"silo-{SILO_ACCOUNT}"

    class LockedOnce(FakeStackOperations):
        def destroy(self, name, log):
            if not any(c == ("destroy", name) for c in self.calls):
                self._record("destroy", name)
                from components.shared.errors import StackLockedError

                raise StackLockedError(f"{name}: locked")
            return super().destroy(name, log)

    fake = LockedOnce([StackInfo(stack, "sales")])
    [result] = execute([retire()], fake, settings(tmp_path), no_export, revoke_partners=PartnerRevoker(factory))
    assert result.result is Result.SUCCEEDED and result.attempts == 2
    assert result.notes[0] == "revoked 1 dropzone partner(s) under /datalake/partners/sales/: acme"
    assert user_names(silo_iam) == set()


def test_the_deploy_role_arn_follows_the_partition():
    assert AssumedRoleIam("deployer", "eu-west-1").role_arn(SILO_ACCOUNT) == f"arn:aws:iam::{SILO_ACCOUNT}:role/deployer"
    assert AssumedRoleIam("deployer", "cn-north-1").role_arn(SILO_ACCOUNT) == f"arn:aws-cn:iam::{SILO_ACCOUNT}:role/deployer"
    assert partition_of("us-gov-west-1") == "aws-us-gov"


def test_the_factory_acts_in_the_silo_account():
    with mock_aws():
        iam = AssumedRoleIam(ROLE, REGION)(SILO_ACCOUNT)
        iam.create_user(UserName="probe", Path="/")
        assert iam.get_user(UserName="probe")["User"]["Arn"] == f"arn:aws:iam::{SILO_ACCOUNT}:user/probe"
        assert "probe" not in user_names(boto3.client("iam", region_name=REGION))  # not the caller's own account


def test_lock_retries_do_not_repeat_the_export_or_the_revocation(tmp_path):
    """A retire-destroy whose destroy meets a lock twice, then whose remove meets one: each side effect happens once."""
    stack = f"silo-{SILO_ACCOUNT}"
    revocations, exports = [], []

    def revoke(op, out):
        revocations.append(op.stack)
        return [f"revoked 1 dropzone partner(s) under /datalake/partners/{op.silo_name}/: acme"]

    def save(name, state):
        exports.append(name)
        return f"memory://{name}"

    class Locked(FakeStackOperations):
        """`destroy` finds the stack locked twice, then `remove` once."""

        def __init__(self, stacks):
            super().__init__(stacks)
            self.remaining = {"destroy": 2, "remove": 1}

        def _locked(self, operation, name):
            if self.remaining[operation]:
                self.remaining[operation] -= 1
                self._record(f"{operation} (locked)", name)
                raise StackLockedError(f"{name}: {operation} found the stack locked by another update")

        def destroy(self, name, log):
            self._locked("destroy", name)
            return super().destroy(name, log)

        def remove(self, name, *, force):
            self._locked("remove", name)
            super().remove(name, force=force)

    fake = Locked([StackInfo(stack, "sales")])
    [result] = execute([retire()], fake, settings(tmp_path), save, revoke_partners=revoke)
    assert result.result is Result.SUCCEEDED and result.attempts == 4, result.error
    assert [c for c, _ in fake.calls] == ["export", "destroy (locked)", "destroy (locked)", "destroy", "remove (locked)", "remove"]
    assert exports == [stack] and revocations == [stack]
    assert result.notes == ["revoked 1 dropzone partner(s) under /datalake/partners/sales/: acme"]
    assert result.changed == fake.resources_per_stack
    log = Path(result.log_file).read_text()
    assert log.count("# state exported to") == 1 and "resuming; already done: destroy, export, revoke" in log


def test_a_locked_create_does_not_create_or_configure_again(tmp_path):
    account = "333333333333"
    create = PlannedOperation(account, "New", f"silo-{account}", Action.CREATE, "new", "new", {"datalake:accountId": account})
    fake = FakeStackOperations(locked={f"silo-{account}": 2})
    [result] = execute([create], fake, settings(tmp_path), no_export)
    assert result.result is Result.SUCCEEDED and result.attempts == 3
    assert [c for c, _ in fake.calls] == ["create", "set_config", "up", "up", "up"]
