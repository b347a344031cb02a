"""`Console`: the dropzone's web console, a static single-page app on S3 behind CloudFront.

The app's files (`functions/console/`) live in a private `SecureBucket` that only this
distribution may read (origin access control, SigV4; no public bucket, no legacy OAI). The
distribution serves the app and, under `/api/*`, the credential-vending API, so the browser talks
to one origin: no CORS on the API and a tight `connect-src`. Every response carries the security
headers of one response headers policy (CSP, HSTS, frame options, nosniff, referrer policy).

Sign-in is Cognito's hosted UI with the authorization code flow and PKCE, through an app client
this component creates in the dropzone's user pool with the distribution's domain as callback.
`config.json`, generated here, tells the app where the API, the pool and the hosted UI are.

The pure helpers (`security_headers`, `upload_cors_rule`, `console_config`, `spa_target`) are what
both the infrastructure and the local end-to-end adapter (`offline/console_local.py`) use, so the
browser test runs the app under the production CSP and CORS rules.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

from .. import FUNCTIONS_DIR

from ..shared.adoption import NO_ADOPTION, Adoption
from ..shared.iam import AccountContext, Statement, statement
from ..shared.naming import bucket_name
from ..shared.secure_bucket import BucketLifecycle, SecureBucket, SecureBucketArgs, bucket_arn
from ..shared.config import StorageConfig
from ..shared.context import SiloContext
from .config import ConsoleConfig

CONSOLE_DIR = FUNCTIONS_DIR / "console"
VIEWER_REQUEST_FUNCTION = FUNCTIONS_DIR / "console_edge" / "viewer_request.js"

API_PREFIX = "/api"
CALLBACK_PATH = "/callback"
OAUTH_SCOPES = ("openid", "email", "profile")
GENERATED_CONFIG = "config.json"

# AWS managed policies (stable ids, documented in the CloudFront developer guide, "Use managed
# cache policies" / "Use managed origin request policies"). With caching disabled, the
# AllViewerExceptHostHeader policy forwards the Authorization header to API Gateway; the Host
# header must not be forwarded to an execute-api origin (API Gateway answers 403 otherwise).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
HSTS_MAX_AGE_SECONDS = 63_072_000  # two years, the preload list's expectation
# Cognito prefix domains may not contain these words.
RESERVED_DOMAIN_WORDS = ("aws", "amazon", "cognito")


# -- pure helpers, shared with the local adapter ---------------------------------------------------


def content_security_policy(auth_origin: str, upload_origins: Sequence[str]) -> str:
    """The console's CSP: its own scripts and styles only, fetches to itself, the hosted UI's
    token endpoint and the dropzone bucket (presigned POST uploads). No inline script or style,
    no framing, no plugins."""
    connect = " ".join(["'self'", auth_origin, *upload_origins])
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src {connect}",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ]
    )


def security_headers(auth_origin: str, upload_origins: Sequence[str]) -> dict[str, str]:
    """Every security header the console's responses carry, as HTTP header names and values.

    The response headers policy is built from the same values; the local adapter sends exactly these.
    """
    return {
        "Content-Security-Policy": content_security_policy(auth_origin, upload_origins),
        "Strict-Transport-Security": f"max-age={HSTS_MAX_AGE_SECONDS}; includeSubDomains; preload",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def upload_origins(bucket: str, region: str, dns_suffix: str = "amazonaws.com") -> list[str]:
    """Origins a presigned POST to `bucket` may target (regional and global virtual-hosted style)."""
    return [f"https://{bucket}.s3.{region}.{dns_suffix}", f"https://{bucket}.s3.{dns_suffix}"]


def upload_cors_rule(console_origin: str) -> dict[str, Any]:
    """The dropzone bucket's CORS rule: the console (and nothing else) may POST uploads and read
    the answer. An upload progress listener makes the browser send a preflight, hence OPTIONS."""
    return {
        "allowed_origins": [console_origin],
        "allowed_methods": ["POST"],
        "allowed_headers": ["*"],
        "expose_headers": ["ETag", "Location"],
        "max_age_seconds": 3000,
    }


def console_config(
    *,
    api_url: str,
    region: str,
    user_pool_id: str,
    client_id: str,
    auth_origin: str,
    dropzone_bucket: str,
    silo_name: str,
    sftp_host: Optional[str] = None,
) -> dict[str, Any]:
    """The content of `config.json`: everything the app needs to know about its silo."""
    return {
        "siloName": silo_name,
        "apiUrl": api_url,
        "region": region,
        "userPoolId": user_pool_id,
        "clientId": client_id,
        "authOrigin": auth_origin,
        "callbackPath": CALLBACK_PATH,
        "scopes": list(OAUTH_SCOPES),
        "dropzoneBucket": dropzone_bucket,
        "sftp": {"enabled": sftp_host is not None, "host": sftp_host},
    }


def spa_target(uri: str) -> str:
    """What `functions/console_edge/viewer_request.js` does to a static path (Python mirror for the
    local adapter; a test runs both on the same cases): extension-less paths are app pages."""
    last = uri.rsplit("/", 1)[-1]
    return uri if "." in last else "/index.html"


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def console_files(root: Path = CONSOLE_DIR) -> list[Path]:
    """The app's shipped files, relative to `root` (hidden files and a stray `config.json` excluded:
    the program generates that one)."""
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts) and str(relative) != GENERATED_CONFIG:
            files.append(relative)
    return files


def split_api_url(url: str) -> tuple[str, str]:
    """`https://<id>.execute-api.<region>.amazonaws.com/<stage>` → (domain, `/<stage>`)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"the API URL must be an https URL such as https://abc123.execute-api.eu-west-1.amazonaws.com/prod; got {url!r}")
    return parts.hostname, parts.path.rstrip("/")


