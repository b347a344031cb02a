"""`Bootstrap`: creates the state key, the state and log buckets and the deployer role where missing,
and checks what exists (a weaker setting is a `Finding`, never changed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from .compare import policy_gaps, trusted_patterns
from .policies import aws_form, bucket_policy, deployer_policy, dumps, key_policy, lifecycle_rules, trust_policy
from .settings import DEPLOYER_POLICY_NAME, BootstrapSettings

# The logger name of the module before it became a package: log configuration keeps working.
log = logging.getLogger("runner.bootstrap")

# Operations that only read; every other call of a client changes something.
READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Head")


@dataclass
class Finding:
    """Something that exists and is weaker than, or different from, what bootstrap would create."""

    resource: str
    problem: str
    fix: str


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    """What was created (or, in a dry run, would be)."""
    kept: list[str] = field(default_factory=list)
    """What existed and was only checked."""
    findings: list[Finding] = field(default_factory=list)
    key_arn: str = ""
    documents: dict[str, Any] = field(default_factory=dict)
    """File name → the document bootstrap would write; saved under --out-dir for the fixes."""


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class Bootstrap:
    """Creates what is missing and checks what exists; every AWS call goes through the given boto3 clients."""

    def __init__(
        self,
        settings: BootstrapSettings,
        *,
        s3: Any,
        kms: Any,
        iam: Any,
        dry_run: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.s = settings
        self.s3, self.kms, self.iam = s3, kms, iam
        self.dry_run = dry_run
        self.sleep = sleep
        self.out = Outcome()

    def run(self) -> Outcome:
        role_created = self._role()
        self._key()
        self._bucket(self.s.log_bucket, receives_logs=True, log_target=None)
        self._bucket(self.s.state_bucket, receives_logs=False, log_target=self.s.log_bucket)
        self._role_policy(role_created)
        return self.out

    # -- small helpers -------------------------------------------------------------------------

    def _created(self, what: str) -> None:
        self.out.created.append(what)
        log.debug("%s %s", "would create" if self.dry_run else "creating", what)

    def _finding(self, resource: str, problem: str, fix: str) -> None:
        self.out.findings.append(Finding(resource, problem, fix))

    def _tags(self, purpose: str) -> dict[str, str]:
        return {**self.s.tags, "datalake:stack": "bootstrap", "datalake:purpose": purpose}

    def _document_file(self, name: str, document: Any) -> str:
        self.out.documents[name] = aws_form(document)
        return name

    # -- the deployer role ----------------------------------------------------------------------

    def _role(self) -> bool:
        s, name = self.s, self.s.deployer_role
        trust = trust_policy(s)
        trust_file = self._document_file(f"{name}.trust.json", trust)
        try:
            role = self.iam.get_role(RoleName=name)["Role"]
        except Exception as exc:  # noqa: BLE001 - only NoSuchEntity means "create it"
            if _code(exc) != "NoSuchEntity":
                raise
            self._created(f"IAM role {name} (assumable by {', '.join(trust['Statement'][0]['Condition']['ArnLike']['aws:PrincipalArn'])})")
            if not self.dry_run:
                self.iam.create_role(
                    RoleName=name,
                    AssumeRolePolicyDocument=dumps(trust),
                    Description="Runs pulumi up -s master (created by python -m runner bootstrap)",
                    MaxSessionDuration=3600,
                    Tags=[{"Key": k, "Value": v} for k, v in self._tags("master-deployer").items()],
                )
            return True
        patterns, foreign = trusted_patterns(role["AssumeRolePolicyDocument"])
        wanted = set(trust["Statement"][0]["Condition"]["ArnLike"]["aws:PrincipalArn"])
        also = sorted(patterns - wanted)
        self.out.kept.append(f"IAM role {name}" + (f" (also trusts {', '.join(also)})" if also else ""))
        missing = sorted(wanted - patterns)
        if missing:
            # The fix keeps the principals trusted before: bootstrap adds, it never takes trust away.
            merged = trust_policy(replace(s, operators=tuple(sorted(set(s.operators) | set(also)))))
            fix_file = self._document_file(f"{name}.trust.json", merged)
            self._finding(
                f"IAM role {name}",
                f"its trust policy does not let {', '.join(missing)} assume it",
                f"aws iam update-assume-role-policy --role-name {name} --policy-document file://{fix_file}",
            )
        if foreign:
            self._finding(
                f"IAM role {name}",
                f"its trust policy has statements bootstrap would not write ({', '.join(foreign)}): other principals may assume it",
                f"review them; bootstrap's trust policy is in {trust_file}",
            )
        attached = [p["PolicyArn"] for p in self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]
        if attached:
            self._finding(
                f"IAM role {name}",
                f"managed policies are attached ({', '.join(attached)}); the deployer gets least privilege from its inline policy only",
                "; ".join(f"aws iam detach-role-policy --role-name {name} --policy-arn {arn}" for arn in attached),
            )
        others = [p for p in self.iam.list_role_policies(RoleName=name)["PolicyNames"] if p != DEPLOYER_POLICY_NAME]
        if others:
            self._finding(
                f"IAM role {name}",
                f"inline policies other than {DEPLOYER_POLICY_NAME} ({', '.join(others)}) may grant more than `pulumi up -s master` needs",
                "; ".join(f"aws iam delete-role-policy --role-name {name} --policy-name {p}" for p in others),
            )
        return False

    def _role_policy(self, role_created: bool) -> None:
        s, name = self.s, self.s.deployer_role
        key_arn = self.out.key_arn or f"arn:{s.partition}:kms:{s.region}:{s.account_id}:key/<created by this run>"
        wanted = deployer_policy(s, key_arn)
        policy_file = self._document_file(f"{name}.policy.json", wanted)
        if not role_created:
            try:
                actual = self.iam.get_role_policy(RoleName=name, PolicyName=DEPLOYER_POLICY_NAME)["PolicyDocument"]
            except Exception as exc:  # noqa: BLE001
                if _code(exc) != "NoSuchEntity":
                    raise
                actual = None
            fix = f"aws iam put-role-policy --role-name {name} --policy-name {DEPLOYER_POLICY_NAME} --policy-document file://{policy_file}"
            if actual is None:
                self._finding(f"IAM role {name}", f"has no inline policy {DEPLOYER_POLICY_NAME}: it cannot run `pulumi up -s master`", fix)
                return
            missing, extra = policy_gaps(actual, wanted)
            if missing:
                self._finding(f"IAM role {name}", f"policy {DEPLOYER_POLICY_NAME} lacks {', '.join(missing)}", fix)
            if extra:
                self._finding(f"IAM role {name}", f"policy {DEPLOYER_POLICY_NAME} grants more than bootstrap would ({', '.join(extra)})", fix)
            return
        self._created(f"inline policy {DEPLOYER_POLICY_NAME} of {name} ({len(wanted['Statement'])} statements)")
        if not self.dry_run:
            self.iam.put_role_policy(RoleName=name, PolicyName=DEPLOYER_POLICY_NAME, PolicyDocument=dumps(wanted))

    # -- the state key ---------------------------------------------------------------------------

    def _key(self) -> None:
        s = self.s
        alias = f"alias/{s.key_alias}"
        wanted = key_policy(s)
        policy_file = self._document_file(f"{s.key_alias}.key-policy.json", wanted)
        try:
            key = self.kms.describe_key(KeyId=alias)["KeyMetadata"]
        except Exception as exc:  # noqa: BLE001
            if _code(exc) != "NotFoundException":
                raise
            self._created(f"KMS key {alias} (symmetric, yearly rotation, policy: account IAM, {s.deployer_role}, {s.runner_role}, the pipeline's deploy role, S3 log delivery)")
            if self.dry_run:
                return
            key = self._create_key(wanted)
            self.kms.enable_key_rotation(KeyId=key["KeyId"])
            self.kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
            self.out.key_arn = key["Arn"]
            return
        self.out.key_arn = key["Arn"]
        self.out.kept.append(f"KMS key {alias} ({key['Arn']})")
        where = f"KMS key {alias}"
        if key.get("KeyManager") != "CUSTOMER":
            self._finding(where, "is an AWS managed key: its policy cannot grant the deployer, the runner or S3 log delivery", "delete the alias or pass --key-alias <new name>")
            return
        if key.get("KeyState") != "Enabled":
            self._finding(where, f"is {key.get('KeyState')}: nothing can be encrypted or decrypted with it", f"aws kms enable-key --key-id {key['KeyId']} (or cancel its deletion)")
        if key.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT" or key.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
            self._finding(where, f"is {key.get('KeySpec')}/{key.get('KeyUsage')}; S3 and awskms:// need SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT", "pass --key-alias <new name>")
        if not self.kms.get_key_rotation_status(KeyId=key["KeyId"]).get("KeyRotationEnabled"):
            self._finding(where, "has automatic rotation off", f"aws kms enable-key-rotation --key-id {key['KeyId']}")
        missing, extra = policy_gaps(self.kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"], wanted)
        fix = f"aws kms put-key-policy --key-id {key['KeyId']} --policy-name default --policy file://{policy_file}"
        if missing:
            self._finding(where, f"its key policy lacks {', '.join(missing)}", fix)
        if extra:
            self._finding(where, f"its key policy grants more than bootstrap would ({', '.join(extra)})", fix + " (after review)")

    def _create_key(self, policy: dict[str, Any]) -> dict[str, Any]:
        # A role created seconds ago may not be a valid key policy principal yet (IAM is eventually consistent).
        for attempt in range(6):
            try:
                return self.kms.create_key(
                    Description=f"Pulumi state bucket and secrets provider of {self.s.name_prefix} (python -m runner bootstrap)",
                    KeyUsage="ENCRYPT_DECRYPT",
                    KeySpec="SYMMETRIC_DEFAULT",
                    Policy=dumps(policy),
                    Tags=[{"TagKey": k, "TagValue": v} for k, v in self._tags("pulumi-state").items()],
                )["KeyMetadata"]
            except Exception as exc:  # noqa: BLE001
                if _code(exc) != "MalformedPolicyDocumentException" or attempt == 5:
                    raise
                self.sleep(2.0 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- buckets -----------------------------------------------------------------------------------

    def _bucket(self, name: str, *, receives_logs: bool, log_target: Optional[str]) -> None:
        s = self.s
        key_arn = self.out.key_arn or "<the state key>"
        policy = bucket_policy(s, name, key_arn, receives_logs=receives_logs)
        rules = lifecycle_rules(s, log_bucket=receives_logs)
        self._document_file(f"{name}.policy.json", policy)
        self._document_file(f"{name}.lifecycle.json", {"Rules": rules})
        try:
            self.s3.head_bucket(Bucket=name, ExpectedBucketOwner=s.account_id)
        except Exception as exc:  # noqa: BLE001
            code = _code(exc)
            if code in ("403", "AccessDenied", "Forbidden"):
                self._finding(f"bucket {name}", "exists but not in this account (or is not readable here)", f"pass --{'log' if receives_logs else 'state'}-bucket <another name>")
                return
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
            self._create_bucket(name, policy, rules, log_target, receives_logs)
            return
        self.out.kept.append(f"bucket {name}")
        self._check_bucket(name, policy, receives_logs, log_target)

    def _create_bucket(self, name: str, policy: dict[str, Any], rules: list[dict[str, Any]], log_target: Optional[str], receives_logs: bool) -> None:
        s = self.s
        logging_note = f", access logs to {log_target}" if log_target else ", receives access logs"
        self._created(
            f"bucket {name} (versioned, SSE-KMS alias/{s.key_alias}, TLS-only, public access blocked, "
            f"BucketOwnerEnforced, noncurrent versions kept {s.noncurrent_days} days{logging_note})"
        )
        if self.dry_run:
            return
        create: dict[str, Any] = {"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"}
        if s.region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": s.region}
        self.s3.create_bucket(**create)
        self.s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={flag: True for flag in PUBLIC_ACCESS_FLAGS},
        )
        self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.out.key_arn}, "BucketKeyEnabled": True}]
            },
        )
        self.s3.put_bucket_policy(Bucket=name, Policy=dumps(policy))
        self.s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        self.s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in self._tags("pulumi-state-logs" if receives_logs else "pulumi-state").items()]})
        if log_target:
            self.s3.put_bucket_logging(
                Bucket=name, BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": log_target, "TargetPrefix": f"{name}/"}}
            )

    def _read(self, call: Callable[[], Any], absent: Sequence[str]) -> Any:
        """The call's answer, or None when the error code says the setting does not exist."""
        try:
            return call()
        except Exception as exc:  # noqa: BLE001
            if _code(exc) in absent:
                return None
            raise

    def _check_bucket(self, name: str, policy: dict[str, Any], receives_logs: bool, log_target: Optional[str]) -> None:
        s, s3, where = self.s, self.s3, f"bucket {name}"
        region = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        region = "eu-west-1" if region == "EU" else region
        if region != s.region:
            self._finding(where, f"is in {region}, not {s.region}: the backend URL and the stacks expect {s.region}", f"pass --{'log' if receives_logs else 'state'}-bucket <a bucket in {s.region}>")
        if s3.get_bucket_versioning(Bucket=name).get("Status") != "Enabled":
            self._finding(where, "is not versioned: an overwritten or deleted state file cannot be restored", f"aws s3api put-bucket-versioning --bucket {name} --versioning-configuration Status=Enabled")

        encryption = self._read(lambda: s3.get_bucket_encryption(Bucket=name), ("ServerSideEncryptionConfigurationNotFoundError",))
        defaults = [r.get("ApplyServerSideEncryptionByDefault", {}) for r in (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])]
        key_names = {self.out.key_arn, self.out.key_arn.rsplit("/", 1)[-1], f"alias/{s.key_alias}", f"arn:{s.partition}:kms:{s.region}:{s.account_id}:alias/{s.key_alias}"}
        if not any(d.get("SSEAlgorithm") == "aws:kms" and d.get("KMSMasterKeyID") in key_names for d in defaults):
            found = ", ".join(f"{d.get('SSEAlgorithm')} {d.get('KMSMasterKeyID', '')}".strip() for d in defaults) or "none"
            self._finding(
                where,
                f"default encryption is {found}, not SSE-KMS with alias/{s.key_alias}",
                f"aws s3api put-bucket-encryption --bucket {name} --server-side-encryption-configuration "
                f"'{{\"Rules\":[{{\"ApplyServerSideEncryptionByDefault\":{{\"SSEAlgorithm\":\"aws:kms\",\"KMSMasterKeyID\":\"{self.out.key_arn or 'alias/' + s.key_alias}\"}},\"BucketKeyEnabled\":true}}]}}'",
            )

        block = self._read(lambda: s3.get_public_access_block(Bucket=name), ("NoSuchPublicAccessBlockConfiguration",))
        flags = (block or {}).get("PublicAccessBlockConfiguration", {})
        open_flags = [flag for flag in PUBLIC_ACCESS_FLAGS if not flags.get(flag)]
        if open_flags:
            self._finding(
                where,
                f"public access is not fully blocked ({', '.join(open_flags)} off)",
                f"aws s3api put-public-access-block --bucket {name} --public-access-block-configuration "
                + ",".join(f"{flag}=true" for flag in PUBLIC_ACCESS_FLAGS),
            )

        ownership = self._read(lambda: s3.get_bucket_ownership_controls(Bucket=name), ("OwnershipControlsNotFoundError",))
        rules = [r.get("ObjectOwnership") for r in (ownership or {}).get("OwnershipControls", {}).get("Rules", [])]
        if rules != ["BucketOwnerEnforced"]:
            self._finding(where, f"object ownership is {rules[0] if rules else 'not set (ACLs enabled)'}, not BucketOwnerEnforced", f"aws s3api put-bucket-ownership-controls --bucket {name} --ownership-controls Rules=[{{ObjectOwnership=BucketOwnerEnforced}}]")

        actual = self._read(lambda: s3.get_bucket_policy(Bucket=name)["Policy"], ("NoSuchBucketPolicy",))
        fix = f"aws s3api put-bucket-policy --bucket {name} --policy file://{name}.policy.json (merge your own statements first)"
        if actual is None:
            self._finding(where, "has no bucket policy: plain-HTTP requests and uploads under other keys are allowed", fix)
        else:
            missing, extra = policy_gaps(actual, policy)
            if missing:
                self._finding(where, f"its policy lacks {', '.join(missing)}", fix)
            if extra:
                self._finding(where, f"its policy allows more than bootstrap would ({', '.join(extra)})", fix + " (after review)")

        self._check_lifecycle(name, receives_logs)
        if log_target is not None:
            enabled = s3.get_bucket_logging(Bucket=name).get("LoggingEnabled")
            if not enabled:
                self._finding(
                    where,
                    "has server access logging off: reads and writes of the state leave no trace",
                    f"aws s3api put-bucket-logging --bucket {name} --bucket-logging-status "
                    f"'{{\"LoggingEnabled\":{{\"TargetBucket\":\"{log_target}\",\"TargetPrefix\":\"{name}/\"}}}}'",
                )

    def _check_lifecycle(self, name: str, receives_logs: bool) -> None:
        s, where = self.s, f"bucket {name}"
        config = self._read(lambda: self.s3.get_bucket_lifecycle_configuration(Bucket=name), ("NoSuchLifecycleConfiguration",))
        rules = [r for r in (config or {}).get("Rules", []) if r.get("Status") == "Enabled"]
        fix = f"aws s3api put-bucket-lifecycle-configuration --bucket {name} --lifecycle-configuration file://{name}.lifecycle.json"
        noncurrent = [r["NoncurrentVersionExpiration"].get("NoncurrentDays", 0) for r in rules if r.get("NoncurrentVersionExpiration")]
        if not rules:
            self._finding(where, "has no lifecycle rules: superseded versions are kept (and paid for) forever", fix)
        elif noncurrent and min(noncurrent) < s.noncurrent_days:
            self._finding(where, f"expires superseded versions after {min(noncurrent)} days; restores need {s.noncurrent_days}", fix)
        if not receives_logs:
            expiring = [r.get("ID", "?") for r in rules if r.get("Expiration", {}).get("Days") or r.get("Expiration", {}).get("Date")]
            if expiring:
                self._finding(where, f"lifecycle rule(s) {', '.join(expiring)} expire current objects: they would delete stack state", fix)


PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def write_calls(client: Any, into: list[str]) -> list[str]:
    """Records the name of every call of `client` that may change something (not Get/List/Describe/Head)."""

    def record(model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_ONLY_PREFIXES):
            into.append(f"{client.meta.service_model.service_name}:{model.name}")

    client.meta.events.register("before-call.*.*", record)
    return into
