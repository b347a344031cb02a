"""Every IAM policy either program (and every handler) emits passes parliament, strictly.

Unknown actions and prefixes, condition keys that do not apply to their action, malformed or
mismatched ARNs fail, across the configurations that change what the programs emit. The few
findings AWS accepts are in `offline.iam_lint.ALLOWED`, each with its AWS documentation reason.
"""

from __future__ import annotations

import functools
import json
import re

import pytest

from offline import iam_lint
from offline.harness import MASTER_ACCOUNT_ID, SILO_ACCOUNT_ID, Recording
from offline.iam_lint import IDENTITY, KEY, PERMISSION, RESOURCE, SESSION, TRUST, PolicyDocument, lint
from offline.urns import CONFIGURATIONS as URN_CONFIGURATIONS, Configuration, recording_of

KEY_ARN = f"arn:aws:kms:eu-west-1:{SILO_ACCOUNT_ID}:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


# The URN guard's configurations (offline/urns.py, evaluated once per process for both guards), and
# the ones only the policies care about.
EXTRA_CONFIGURATIONS = (
    Configuration(
        "master-s3-source-state-bucket-secrets-key", "master", "delivery from S3 with its own secrets key; a state bucket",
        {
            "datalake:delivery": {
                "source": "s3", "repository": None,
                "secretsKeyArn": f"arn:aws:kms:eu-west-1:{MASTER_ACCOUNT_ID}:key/1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809",
            },
            "datalake:runner": {"stateBucket": "acme-dl-pulumi-state", "secretsProvider": "awskms://alias/acme-dl-master?region=eu-west-1"},
        },
    ),
    Configuration(
        "silo-api-keys-mfa-optional", "silo", "API-key ingestion with a quota, optional MFA in the dropzone",
        {"datalake:ingestion": {"authorization": "apiKey", "dailyQuota": 100000}, "datalake:dropzone": {"mfa": "OPTIONAL"}},
    ),
    # Another partition: every ARN must carry it (the console is refused outside `aws`).
    Configuration(
        "silo-aws-us-gov", "silo", "the silo in us-gov-west-1, console off",
        {"aws:region": "us-gov-west-1", "datalake:console": {"enabled": False}},
    ),
)
EXTRA_BY_NAME = {c.name: c for c in EXTRA_CONFIGURATIONS}
CONFIGURATION_NAMES = [c.name for c in URN_CONFIGURATIONS] + list(EXTRA_BY_NAME)


@functools.cache
def evaluated(name: str) -> Recording:
    return EXTRA_BY_NAME[name].evaluate() if name in EXTRA_BY_NAME else recording_of(name)


@pytest.fixture(params=CONFIGURATION_NAMES)
def recording(request) -> Recording:
    return evaluated(request.param)


def test_every_policy_document_of_every_configuration_lints_clean(recording):
    documents = iam_lint.documents(recording)
    assert documents, "no policy documents found"
    findings = [str(f) for document in documents for f in lint(document)]
    assert findings == []


def test_every_arn_in_every_policy_carries_the_stack_s_partition(recording):
    region = next(r.inputs["region"] for r in recording.of_type("pulumi:providers:aws") if "region" in r.inputs)
    partition = "aws-us-gov" if region.startswith("us-gov-") else "aws-cn" if region.startswith("cn-") else "aws"
    wrong = sorted({f"{d.source.rsplit('::', 1)[-1]}: arn:{p}:" for d in iam_lint.documents(recording)
                    for p in re.findall(r"arn:(aws[a-z-]*):", json.dumps(d.document)) if p != partition})
    assert wrong == []


def test_every_policy_json_in_any_input_is_classified(recording):
    """A resource type that carries policy JSON but that the linter does not read fails here."""
    assert iam_lint.unclassified(recording) == []


def test_every_kind_of_document_is_linted():
    kinds = {d.kind for name in ("master", "silo-sftp-public") for d in iam_lint.documents(evaluated(name))}
    assert {IDENTITY, TRUST, KEY, RESOURCE, PERMISSION} <= kinds


def test_every_resource_arn_the_harness_answers_has_the_type_s_real_format(recording):
    """The linter checks ARNs against AWS's formats; the harness must not answer made-up ones."""
    assert recording.generic_arn_types == set(), "add these types' ARN formats to offline/harness.py _ARN_FORMATS"


# -- session policies the handlers build at run time --------------------------------------------


def _dropzone():
    from dropzone_partners.partners import Dropzone

    return Dropzone(silo="sales", bucket=f"acme-dl-sales-dropzone-{SILO_ACCOUNT_ID}", key_arn=KEY_ARN)


@pytest.mark.parametrize("cidrs", [(), ("192.0.2.0/24", "198.51.100.7/32")], ids=["anywhere", "from CIDRs"])
def test_partner_access_policy_lints_clean(cidrs):
    """The partner's inline policy, and the session policy of `POST .../session` and of SFTP logins."""
    document = PolicyDocument("Dropzone.access_policy", SESSION, _dropzone().access_policy("acme", list(cidrs)))
    assert [str(f) for f in lint(document)] == []


# -- the linter itself fails on what AWS refuses ------------------------------------------------


