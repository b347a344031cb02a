"""The dropzone and SFTP infrastructure under Pulumi mocks: what the silo program asks AWS for."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from components.shared.errors import ConfigError
from components.stack_config import parse_stack_config
from credential_vending.api import ROUTES as HANDLER_ROUTES
from offline.harness import Recording, RecordedResource
from offline.stacks import run_silo as run_whole_silo, silo_config, without_data_flow

ACCOUNT = "222222222222"
PARTNER_USERS = f"arn:aws:iam::{ACCOUNT}:user/datalake/partners/sales/*"
DROPZONE_BUCKET_ARN = f"arn:aws:s3:::acme-dl-sales-dropzone-{ACCOUNT}"


def run_silo(config: dict | None = None) -> Recording:
    """The silo as the dropzone and SFTP see it: without the data-flow components (issue 3)."""
    return without_data_flow(run_whole_silo(config))


def with_sftp(config: dict | None = None) -> dict:
    """SFTP is opt-in (a Transfer server bills every hour); these tests look at it, so turn it on."""
    config = dict(config or silo_config())
    config["datalake:sftp"] = {**config.get("datalake:sftp", {}), "enabled": True}
    return config


@pytest.fixture(scope="module")
def silo(evaluations) -> Recording:
    """The shipped silo program with SFTP turned on, evaluated once for this module (tests only read it)."""
    return without_data_flow(evaluations.silo(with_sftp()))


def test_sftp_is_off_in_the_shipped_template(evaluations):
    assert without_data_flow(evaluations.silo()).of_type("aws:transfer/server:Server") == []


def statements(resource: RecordedResource, key: str = "policy") -> list[dict[str, Any]]:
    return resource.policy(key)["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function(rec: Recording, suffix: str) -> RecordedResource:
    return rec.one("aws:lambda/function:Function", f"silo-sales-{suffix}-function")


def role_policy_of(rec: Recording, role_name: str) -> RecordedResource:
    role = rec.one("aws:iam/role:Role", role_name)
    found = [p for p in rec.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.outputs["id"]]
    assert len(found) == 1, f"{role.urn}: expected one inline policy, found {[p.urn for p in found]}"
    return found[0]


def method_paths(rec: Recording) -> dict[tuple[str, str], RecordedResource]:
    """(HTTP method, path template) → Method, rebuilding paths from the Resource parent chain."""
    by_id = {r.outputs["id"]: r for r in rec.of_type("aws:apigateway/resource:Resource")}

    def path_of(resource_id: str) -> str:
        resource = by_id[resource_id]
        parent = resource.inputs.get("parentId")
        return (path_of(parent) if parent in by_id else "") + "/" + resource.inputs["pathPart"]

    # Only the dropzone's API: the silo has other REST APIs (the ingestion API).
    dropzone_methods = [
        m
        for m in rec.of_type("aws:apigateway/method:Method")
        if any(a.type == "datalake:dropzone:Dropzone" for a in rec.ancestors(m))
    ]
    return {(m.inputs["httpMethod"], path_of(m.inputs["resourceId"])): m for m in dropzone_methods}


# -- API ----------------------------------------------------------------------------------------


def test_every_route_of_the_handler_is_deployed_behind_the_cognito_authorizer(silo: Recording):
    methods = method_paths(silo)
    authorizer = silo.one("aws:apigateway/authorizer:Authorizer")
    pool = silo.one("aws:cognito/userPool:UserPool")
    assert authorizer.inputs["type"] == "COGNITO_USER_POOLS"
    assert authorizer.inputs["providerArns"] == [pool.outputs["arn"]]
    assert authorizer.inputs["identitySource"] == "method.request.header.Authorization"

    secured = {key for key in methods if key[0] != "OPTIONS"}
    assert secured == {(r.method, r.template) for r in HANDLER_ROUTES}
    for key in secured:
        assert methods[key].inputs["authorization"] == "COGNITO_USER_POOLS", key
        assert methods[key].inputs["authorizerId"] == authorizer.outputs["id"], key
    # Only CORS preflights are open, one per path, and they reach the same function (which returns no data).
    preflights = {path for method, path in methods if method == "OPTIONS"}
    assert preflights == {r.template for r in HANDLER_ROUTES}
    assert all(methods[("OPTIONS", p)].inputs["authorization"] == "NONE" for p in preflights)


def test_every_method_is_a_lambda_proxy_to_the_api_function(silo: Recording):
    api_function = function(silo, "dropzone-api")
    expected_uri = f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{api_function.outputs['arn']}/invocations"
    integrations = silo.of_type("aws:apigateway/integration:Integration")
    assert len(integrations) == len(silo.of_type("aws:apigateway/method:Method"))
    for integration in integrations:
        assert (integration.inputs["type"], integration.inputs["integrationHttpMethod"]) == ("AWS_PROXY", "POST")
        assert integration.inputs["uri"] == expected_uri


def test_api_gateway_may_invoke_only_the_api_function_from_this_api(silo: Recording):
    permission = silo.one("aws:lambda/permission:Permission", "silo-sales-dropzone-api-permission")
    api = silo.one("aws:apigateway/restApi:RestApi")
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    assert permission.inputs["function"] == function(silo, "dropzone-api").outputs["name"]
    assert permission.inputs["sourceArn"] == f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:{api.outputs['id']}/*/*"


def test_cors_origin_reaches_the_function_and_gateway_errors(silo: Recording):
    env = function(silo, "dropzone-api").inputs["environment"]["variables"]
    assert env["ALLOWED_ORIGIN"] == "https://d111111abcdef8.cloudfront.net"
    responses = {r.inputs["responseType"]: r for r in silo.of_type("aws:apigateway/response:Response")}
    assert set(responses) == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses.values():
        assert response.inputs["responseParameters"] == {
            "gatewayresponse.header.Access-Control-Allow-Origin": "'https://d111111abcdef8.cloudfront.net'"
        }


def test_without_an_origin_no_cors_header_is_configured():
    config = silo_config()
    config["datalake:dropzone"] = {**config["datalake:dropzone"], "allowedOrigin": ""}
    rec = run_silo(config)
    assert function(rec, "dropzone-api").inputs["environment"]["variables"]["ALLOWED_ORIGIN"] == ""
    assert all(not r.inputs.get("responseParameters") for r in rec.of_type("aws:apigateway/response:Response"))


def test_stage_is_throttled_and_deployed_after_every_method(silo: Recording):
    settings = silo.one("aws:apigateway/methodSettings:MethodSettings")
    assert settings.inputs["methodPath"] == "*/*"
    assert settings.inputs["settings"]["throttlingRateLimit"] == 10
    assert settings.inputs["settings"]["throttlingBurstLimit"] == 20
    deployment = silo.one("aws:apigateway/deployment:Deployment")
    method_urns = {m.urn for m in silo.of_type("aws:apigateway/method:Method")}
    assert method_urns <= set(deployment.dependencies)


def test_user_pool_is_invitation_only_with_admin_and_member_groups(silo: Recording):
    pool = silo.one("aws:cognito/userPool:UserPool")
    assert pool.inputs["adminCreateUserConfig"]["allowAdminCreateUserOnly"] is True
    assert pool.inputs["mfaConfiguration"] == "ON"
    assert pool.inputs["passwordPolicy"]["minimumLength"] >= 14
    assert pool.inputs.get("deletionProtection") != "ACTIVE"  # the runner destroys silos that leave the OU
    groups = {g.inputs["name"] for g in silo.of_type("aws:cognito/userGroup:UserGroup")}
    assert groups == {"admin", "member"}
    client = silo.one("aws:cognito/userPoolClient:UserPoolClient", "silo-sales-dropzone-console-client")
    assert client.inputs["generateSecret"] is False
    assert "ALLOW_USER_PASSWORD_AUTH" not in client.inputs["explicitAuthFlows"]


# -- audit log and function logs ----------------------------------------------------------------


def test_audit_log_group_has_retention_and_the_silo_key(silo: Recording):
    audit = silo.one("aws:cloudwatch/logGroup:LogGroup", "silo-sales-dropzone-audit-log")
    key = silo.one("aws:kms/key:Key")
    assert audit.inputs["name"] == "datalake/sales/audit"
    assert audit.inputs["retentionInDays"] == 365
    assert audit.inputs["kmsKeyId"] == key.outputs["arn"]
    assert audit.retain_on_delete is True
    grant = key.statement("AllowDropzoneLogEncryption")
    assert grant["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert grant["Condition"]["StringLike"]["kms:EncryptionContext:aws:logs:arn"] == (
        f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:datalake/sales/*"
    )
    for suffix, role in (("dropzone-api", "silo-sales-dropzone-api-role"), ("dropzone-janitor", "silo-sales-dropzone-janitor-role")):
        env = function(silo, suffix).inputs["environment"]["variables"]
        assert env["AUDIT_LOG_GROUP"] == "datalake/sales/audit"
        writes = {s["Sid"]: s["Resource"] for s in statements(role_policy_of(silo, role)) if s["Action"][0].startswith("logs:")}
        assert writes == {
            "WriteAuditRecords": [f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:datalake/sales/audit:*"],
            "WriteOwnLogs": [f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/{function(silo, suffix).inputs['name']}:*"],
        }


def test_retention_periods_follow_the_config():
    config = with_sftp()
    config["datalake:dropzone"] = {**config["datalake:dropzone"], "auditLogRetentionDays": 731, "functionLogRetentionDays": 30}
    rec = run_silo(config)
    groups = {g.inputs["name"]: g.inputs["retentionInDays"] for g in rec.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert groups == {
        "datalake/sales/audit": 731,
        "datalake/sales/api-access": 30,
        "/aws/lambda/acme-dl-sales-credential-vending": 30,
        "/aws/lambda/acme-dl-sales-dropzone-janitor": 30,
        "/aws/lambda/acme-dl-sales-sftp-auth": 30,
        "/aws/transfer/acme-dl-sales-dropzone": 30,
    }


# -- least privilege ----------------------------------------------------------------------------


def test_no_policy_grants_every_action_on_every_resource(silo: Recording):
    for resource, key, document in silo.policies():
        for st in document["Statement"]:
            if st["Effect"] != "Allow" or "Action" not in st:
                continue
            assert not ("*" in as_list(st["Action"]) and "*" in as_list(st.get("Resource", []))), resource.urn
            assert "Sid" in st, resource.urn


@pytest.mark.parametrize("role", ["acme-dl-sales-credential-vending", "acme-dl-sales-dropzone-janitor", "acme-dl-sales-sftp-auth"])
def test_iam_actions_of_the_functions_are_limited_to_the_partner_path(silo: Recording, role: str):
    iam_statements = [s for s in statements(role_policy_of(silo, role_name_of(silo, role)))
                      if any(a.startswith("iam:") for a in as_list(s["Action"]))]
    assert iam_statements, role
    for st in iam_statements:
        if as_list(st["Action"]) == ["iam:ListUsers"]:  # no resource type: lists names only
            assert st["Resource"] == ["*"]
            continue
        assert as_list(st["Resource"]) == [PARTNER_USERS], (role, st["Sid"])


def test_function_and_partner_policies_use_resources_their_actions_accept(silo: Recording):
    """parliament knows each action's resource types: a path ARN on an action without one is denied on AWS."""
    from parliament import analyze_policy_string

    checked = 0
    for resource, key, document in silo.policies():
        if key == "assumeRolePolicy" or not any(part in resource.name for part in ("dropzone", "sftp")):
            continue
        findings = analyze_policy_string(json.dumps(document), ignore_private_auditors=True).findings
        mismatched = [entry for f in findings if f.issue == "RESOURCE_MISMATCH" for entry in f.detail]
        assert mismatched == [], resource.urn
        checked += 1
    assert checked >= 7