def cognito_domain_prefix(name_prefix: str, silo_name: str, account_id: str) -> str:
    """A hosted-UI prefix domain unique per silo account, without Cognito's reserved words."""
    domain = f"{name_prefix}-{silo_name}-{account_id}"
    for word in RESERVED_DOMAIN_WORDS:
        domain = domain.replace(word, "x" * len(word))
    return domain


def _key_name(relative: Path) -> str:
    """A logical-name-safe form of a file path (`css/app.css` → `css-app.css`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", str(relative))


# -- the component ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleArgs:
    """Arguments of `Console`."""

    context: SiloContext
    """The silo: account, names, key and tags (`SiloAccount` passes its own)."""
    api_url: pulumi.Input[str]
    """Invoke URL of the credential-vending API including its stage, e.g.
    `https://abc123.execute-api.eu-west-1.amazonaws.com/prod`; served under `/api/*`."""
    user_pool_id: pulumi.Input[str]
    """The dropzone's Cognito user pool (groups `admin` and `member`)."""
    dropzone_bucket_name: pulumi.Input[str]
    """The silo's dropzone bucket: gets the CORS rule that lets the console upload into it."""
    user_pool_domain: Optional[pulumi.Input[str]] = None
    """The pool's hosted-UI prefix domain, if the pool has one (default None: this component
    creates `<prefix>-<silo>-<account>`)."""
    sftp_host: Optional[pulumi.Input[str]] = None
    """Host name of the SFTP endpoint shown to users (default None: SFTP is off)."""
    access_log_bucket: Optional[pulumi.Input[str]] = None
    """Bucket receiving the console bucket's S3 access logs (default None: no access logging)."""
    config: ConsoleConfig = field(default_factory=ConsoleConfig)
    """The `datalake:console` section: CloudFront price class and sign-in session length (default:
    its defaults). `enabled` is the caller's to act on: this component always builds the console."""
    noncurrent_version_expiration_days: int = StorageConfig.model_fields["noncurrent_version_expiration_days"].default
    """Days superseded versions of the app's files are kept (default the silo buckets', `storage.noncurrentVersionExpirationDays`)."""
    adoption: Adoption = NO_ADOPTION
    """The retained files bucket of a returning silo to import instead of create (default none)."""


