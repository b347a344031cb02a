"""Checks before the acceptance run touches anything; every failed check says what to do.

All checks run (one missing piece does not hide the next), then the run refuses to start (exit 2)
if any failed. Only read calls are made, plus one `sts:AssumeRole` into the silo account.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from .aws import parent_ou
from .plan import DEPLOY_ROLE, OPT_OUT_TAG, Settings

ACCOUNT = re.compile(r"^\d{12}$")
OU = re.compile(r"^ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$")
SUPPORTED_REGION = re.compile(r"^(us|eu|ap|ca|sa|me|af|il|mx)-[a-z]+-\d$")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"  [{'ok' if self.ok else 'FAILED'}] {self.name}: {self.detail}"


def check_cli(which: Callable[[str], Optional[str]] = shutil.which, run: Callable[..., Any] = subprocess.run) -> Check:
    path = which("pulumi")
    if path is None:
        return Check("pulumi CLI", False, "no `pulumi` on PATH; install it (https://www.pulumi.com/docs/install/, the version "
                     "in datalake:runner.pulumiVersion, 3.272.0) and rerun")
    try:
        version = run([path, "version"], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("pulumi CLI", False, f"{path} does not run (`pulumi version` failed: {exc}); reinstall it")
    return Check("pulumi CLI", True, f"{path} {version}")


def check_arguments(settings: Settings) -> list[Check]:
    checks = []
    if not ACCOUNT.match(settings.silo_account):
        checks.append(Check("--silo-account", False, f"got {settings.silo_account!r}; give the 12-digit id of a sandbox member "
                            "account inside an OU, for example --silo-account 123456789012"))
    if not OU.match(settings.analytics_ou):
        checks.append(Check("--analytics-ou", False, f"got {settings.analytics_ou!r}; give the id of another OU (an empty one "
                            "is fine: aws organizations create-organizational-unit --parent-id <root> --name analytics), "
                            "for example --analytics-ou ou-ab12-22222222"))
    if not SUPPORTED_REGION.match(settings.region):
        checks.append(Check("--region", False, f"got {settings.region!r}; the acceptance runs in the aws partition only, "
                            "for example --region eu-west-1"))
    return checks


def check_credentials(session: Any, region: str) -> tuple[Check, Optional[str]]:
    """(check, caller account id) from sts get-caller-identity."""
    if session.get_credentials() is None:
        return Check("AWS credentials", False, "none found (environment, ~/.aws, SSO); sign in to the sandbox "
                     "organization's management account, e.g. `aws sso login --profile sandbox-admin` and "
                     "AWS_PROFILE=sandbox-admin, then rerun"), None
    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
    except Exception as exc:  # noqa: BLE001 - any failure means the credentials cannot be used
        return Check("AWS credentials", False, f"sts get-caller-identity failed: {exc}; refresh or replace them"), None
    return Check("AWS credentials", True, f"{identity['Arn']} in account {identity['Account']}"), identity["Account"]


def check_organization(org: Any, caller_account: str, settings: Settings) -> list[Check]:
    """The caller is the management account; the silo account and the analytics OU fit the run."""
    try:
        organization = org.describe_organization()["Organization"]
    except Exception as exc:  # noqa: BLE001
        return [Check("organization", False, f"organizations describe-organization failed: {exc}; the account must belong "
                      "to an organization with all features enabled")]
    checks = []
    management = organization["MasterAccountId"]
    if organization.get("FeatureSet") != "ALL":
        checks.append(Check("organization", False, f"{organization['Id']} has FeatureSet {organization.get('FeatureSet')}; "
                            "the silos' org-path conditions need all features enabled"))
    if caller_account != management:
        checks.append(Check("management account", False, f"the credentials are of {caller_account}, not of the management "
                            f"account {management}: {DEPLOY_ROLE} in member accounts trusts only the management account, so "
                            "the runner could not deploy; use the management account's credentials"))
    else:
        checks.append(Check("management account", True, f"{management} of {organization['Id']}"))
    if ACCOUNT.match(settings.silo_account):
        checks.extend(_check_silo_account(org, settings, management))
    if OU.match(settings.analytics_ou):
        try:
            org.describe_organizational_unit(OrganizationalUnitId=settings.analytics_ou)
            checks.append(Check("analytics OU", True, settings.analytics_ou))
        except Exception as exc:  # noqa: BLE001
            checks.append(Check("analytics OU", False, f"{settings.analytics_ou}: {exc}"))
    return checks


def _check_silo_account(org: Any, settings: Settings, management: str) -> list[Check]:
    account = settings.silo_account
    if account == management:
        return [Check("silo account", False, f"{account} is the management account; give a member account")]
    try:
        described = org.describe_account(AccountId=account)["Account"]
    except Exception as exc:  # noqa: BLE001
        return [Check("silo account", False, f"{account}: {exc}; give a member account of this organization")]
    state = described.get("State") or described.get("Status")
    if state != "ACTIVE":
        return [Check("silo account", False, f"{account} is {state}; give an ACTIVE account")]
    ou = parent_ou(org, account)
    if ou is None:
        return [Check("silo account", False, f"{account} sits in the root; move it into an OU (that OU becomes the silo OU)")]
    if ou == settings.analytics_ou:
        return [Check("silo account", False, f"{account} is in {ou}, the analytics OU; the silo and analytics OUs must differ")]
    tags = {t["Key"]: t["Value"] for t in org.list_tags_for_resource(ResourceId=account)["Tags"]}
    if tags.get(OPT_OUT_TAG[0], "").lower() == OPT_OUT_TAG[1]:
        return [Check("silo account", False, f"{account} is opted out ({OPT_OUT_TAG[0]}={OPT_OUT_TAG[1]}); remove the tag")]
    return [Check("silo account", True, f"{account} ({described.get('Name', '')}) ACTIVE in {ou}")]


def check_deploy_role(session: Any, settings: Settings) -> Check:
    arn = f"arn:aws:iam::{settings.silo_account}:role/{DEPLOY_ROLE}"
    try:
        session.client("sts", region_name=settings.region).assume_role(RoleArn=arn, RoleSessionName="datalake-acceptance-preflight")
    except Exception as exc:  # noqa: BLE001
        return Check("deploy role", False, f"cannot assume {arn}: {exc}; accounts created by Organizations have it, invited "
                     "accounts need it created (trusting the management account)")
    return Check("deploy role", True, f"{arn} can be assumed")


def preflight(settings: Settings, session: Any, org_factory: Callable[[], Any], cli: Callable[[], Check] = check_cli
              ) -> tuple[list[Check], Settings]:
    """Every check, and the settings with the master account filled in."""
    checks = [cli(), *check_arguments(settings)]
    credentials, caller = check_credentials(session, settings.region)
    checks.append(credentials)
    if caller is not None:
        checks.extend(check_organization(org_factory(), caller, settings))
        if ACCOUNT.match(settings.silo_account) and all(c.ok for c in checks if c.name == "silo account"):
            checks.append(check_deploy_role(session, settings))
        settings = replace(settings, master_account=caller)
    return checks, settings