def role_name_of(silo: Recording, physical: str) -> str:
    return next(r.name for r in silo.of_type("aws:iam/role:Role") if r.inputs.get("name") == physical)


def test_partners_can_only_be_created_with_the_boundary(silo: Recording):
    boundary = silo.one("aws:iam/policy:Policy")
    policy = role_policy_of(silo, "silo-sales-dropzone-api-role")
    create = next(s for s in statements(policy) if "iam:CreateUser" in s["Action"])
    assert sorted(create["Action"]) == ["iam:CreateUser", "iam:PutUserPolicy"]
    assert create["Condition"] == {"ArnEquals": {"iam:PermissionsBoundary": boundary.outputs["arn"]}}
    other_iam = [s for s in statements(policy) if s["Sid"] != create["Sid"] and any(a.startswith("iam:") for a in s["Action"])]
    for st in other_iam:
        assert not {"iam:CreateUser", "iam:PutUserPolicy", "iam:AttachUserPolicy", "iam:PutUserPermissionsBoundary",
                    "iam:DeleteUserPermissionsBoundary"} & set(st["Action"]), st["Sid"]
    env = function(silo, "dropzone-api").inputs["environment"]["variables"]
    assert env["PERMISSIONS_BOUNDARY_ARN"] == boundary.outputs["arn"]