class Console(pulumi.ComponentResource):
    """The dropzone console: private bucket, CloudFront distribution, Cognito app client, config.

    The bucket follows the project's posture (SSE-KMS with the silo key, TLS-only, retained on
    destroy); the silo key grants CloudFront decryption of this bucket's objects only.
    """

    bucket: SecureBucket
    distribution: aws.cloudfront.Distribution
    client: aws.cognito.UserPoolClient
    url: pulumi.Output[str]

    def __init__(self, name: str, args: ConsoleArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:console:Console", name, None, opts)
        context = args.context
        tags = {**context.tags, "datalake:silo": context.silo_name, "datalake:purpose": "console"}
        dns_suffix = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).dns_suffix
        self.auth_origin = self._auth_origin(name, args)
        self.headers_policy = self._headers_policy(name, args, dns_suffix)
        # The origin's domain is derived from the bucket's name, not from the bucket resource, so
        # the distribution exists first and the bucket policy and key policy can name its ARN.
        files_bucket_name = console_bucket_name(context.name_prefix, context.silo_name, context.account.account_id)
        bucket_domain = pulumi.Output.concat(files_bucket_name, ".s3.", context.account.region, ".", dns_suffix)
        self.distribution = self._distribution(name, args, tags, bucket_domain)
        self.url = pulumi.Output.concat("https://", self.distribution.domain_name)
        self.bucket = self._files_bucket(name, args, tags, files_bucket_name)
        self.client = self._app_client(name, args)
        self._browser_uploads(name, args)
        self._app_files(name, tags)
        self.config_object = self._generated_config(name, args, tags)

        self.outputs = {
            "url": self.url,
            "distributionId": self.distribution.id,
            "bucketName": self.bucket.name,
            "clientId": self.client.id,
            "authOrigin": self.auth_origin,
        }
        self.register_outputs(self.outputs)

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    @property
    def _after_bucket(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[self.bucket])

    def _auth_origin(self, name: str, args: ConsoleArgs) -> pulumi.Output[str]:
        """The hosted UI's origin, on the pool's own prefix domain or on one made here."""
        context = args.context
        if args.user_pool_domain is None:
            domain = aws.cognito.UserPoolDomain(
                f"{name}-auth-domain",
                domain=pulumi.Output.from_input(context.account.account_id).apply(
                    lambda account_id: cognito_domain_prefix(context.name_prefix, context.silo_name, account_id)
                ),
                user_pool_id=args.user_pool_id,
                opts=self._child,
            )
            domain_prefix: pulumi.Input[str] = domain.domain
        else:
            domain_prefix = args.user_pool_domain
        return pulumi.Output.concat("https://", domain_prefix, ".auth.", context.account.region, ".amazoncognito.com")

    def _headers_policy(
        self, name: str, args: ConsoleArgs, dns_suffix: pulumi.Input[str]
    ) -> aws.cloudfront.ResponseHeadersPolicy:
        """The security headers of every response (`security_headers`)."""
        context = args.context
        dropzone_origins = pulumi.Output.all(args.dropzone_bucket_name, context.account.region, dns_suffix).apply(
            lambda values: upload_origins(*values)
        )
        headers = pulumi.Output.all(self.auth_origin, dropzone_origins).apply(lambda values: security_headers(*values))
        return aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-headers",
            name=f"{context.base_name}-console-security-headers",
            comment="Dropzone console: CSP, HSTS, frame and content-type options, referrer policy",
            security_headers_config={
                "content_security_policy": {
                    "content_security_policy": headers["Content-Security-Policy"],
                    "override": True,
                },
                "strict_transport_security": {
                    "access_control_max_age_sec": HSTS_MAX_AGE_SECONDS,
                    "include_subdomains": True,
                    "preload": True,
                    "override": True,
                },
                "frame_options": {"frame_option": "DENY", "override": True},
                "content_type_options": {"override": True},
                "referrer_policy": {"referrer_policy": "no-referrer", "override": True},
            },
            custom_headers_config={
                "items": [
                    {"header": header, "value": headers[header], "override": True}
                    for header in ("Permissions-Policy", "Cross-Origin-Opener-Policy")
                ]
            },
            opts=self._child,
        )

    def _distribution(
        self, name: str, args: ConsoleArgs, tags: dict[str, str], bucket_domain: pulumi.Input[str]
    ) -> aws.cloudfront.Distribution:
        """The distribution serving the app's files (signed S3 requests) and, under `/api/*`, the API."""
        context = args.context
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            name=f"{context.base_name}-console",
            description=f"Dropzone console of silo {context.silo_name}: CloudFront signs every S3 request",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=self._child,
        )
        viewer_request = aws.cloudfront.Function(
            f"{name}-viewer-request",
            name=f"{context.base_name}-console-viewer-request",
            runtime="cloudfront-js-2.0",
            comment="Console: strip /api for the API origin; extension-less paths serve /index.html",
            code=VIEWER_REQUEST_FUNCTION.read_text(),
            publish=True,
            opts=self._child,
        )
        functions = [{"event_type": "viewer-request", "function_arn": viewer_request.arn}]
        api = pulumi.Output.from_input(args.api_url).apply(split_api_url)
        return aws.cloudfront.Distribution(
            f"{name}-distribution",
            comment=f"Dropzone console of silo {context.silo_name}",
            enabled=True,
            is_ipv6_enabled=True,
            http_version="http2and3",
            price_class=args.config.price_class,
            default_root_object="index.html",
            origins=[
                {
                    "origin_id": "console-files",
                    "domain_name": bucket_domain,
                    "origin_access_control_id": oac.id,
                },
                {
                    "origin_id": "dropzone-api",
                    "domain_name": api[0],
                    "origin_path": api[1],
                    "custom_origin_config": {
                        "http_port": 80,
                        "https_port": 443,
                        "origin_protocol_policy": "https-only",
                        "origin_ssl_protocols": ["TLSv1.2"],
                    },
                },
            ],
            default_cache_behavior={
                "target_origin_id": "console-files",
                "viewer_protocol_policy": "https-only",
                "allowed_methods": ["GET", "HEAD"],
                "cached_methods": ["GET", "HEAD"],
                "compress": True,
                "cache_policy_id": CACHING_OPTIMIZED,
                "response_headers_policy_id": self.headers_policy.id,
                "function_associations": functions,
            },
            ordered_cache_behaviors=[
                {
                    "path_pattern": f"{API_PREFIX}/*",
                    "target_origin_id": "dropzone-api",
                    "viewer_protocol_policy": "https-only",
                    "allowed_methods": ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
                    "cached_methods": ["GET", "HEAD"],
                    "compress": True,
                    "cache_policy_id": CACHING_DISABLED,
                    "origin_request_policy_id": ALL_VIEWER_EXCEPT_HOST_HEADER,
                    "response_headers_policy_id": self.headers_policy.id,
                    "function_associations": functions,
                }
            ],
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            # The default *.cloudfront.net certificate; a custom domain with its own ACM
            # certificate (and TLSv1.2_2021 minimum) is a later option.
            viewer_certificate={"cloudfront_default_certificate": True},
            tags=tags,
            opts=self._child,
        )

    def _files_bucket(
        self, name: str, args: ConsoleArgs, tags: dict[str, str], files_bucket_name: pulumi.Input[str]
    ) -> SecureBucket:
        """The app's private bucket, encrypted with the silo key (see `console_decrypt_statement`),
        which only this distribution reads."""
        distribution_arn = self.distribution.arn
        return SecureBucket(
            f"{name}-files",
            SecureBucketArgs(
                bucket_name=files_bucket_name,
                purpose="console",
                account=args.context.account,
                kms_key_arn=args.context.key,
                access_log_bucket=args.access_log_bucket,
                lifecycle=BucketLifecycle(noncurrent_version_expiration_days=args.noncurrent_version_expiration_days),
                extra_policy_statements=lambda arn: [cloudfront_read_statement(arn, distribution_arn)],
                tags=tags,
                adoption=args.adoption,
            ),
            opts=self._child,
        )

    def _app_client(self, name: str, args: ConsoleArgs) -> aws.cognito.UserPoolClient:
        """The console's client of the dropzone's user pool: code flow, called back on the distribution."""
        return aws.cognito.UserPoolClient(
            f"{name}-client",
            name=f"{args.context.base_name}-console",
            user_pool_id=args.user_pool_id,
            generate_secret=False,  # a browser app cannot keep a secret: PKCE protects the code
            allowed_oauth_flows_user_pool_client=True,
            allowed_oauth_flows=["code"],
            allowed_oauth_scopes=list(OAUTH_SCOPES),
            supported_identity_providers=["COGNITO"],
            callback_urls=[pulumi.Output.concat(self.url, CALLBACK_PATH)],
            default_redirect_uri=pulumi.Output.concat(self.url, CALLBACK_PATH),
            logout_urls=[pulumi.Output.concat(self.url, "/")],
            explicit_auth_flows=["ALLOW_REFRESH_TOKEN_AUTH"],
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            id_token_validity=args.config.session_minutes,
            access_token_validity=args.config.session_minutes,
            refresh_token_validity=12,
            token_validity_units={"id_token": "minutes", "access_token": "minutes", "refresh_token": "hours"},
            opts=self._child,
        )

    def _browser_uploads(self, name: str, args: ConsoleArgs) -> None:
        """The dropzone bucket's CORS rule, so the console can upload into it."""
        aws.s3.BucketCorsConfiguration(
            f"{name}-upload-cors",
            bucket=args.dropzone_bucket_name,
            cors_rules=[self.url.apply(upload_cors_rule)],
            opts=self._child,
        )

    def _app_files(self, name: str, tags: dict[str, str]) -> None:
        for relative in console_files():
            aws.s3.BucketObjectv2(
                f"{name}-file-{_key_name(relative)}",
                bucket=self.bucket.name,
                key=relative.as_posix(),
                source=pulumi.FileAsset(str(CONSOLE_DIR / relative)),
                content_type=content_type(relative),
                # No build step, so no content hashes in file names: browsers revalidate (ETag).
                cache_control="no-cache",
                tags=tags,
                opts=self._after_bucket,
            )

    def _generated_config(self, name: str, args: ConsoleArgs, tags: dict[str, str]) -> aws.s3.BucketObjectv2:
        """`config.json`: where the app finds the API, the user pool and the hosted UI."""
        config = pulumi.Output.all(
            region=args.context.account.region,
            user_pool_id=args.user_pool_id,
            client_id=self.client.id,
            auth_origin=self.auth_origin,
            dropzone_bucket=args.dropzone_bucket_name,
            sftp_host=args.sftp_host,
        ).apply(lambda v: console_config(api_url=API_PREFIX, silo_name=args.context.silo_name, **v))
        return aws.s3.BucketObjectv2(
            f"{name}-config",
            bucket=self.bucket.name,
            key=GENERATED_CONFIG,
            content=pulumi.Output.json_dumps(config),
            content_type=CONTENT_TYPES[".json"],
            cache_control="no-cache",
            tags=tags,
            opts=self._after_bucket,
        )


