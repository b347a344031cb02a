"""The console's infrastructure under Pulumi mocks: what the silo program asks AWS for."""

from __future__ import annotations

import json

import pytest

from components.stack_config import parse_stack_config
from components.silo.console import (
    ALL_VIEWER_EXCEPT_HOST_HEADER,
    CACHING_DISABLED,
    CONSOLE_DIR,
    cognito_domain_prefix,
    console_files,
    split_api_url,
)
from components.shared.errors import ConfigError
from offline.harness import SILO_ACCOUNT_ID, Recording
from offline.stacks import run_silo as run_whole_silo, silo_config, without_data_flow


def run_silo(config: dict | None = None) -> Recording:
    """The silo as the console sees it: without the data-flow components (issue 3)."""
    return without_data_flow(run_whole_silo(config))

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
FUNCTION = "aws:cloudfront/function:Function"
CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
DOMAIN = "aws:cognito/userPoolDomain:UserPoolDomain"
BUCKET = "aws:s3/bucket:Bucket"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
CORS = "aws:s3/bucketCorsConfiguration:BucketCorsConfiguration"
CONSOLE_BUCKET = f"acme-dl-sales-console-{SILO_ACCOUNT_ID}"
DROPZONE_BUCKET = f"acme-dl-sales-dropzone-{SILO_ACCOUNT_ID}"


@pytest.fixture(scope="module")
def silo(evaluations) -> Recording:
    return without_data_flow(evaluations.silo())


def console_bucket(silo: Recording):
    return silo.one(BUCKET, "silo-sales-console-files-bucket")


def behaviors(distribution) -> list[dict]:
    return [distribution.inputs["defaultCacheBehavior"], *distribution.inputs["orderedCacheBehaviors"]]


def csp_directives(policy) -> dict[str, list[str]]:
    csp = policy.inputs["securityHeadersConfig"]["contentSecurityPolicy"]["contentSecurityPolicy"]
    return {part.split()[0]: part.split()[1:] for part in csp.split("; ")}


def config_json(silo: Recording) -> dict:
    (config,) = [o for o in silo.of_type(OBJECT) if o.inputs["key"] == "config.json"]
    assert config.inputs["contentType"] == "application/json"
    return json.loads(config.inputs["content"])


# -- CloudFront ------------------------------------------------------------------------------


def test_the_bucket_is_reached_only_through_origin_access_control(silo):
    distribution = silo.one(DISTRIBUTION)
    oac = silo.one(OAC)
    assert (oac.inputs["originAccessControlOriginType"], oac.inputs["signingBehavior"], oac.inputs["signingProtocol"]) == (
        "s3", "always", "sigv4",
    )
    (files,) = [o for o in distribution.inputs["origins"] if o["originId"] == "console-files"]
    assert files["domainName"] == f"{CONSOLE_BUCKET}.s3.eu-west-1.amazonaws.com"
    assert files["originAccessControlId"] == oac.outputs["id"]
    assert "s3OriginConfig" not in files  # no legacy origin access identity
    assert not silo.of_type("aws:cloudfront/originAccessIdentity:OriginAccessIdentity")
    assert distribution.inputs["defaultCacheBehavior"]["targetOriginId"] == "console-files"


def test_every_behavior_is_https_only_with_the_security_headers_and_the_viewer_request_function(silo):
    distribution = silo.one(DISTRIBUTION)
    policy = silo.one(HEADERS_POLICY)
    function = silo.one(FUNCTION)
    assert function.inputs["runtime"] == "cloudfront-js-2.0" and function.inputs["publish"] is True
    assert "request.uri = '/index.html'" in function.inputs["code"]
    for behavior in behaviors(distribution):
        assert behavior["viewerProtocolPolicy"] == "https-only"
        assert behavior["responseHeadersPolicyId"] == policy.outputs["id"]
        assert behavior["functionAssociations"] == [{"eventType": "viewer-request", "functionArn": function.outputs["arn"]}]
    # SPA routing is the function's job: error pages would also replace the API's own 4xx bodies.
    assert not distribution.inputs.get("customErrorResponses")
    assert distribution.inputs["defaultRootObject"] == "index.html"
    assert distribution.inputs["viewerCertificate"] == {"cloudfrontDefaultCertificate": True}