def test_the_boundary_confines_every_partner_to_its_own_prefix(silo: Recording):
    assert silo.one("aws:iam/policy:Policy").retain_on_delete is True  # partners outlive the stack
    boundary = statements(silo.one("aws:iam/policy:Policy"))
    allowed = {r for st in boundary if st["Effect"] == "Allow" for r in as_list(st["Resource"])}
    key_arn = silo.one("aws:kms/key:Key").outputs["arn"]
    assert allowed == {f"{DROPZONE_BUCKET_ARN}/dropzone/${{aws:username}}/*", DROPZONE_BUCKET_ARN, key_arn}
    listing = next(st for st in boundary if st["Action"] == ["s3:ListBucket"])
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["dropzone/${aws:username}/", "dropzone/${aws:username}/*"]
    read_write = next(st for st in boundary if st["Sid"] == "PartnerOwnPrefixReadWrite")
    assert read_write["Action"] == ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    key = next(st for st in boundary if st["Sid"] == "PartnerOwnPrefixKey")
    assert key["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [DROPZONE_BUCKET_ARN, f"{DROPZONE_BUCKET_ARN}/*"]},
    }
    assert_denies_staff_prefixes(boundary, "PartnerOwnPrefix")


def assert_denies_staff_prefixes(policy: list[dict[str, Any]], sid_prefix: str) -> None:
    """The exact Denies of the staff prefixes (moto evaluates neither boundaries nor the s3:prefix
    condition; IAM applies an explicit Deny of a boundary or a role policy to every request)."""
    denies = [st for st in policy if st["Effect"] == "Deny"]
    assert denies == [
        {
            "Sid": f"{sid_prefix}DenyStaffObjects",
            "Effect": "Deny",
            "Action": ["s3:*Object", "s3:AbortMultipartUpload"],
            "Resource": [f"{DROPZONE_BUCKET_ARN}/dropzone/_staff/*", f"{DROPZONE_BUCKET_ARN}/dropzone/internal/*"],
        },
        {
            "Sid": f"{sid_prefix}DenyStaffListing",
            "Effect": "Deny",
            "Action": ["s3:ListBucket"],
            "Resource": [DROPZONE_BUCKET_ARN],
            "Condition": {"StringLike": {"s3:prefix": ["dropzone/_staff*", "dropzone/internal", "dropzone/internal/*"]}},
        },
    ]


def test_session_role_trusts_only_the_api_role_and_reaches_only_the_dropzone(silo: Recording):
    session_role = silo.one("aws:iam/role:Role", "silo-sales-dropzone-partner-session-role")
    api_role = silo.one("aws:iam/role:Role", "silo-sales-dropzone-api-role")
    (trust,) = statements(session_role, "assumeRolePolicy")
    assert trust["Principal"] == {"AWS": api_role.outputs["arn"]}
    assert session_role.inputs["maxSessionDuration"] == 3600
    env = function(silo, "dropzone-api").inputs["environment"]["variables"]
    assert env["SESSION_ROLE_ARN"] == session_role.outputs["arn"]
    assume = next(s for s in statements(role_policy_of(silo, "silo-sales-dropzone-api-role")) if s["Action"] == ["sts:AssumeRole"])
    assert assume["Resource"] == [session_role.outputs["arn"]]
    assert_dropzone_only(silo, role_policy_of(silo, "silo-sales-dropzone-partner-session-role"))


def assert_dropzone_only(silo: Recording, policy: RecordedResource) -> None:
    key_arn = silo.one("aws:kms/key:Key").outputs["arn"]
    for st in statements(policy):
        if st["Effect"] == "Deny":
            continue
        for resource in as_list(st["Resource"]):
            assert resource in (DROPZONE_BUCKET_ARN, f"{DROPZONE_BUCKET_ARN}/dropzone/*", key_arn), (policy.urn, st["Sid"], resource)
    # Their Allow covers all of `dropzone/`; the staff prefixes are denied explicitly.
    assert_denies_staff_prefixes(statements(policy), "Dropzone")


def test_api_presigns_only_staff_uploads(silo: Recording):
    policy = statements(role_policy_of(silo, "silo-sales-dropzone-api-role"))
    s3 = [s for s in policy if any(a.startswith("s3:") for a in s["Action"])]
    assert [(s["Action"], s["Resource"]) for s in s3] == [(["s3:PutObject"], [f"{DROPZONE_BUCKET_ARN}/dropzone/_staff/*"])]


# -- functions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["dropzone-api", "dropzone-janitor", "sftp-auth"])
def test_functions_ship_their_package_and_the_shared_one_and_their_handler_exists(silo: Recording, suffix: str):
    fn = function(silo, suffix)
    package, module, attribute = fn.inputs["handler"].split(".")
    assert set(fn.inputs["code"].assets) == {package, "dropzone_partners"}
    assert fn.inputs["code"].assets[package].path.endswith(f"functions/{package}")
    assert callable(getattr(importlib.import_module(f"{package}.{module}"), attribute))
    assert fn.inputs["runtime"].startswith("python3.")
    log_group = fn.inputs["loggingConfig"]["logGroup"]
    assert log_group == f"/aws/lambda/{fn.inputs['name']}"


def test_janitor_runs_on_its_schedule(silo: Recording):
    rule = silo.one("aws:cloudwatch/eventRule:EventRule")
    target = silo.one("aws:cloudwatch/eventTarget:EventTarget")
    permission = silo.one("aws:lambda/permission:Permission", "silo-sales-dropzone-janitor-permission")
    janitor = function(silo, "dropzone-janitor")
    assert rule.inputs["scheduleExpression"] == "rate(1 hour)"
    assert target.inputs["arn"] == janitor.outputs["arn"] and target.inputs["rule"] == rule.outputs["name"]
    assert (permission.inputs["principal"], permission.inputs["sourceArn"]) == ("events.amazonaws.com", rule.outputs["arn"])


# -- SFTP ---------------------------------------------------------------------------------------


def test_sftp_server_uses_the_lambda_identity_provider(silo: Recording):
    server = silo.one("aws:transfer/server:Server")
    auth = function(silo, "sftp-auth")
    assert server.inputs["identityProviderType"] == "AWS_LAMBDA"
    assert server.inputs["function"] == auth.outputs["arn"]
    assert server.inputs["protocols"] == ["SFTP"]
    assert server.inputs["securityPolicyName"] == "TransferSecurityPolicy-2025-03"
    assert server.inputs["endpointType"] == "PUBLIC"
    # Structured logs into the stack's own group, not a logging role's self-made /aws/transfer/<server id>.
    group = silo.one("aws:cloudwatch/logGroup:LogGroup", "silo-sales-sftp-logs")
    assert server.inputs["structuredLogDestinations"] == [f"{group.outputs['arn']}:*"]
    assert "loggingRole" not in server.inputs
    assert group.urn in server.dependencies
    permission = silo.one("aws:lambda/permission:Permission", "silo-sales-sftp-auth-permission")
    assert (permission.inputs["principal"], permission.inputs["sourceArn"]) == ("transfer.amazonaws.com", server.outputs["arn"])
    assert auth.inputs["environment"]["variables"]["TRANSFER_ROLE_ARN"] == silo.one(
        "aws:iam/role:Role", "silo-sales-sftp-access-role").outputs["arn"]


def test_transfer_role_reaches_only_the_dropzone_bucket_and_key(silo: Recording):
    role = silo.one("aws:iam/role:Role", "silo-sales-sftp-access-role")
    (trust,) = statements(role, "assumeRolePolicy")
    assert trust["Principal"] == {"Service": "transfer.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert_dropzone_only(silo, role_policy_of(silo, "silo-sales-sftp-access-role"))


def test_sftp_off_means_no_transfer_resources():
    config = silo_config()
    config["datalake:sftp"] = {"enabled": False}
    rec = run_silo(config)
    assert [r for r in rec.resources if r.type.startswith("aws:transfer") or "sftp" in r.name.lower()] == []
    assert "sftpEndpoint" not in rec.outputs
    assert rec.one("aws:apigateway/restApi:RestApi")  # the API stays


def test_sftp_in_a_vpc_opens_port_22_to_the_allowed_cidrs_only():
    config = silo_config()
    config["datalake:sftp"] = {"enabled": True, "endpointType": "VPC", "vpcId": "vpc-0123456789abcdef0",
                               "subnetIds": ["subnet-0123456789abcdef0"], "allowedCidrs": ["203.0.113.0/24", "2001:db8::/32"]}
    rec = run_silo(config)
    group = rec.one("aws:ec2/securityGroup:SecurityGroup")
    (ingress,) = group.inputs["ingress"]
    assert (ingress["fromPort"], ingress["toPort"], ingress["protocol"]) == (22, 22, "tcp")
    assert ingress["cidrBlocks"] == ["203.0.113.0/24"] and ingress["ipv6CidrBlocks"] == ["2001:db8::/32"]
    assert group.inputs["egress"] == []
    server = rec.one("aws:transfer/server:Server")
    assert server.inputs["endpointType"] == "VPC"
    assert server.inputs["endpointDetails"] == {
        "vpcId": "vpc-0123456789abcdef0", "subnetIds": ["subnet-0123456789abcdef0"], "securityGroupIds": [group.outputs["id"]]
    }


# -- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, value, expected",
    [
        ("datalake:sftp", {"endpointType": "VPC"}, "datalake:sftp: got endpointType VPC without vpcId, subnetIds, allowedCidrs"),
        ("datalake:sftp", {"allowedCidrs": ["203.0.113.0/24"]}, "with endpointType PUBLIC, where they would do nothing"),
        ("datalake:sftp", {"endpointType": "VPC", "vpcId": "vpc-12345678", "subnetIds": ["subnet-12345678"],
                           "allowedCidrs": ["10.0.0.1/8"]}, "datalake:sftp.allowedCidrs: got '10.0.0.1/8', which is not a CIDR"),
        ("datalake:sftp", {"securityPolicy": "weak"}, "datalake:sftp.securityPolicy: got 'weak'"),
        ("datalake:dropzone", {"auditLogRetentionDays": 100}, "datalake:dropzone.auditLogRetentionDays: got 100, which CloudWatch Logs does not accept"),
        ("datalake:dropzone", {"allowedOrigin": "https://x.example/"}, "datalake:dropzone.allowedOrigin: got 'https://x.example/'"),
        ("datalake:dropzone", {"janitorSchedule": "hourly"}, "datalake:dropzone.janitorSchedule: got 'hourly'"),
        ("datalake:dropzone", {"mfa": "OFF"}, "datalake:dropzone.mfa"),
        ("datalake:dropzone", {"uploadMaxMb": 6000}, "datalake:dropzone.uploadMaxMb"),
        ("datalake:dropzone", {"auditRetention": 7}, "datalake:dropzone.auditRetention: is not a known key; check its spelling. "
                                                       "Known keys: allowedOrigin, auditLogRetentionDays"),
    ],
)
def test_bad_dropzone_and_sftp_config_names_the_key(section: str, value: dict[str, Any], expected: str):
    config = silo_config()
    config[section] = value
    with pytest.raises(ConfigError) as error:
        parse_stack_config("silo-222222222222", config)
    assert expected in str(error.value)


def test_the_shipped_template_shows_the_dropzone_and_sftp_keys():
    parsed = parse_stack_config("silo-222222222222", silo_config())
    assert parsed.dropzone.allowed_origin == "https://d111111abcdef8.cloudfront.net"
    # SFTP is opt-in (cost); the template shows its keys with the secure public-endpoint defaults.
    assert parsed.sftp.enabled is False and parsed.sftp.endpoint_type == "PUBLIC"


def test_the_dropzone_bucket_refuses_keys_with_dot_segments(silo: Recording):
    """Partners write straight to S3 (and over SFTP): the bucket policy, not the API, must refuse them."""
    policy = next(
        p for p in silo.of_type("aws:s3/bucketPolicy:BucketPolicy") if any(a.name == "silo-sales-storage-dropzone" for a in silo.ancestors(p))
    )
    deny = next(s for s in statements(policy) if s["Sid"] == "DenyDotSegmentKeys")
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", {"AWS": "*"}, ["s3:PutObject"])
    assert deny["Resource"] == [
        f"{DROPZONE_BUCKET_ARN}/{pattern}" for pattern in ("./*", "../*", "*/./*", "*/../*", "*/.", "*/..")
    ]
    # S3 matches Resource patterns against the key as written: `*` spans `/`, so these cover every depth.
    from fnmatch import fnmatchcase

    patterns = [r.split(":::", 1)[1].split("/", 1)[1] for r in deny["Resource"]]
    for key, refused in [("dropzone/acme/../globex/x", True), ("dropzone/acme/./x", True), ("dropzone/acme/x/..", True),
                         ("dropzone/acme/a..b/x", False), ("dropzone/acme/.hidden", False), ("dropzone/acme/x.csv", False)]:
        assert any(fnmatchcase(key, p) for p in patterns) is refused, key