def _identity(*statements) -> PolicyDocument:
    return PolicyDocument("test", IDENTITY, {"Version": "2012-10-17", "Statement": list(statements)})


BUCKET = "arn:aws:s3:::acme-dl-sales-raw-222222222222"


@pytest.mark.parametrize(
    "statement, issue",
    [
        ({"Sid": "A", "Effect": "Allow", "Action": "s3:GetObjects", "Resource": f"{BUCKET}/*"}, "UNKNOWN_ACTION"),
        ({"Sid": "A", "Effect": "Allow", "Action": "s4:GetObject", "Resource": f"{BUCKET}/*"}, "UNKNOWN_PREFIX"),
        ({"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": BUCKET}, "RESOURCE_MISMATCH"),
        ({"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{BUCKET}/*",
          "Condition": {"StringEquals": {"s3:prefix": "x/"}}}, "UNKNOWN_CONDITION_FOR_ACTION"),
        ({"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "acme-dl-sales-raw/*"}, "INVALID_ARN"),
        ({"Sid": "A", "Effect": "Allow", "Action": "events:PutEvents",
          "Resource": "arn:aws:cloudwatch:eu-west-1:222222222222:acme-rule"}, "RESOURCE_MISMATCH"),
        ({"Sid": "A", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::*:role/x",
          "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam:eu-west-1:222222222222:role/x"}}}, "ARN_FORMAT"),
        ({"Sid": "A", "Effect": "Allow", "Action": "lambda:InvokeFunction",
          "Resource": "arn:aws:lambda:eu-west-1:222222222222:function:f",
          "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:eu-west-1:222222222222:acme-rule"}}}, "ARN_FORMAT"),
        ({"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{BUCKET}/*",
          "Condition": {"Bool": {"aws:SecureTransport": "yes"}}}, "MISMATCHED_TYPE_OPERATION_TO_NULL"),
    ],
    ids=["unknown action", "unknown prefix", "object action on a bucket", "key of another action", "not an ARN",
         "cloudwatch ARN for an event rule", "regional IAM ARN", "wrong service in a condition", "bool as text"],
)
def test_the_linter_reports_what_aws_refuses(statement, issue):
    assert issue in {f.issue for f in lint(_identity(statement))}


def test_a_trust_policy_is_linted_as_the_role_s_resource_policy():
    """Without a Resource parliament stops early; the linter adds the role so actions and keys are checked."""
    trust = PolicyDocument(
        "test", TRUST,
        {"Version": "2012-10-17", "Statement": [{"Sid": "T", "Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"},
                                                 "Action": "sts:AssumeRoles"}]},
        "arn:aws:iam::222222222222:role/acme",
    )
    assert {f.issue for f in lint(trust)} == {"UNKNOWN_ACTION"}
    bad_key = PolicyDocument(
        "test", TRUST,
        {"Version": "2012-10-17", "Statement": [{"Sid": "T", "Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"},
                                                 "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"s3:prefix": "x"}}}]},
        "arn:aws:iam::222222222222:role/acme",
    )
    assert {f.issue for f in lint(bad_key)} == {"UNKNOWN_CONDITION_FOR_ACTION"}


def test_only_the_root_statement_of_a_key_policy_may_grant_kms_star():
    def key_policy(actions):
        return PolicyDocument(
            "test", KEY,
            {"Version": "2012-10-17", "Statement": [{"Sid": "K", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                                                     "Action": actions, "Resource": "*"}]},
            KEY_ARN,
        )

    assert lint(key_policy("kms:*")) == []
    # A key-less action named on its own in a key policy is a mistake the allowance does not cover.
    assert {f.issue for f in lint(key_policy(["kms:Decrypt", "kms:ListKeys"]))} == {"RESOURCE_MISMATCH"}


def test_describe_execution_may_name_standard_executions_only():
    def identity(resource):
        return PolicyDocument("test", IDENTITY, {"Version": "2012-10-17", "Statement": [
            {"Sid": "S", "Effect": "Allow", "Action": ["states:DescribeExecution", "states:StopExecution"], "Resource": resource}]})

    assert lint(identity("arn:aws:states:eu-west-1:222222222222:execution:acme-dl-runner:*")) == []
    # A resource of another service is still a mismatch: the allowance covers the missing express format only.
    assert {f.issue for f in lint(identity("arn:aws:s3:::bucket/*"))} == {"RESOURCE_MISMATCH"}


def test_every_allowance_cites_the_aws_documentation():
    for allowance in iam_lint.ALLOWED:
        assert "https://docs.aws.amazon.com/" in allowance.reason, allowance.issue


def test_a_lambda_permission_becomes_the_statement_lambda_writes():
    recording = evaluated("silo")
    permissions = [d for d in iam_lint.documents(recording) if d.kind == PERMISSION]
    assert permissions
    for document in permissions:
        (statement,) = document.document["Statement"]
        assert statement["Action"] == "lambda:InvokeFunction"
        assert statement["Resource"].startswith(f"arn:aws:lambda:eu-west-1:{SILO_ACCOUNT_ID}:function:")
        assert json.dumps(statement["Condition"]).count("arn:aws:") == 1