def test_the_headers_policy_sets_a_strict_csp_hsts_and_frame_options(silo):
    policy = silo.one(HEADERS_POLICY)
    headers = policy.inputs["securityHeadersConfig"]
    directives = csp_directives(policy)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"] and directives["object-src"] == ["'none'"]
    assert directives["connect-src"] == [
        "'self'",
        f"https://acme-dl-sales-{SILO_ACCOUNT_ID}.auth.eu-west-1.amazoncognito.com",
        f"https://{DROPZONE_BUCKET}.s3.eu-west-1.amazonaws.com",
        f"https://{DROPZONE_BUCKET}.s3.amazonaws.com",
    ]
    assert not any("unsafe" in value for values in directives.values() for value in values)
    hsts = headers["strictTransportSecurity"]
    assert hsts["accessControlMaxAgeSec"] >= 31_536_000 and hsts["includeSubdomains"] and hsts["override"]
    assert headers["frameOptions"] == {"frameOption": "DENY", "override": True}
    assert headers["contentTypeOptions"] == {"override": True}
    assert headers["referrerPolicy"]["referrerPolicy"] == "no-referrer"
    assert all(headers[k]["override"] for k in ("contentSecurityPolicy", "referrerPolicy"))


def test_the_api_is_served_under_api_uncached_with_the_authorization_header(silo):
    distribution = silo.one(DISTRIBUTION)
    stage = silo.one("aws:apigateway/stage:Stage")
    domain, path = split_api_url(stage.outputs["invokeUrl"])
    (api,) = [o for o in distribution.inputs["origins"] if o["originId"] == "dropzone-api"]
    assert (api["domainName"], api["originPath"]) == (domain, path)
    assert api["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    assert api["customOriginConfig"]["originSslProtocols"] == ["TLSv1.2"]
    (behavior,) = distribution.inputs["orderedCacheBehaviors"]
    assert behavior["pathPattern"] == "/api/*" and behavior["targetOriginId"] == "dropzone-api"
    assert behavior["cachePolicyId"] == CACHING_DISABLED
    assert behavior["originRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert {"GET", "POST", "DELETE", "OPTIONS"} <= set(behavior["allowedMethods"])
    assert distribution.inputs["defaultCacheBehavior"]["allowedMethods"] == ["GET", "HEAD"]


# -- bucket and key --------------------------------------------------------------------------


def test_the_console_bucket_is_private_and_readable_only_by_this_distribution(silo):
    bucket = console_bucket(silo)
    distribution = silo.one(DISTRIBUTION)
    assert bucket.inputs["bucket"] == CONSOLE_BUCKET
    block = silo.bucket_part(bucket, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block.inputs[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    policy = silo.bucket_part(bucket, "aws:s3/bucketPolicy:BucketPolicy")
    read = policy.statement("AllowConsoleDistributionRead")
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert read["Action"] == ["s3:GetObject"] and read["Resource"] == [f"arn:aws:s3:::{CONSOLE_BUCKET}/*"]
    assert read["Condition"] == {"StringEquals": {"AWS:SourceArn": distribution.outputs["arn"]}}
    allows = [s for s in policy.policy()["Statement"] if s["Effect"] == "Allow"]
    assert allows == [read]  # nothing public, nothing else
    assert policy.statement("DenyInsecureTransport")["Effect"] == "Deny"


def test_the_silo_key_lets_cloudfront_decrypt_only_the_console_bucket(silo):
    (key,) = silo.of_type("aws:kms/key:Key")
    bucket = console_bucket(silo)
    encryption = silo.bucket_part(bucket, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == key.outputs["arn"]
    grant = key.statement("AllowConsoleDistributionDecrypt")
    assert grant["Principal"] == {"Service": "cloudfront.amazonaws.com"} and grant["Action"] == ["kms:Decrypt"]
    assert grant["Condition"] == {
        "StringEquals": {"aws:SourceAccount": SILO_ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudfront::{SILO_ACCOUNT_ID}:distribution/*"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [f"arn:aws:s3:::{CONSOLE_BUCKET}", f"arn:aws:s3:::{CONSOLE_BUCKET}/*"]},
    }
    others = [s for s in key.policy()["Statement"] if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]
    assert others == [grant]


# -- files and config --------------------------------------------------------------------------


def test_every_app_file_is_uploaded_with_its_content_type_and_nothing_else(silo):
    objects = {o.inputs["key"]: o for o in silo.of_type(OBJECT)}
    shipped = {p.as_posix() for p in console_files()}
    assert set(objects) == shipped | {"config.json"}
    assert {"index.html", "app.js", "validate.js", "styles.css"} <= shipped
    assert objects["index.html"].inputs["contentType"] == "text/html; charset=utf-8"
    assert objects["app.js"].inputs["contentType"] == "text/javascript; charset=utf-8"
    assert objects["styles.css"].inputs["contentType"] == "text/css; charset=utf-8"
    for key, obj in objects.items():
        assert obj.inputs["bucket"] == CONSOLE_BUCKET, key
        assert obj.inputs["cacheControl"] == "no-cache", key
        if key != "config.json":
            assert obj.inputs["source"].path == str(CONSOLE_DIR / key)


def test_config_json_names_the_api_the_pool_the_console_client_and_sftp():
    silo = run_silo(silo_config(**{"datalake:sftp": {"enabled": True}}))
    config = config_json(silo)
    client = silo.one(CLIENT, "silo-sales-console-client")
    pool = silo.one("aws:cognito/userPool:UserPool")
    domain = silo.one(DOMAIN)
    server = silo.one("aws:transfer/server:Server")
    assert config == {
        "siloName": "sales",
        "apiUrl": "/api",
        "region": "eu-west-1",
        "userPoolId": pool.outputs["id"],
        "clientId": client.outputs["id"],
        "authOrigin": f"https://{domain.inputs['domain']}.auth.eu-west-1.amazoncognito.com",
        "callbackPath": "/callback",
        "scopes": ["openid", "email", "profile"],
        "dropzoneBucket": DROPZONE_BUCKET,
        "sftp": {"enabled": True, "host": server.outputs["endpoint"]},
    }


def test_without_sftp_the_console_says_so():
    silo = run_silo(silo_config(**{"datalake:sftp": {"enabled": False}}))
    assert config_json(silo)["sftp"] == {"enabled": False, "host": None}


# -- Cognito ------------------------------------------------------------------------------------


def test_the_app_client_uses_the_code_flow_with_the_distribution_as_callback(silo):
    client = silo.one(CLIENT, "silo-sales-console-client")
    pool = silo.one("aws:cognito/userPool:UserPool")
    url = f"https://{silo.one(DISTRIBUTION).outputs['domainName']}"
    assert silo.outputs["consoleUrl"] == url
    assert client.inputs["userPoolId"] == pool.outputs["id"]
    assert client.inputs["callbackUrls"] == [f"{url}/callback"]
    assert client.inputs["logoutUrls"] == [f"{url}/"]
    assert client.inputs["allowedOauthFlows"] == ["code"]
    assert client.inputs["allowedOauthFlowsUserPoolClient"] is True
    assert client.inputs["allowedOauthScopes"] == ["openid", "email", "profile"]
    assert client.inputs["supportedIdentityProviders"] == ["COGNITO"]
    assert client.inputs["generateSecret"] is False
    assert (client.inputs["idTokenValidity"], client.inputs["tokenValidityUnits"]["idToken"]) == (60, "minutes")
    domain = silo.one(DOMAIN)
    assert domain.inputs["userPoolId"] == pool.outputs["id"]
    assert domain.inputs["domain"] == f"acme-dl-sales-{SILO_ACCOUNT_ID}"


def test_hosted_ui_domains_avoid_the_words_cognito_forbids():
    assert cognito_domain_prefix("awsome", "amazonia", "123456789012") == "xxxome-xxxxxxia-123456789012"


def test_browser_uploads_into_the_dropzone_are_allowed_from_the_console_only(silo):
    cors = silo.one(CORS)
    assert cors.inputs["bucket"] == DROPZONE_BUCKET
    (rule,) = cors.inputs["corsRules"]
    assert rule["allowedOrigins"] == [silo.outputs["consoleUrl"]]
    assert rule["allowedMethods"] == ["POST"]


# -- config -------------------------------------------------------------------------------------


def test_session_length_and_price_class_come_from_config():
    silo = run_silo(silo_config(**{"datalake:console": {"sessionMinutes": 15, "priceClass": "PriceClass_All"}}))
    assert silo.one(CLIENT, "silo-sales-console-client").inputs["idTokenValidity"] == 15
    assert silo.one(DISTRIBUTION).inputs["priceClass"] == "PriceClass_All"


def test_console_off_removes_every_console_resource_and_grant():
    silo = run_silo(silo_config(**{"datalake:console": {"enabled": False}}))
    for type_ in (DISTRIBUTION, HEADERS_POLICY, OAC, FUNCTION, DOMAIN, OBJECT, CORS):
        assert silo.of_type(type_) == [], type_
    assert [c.name for c in silo.of_type(CLIENT)] == ["silo-sales-dropzone-console-client"]
    assert "console" not in {b.inputs["tags"]["datalake:purpose"] for b in silo.of_type(BUCKET)}
    (key,) = silo.of_type("aws:kms/key:Key")
    assert "AllowConsoleDistributionDecrypt" not in {s["Sid"] for s in key.policy()["Statement"]}
    assert "consoleUrl" not in silo.outputs


def test_bad_console_settings_name_the_key_and_a_right_value():
    raw = {**silo_config(), "datalake:console": {"priceClass": "PriceClass_1", "sessionMinutes": 2}}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("silo-222222222222", raw)
    message = str(caught.value)
    assert "datalake:console.priceClass" in message and "PriceClass_100" in message
    assert "datalake:console.sessionMinutes" in message and "for example: 60" in message


def test_api_urls_must_be_https():
    assert split_api_url("https://abc.execute-api.eu-west-1.amazonaws.com/api") == ("abc.execute-api.eu-west-1.amazonaws.com", "/api")
    with pytest.raises(ValueError, match="https URL"):
        split_api_url("http://abc.execute-api.eu-west-1.amazonaws.com/api")