def cloudfront_read_statement(bucket_arn: pulumi.Input[str], distribution_arn: pulumi.Input[str]) -> Statement:
    """Bucket policy grant: only this distribution (through its OAC) reads the console's files."""
    return statement(
        "AllowConsoleDistributionRead",
        "s3:GetObject",
        pulumi.Output.concat(bucket_arn, "/*"),
        principal={"Service": "cloudfront.amazonaws.com"},
        conditions={"StringEquals": {"AWS:SourceArn": distribution_arn}},
    )


def console_bucket_name(name_prefix: str, silo_name: str, account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """`<prefix>-<silo>-console-<account>`: known before anything exists, so the silo key's policy
    can name the bucket while the storage is built."""
    return bucket_name(name_prefix, silo_name, "console", account_id)


def console_decrypt_statement(account: AccountContext, name_prefix: str, silo_name: str) -> Statement:
    """Silo key policy grant: CloudFront may decrypt objects of the console bucket, nothing else.

    OAC reads of SSE-KMS objects fail without it. The encryption context S3 uses names the bucket
    (`aws:s3:arn`, the bucket ARN with bucket keys on, the object ARN otherwise), so data buckets
    under the same key stay out of reach even for a distribution; the distribution must also be
    one of this account's, and the console bucket's policy admits only the console's own one.
    (The key exists before the distribution, so its ARN cannot be named here.)
    In a key policy `Resource: "*"` means this key.
    """
    bucket = bucket_arn(account.partition, console_bucket_name(name_prefix, silo_name, account.account_id))
    return statement(
        "AllowConsoleDistributionDecrypt",
        "kms:Decrypt",
        "*",
        principal={"Service": "cloudfront.amazonaws.com"},
        conditions={
            "StringEquals": {"aws:SourceAccount": account.account_id},
            "ArnLike": {"aws:SourceArn": account.arn("cloudfront", "distribution/*", regional=False)},
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket, pulumi.Output.concat(bucket, "/*")]},
        },
    )
