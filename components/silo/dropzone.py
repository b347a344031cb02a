"""`Dropzone`: the silo's credential-vending API for third parties, its users, janitor and audit log.

Internal users sign in to a Cognito user pool (groups `admin` and `member`) and call a REST API
whose every route is behind the Cognito authorizer. One Lambda (`functions/credential_vending`)
serves every route; a second, scheduled one (the janitor) deactivates expired partners. Partners
are IAM users under `/datalake/partners/<silo>/`, each with a permissions boundary, so the API
role can never create a user that reaches more than its own prefix of the dropzone bucket.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from functions.dropzone_partners.partners import STAFF_PREFIX

from ..shared.adoption import NO_ADOPTION, Adoption
from ..shared.iam import AccountContext, Statement, kms_via_service, policy_json, role_trust_policy, statement
from ..shared.roles import role_with_policy
from .api_logging import logged_stage
from .config import DropzoneConfig
from .dropzone_site import (
    DropzoneFunction,
    DropzoneSite,
    FunctionSpec,
    audit_log_group_name,
    list_users_statement,
    log_write_statement,
    partner_users_arn,
)

ROUTES = (
    ("GET", "/partners"),
    ("POST", "/partners"),
    ("GET", "/partners/{name}"),
    ("DELETE", "/partners/{name}"),
    ("POST", "/partners/{name}/rotate"),
    ("POST", "/partners/{name}/session"),
    ("POST", "/partners/{name}/ssh-keys"),
    ("POST", "/uploads"),
)
"""Routes of the API (method, path); `tests` check them against the handler's own table."""

@dataclass(frozen=True)
class DropzoneArgs:
    """Arguments of `Dropzone`."""

    site: DropzoneSite
    """The silo (account, names, key, tags) and its dropzone bucket."""
    config: DropzoneConfig = field(default_factory=DropzoneConfig)
    """The `datalake:dropzone` section: CORS origin, log retention, upload limits, janitor schedule,
    MFA and throttling (default: its defaults)."""
    stage_depends_on: Sequence[pulumi.Resource] = ()
    """Resources the API stage waits for: the account's API Gateway CloudWatch setting (default none)."""
    adoption: Adoption = NO_ADOPTION
    """Retained audit log group and boundary policy of a returning silo to import (default none)."""


class Dropzone(pulumi.ComponentResource):
    """Cognito user pool, credential-vending REST API, janitor, audit log and partner guard rails."""

    api_url: pulumi.Output[str]
    user_pool_id: pulumi.Output[str]
    user_pool_client_id: pulumi.Output[str]

    def __init__(self, name: str, args: DropzoneArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:dropzone:Dropzone", name, None, opts)
        site = args.site
        tags = site.tags("dropzone")
        self._internal_users(name, args, tags)
        self.audit_log = self._audit_log(name, args, tags)
        self.boundary = self._partner_boundary(name, args, tags)
        # The session role's ARN is known before the role exists: the API function's environment
        # needs it, and the role's trust policy needs the API function's role (no cycle this way).
        session_role_name = f"{site.base_name}-partner-session"[:64]
        session_role_arn = site.account.arn("iam", f"role/{session_role_name}", regional=False)
        self.functions = self._functions(name, args, tags, session_role_arn)
        self.session_role = self._partner_session_role(name, site, tags, session_role_name)
        self._janitor_schedule(name, args, tags)
        self.rest_api = self._rest_api(name, site, tags)
        routes = self._api_routes(name, args)
        self._allow_api_invocation(name, site)
        self.stage = self._api_stage(name, args, tags, routes)

        self.api_url = self.stage.invoke_url
        self.user_pool_id = self.user_pool.id
        self.user_pool_client_id = self.user_pool_client.id
        self.register_outputs(
            {
                "apiUrl": self.api_url,
                "userPoolId": self.user_pool_id,
                "userPoolClientId": self.user_pool_client_id,
                "auditLogGroup": self.audit_log.name,
            }
        )

    @property
    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _internal_users(self, name: str, args: DropzoneArgs, tags: dict[str, str]) -> None:
        """The user pool staff sign in to, the console's client and the `admin` and `member` groups."""
        base = args.site.base_name
        self.user_pool = aws.cognito.UserPool(
            f"{name}-users",
            name=f"{base}-dropzone",
            admin_create_user_config=aws.cognito.UserPoolAdminCreateUserConfigArgs(allow_admin_create_user_only=True),
            password_policy=aws.cognito.UserPoolPasswordPolicyArgs(
                minimum_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_numbers=True,
                require_symbols=True,
                temporary_password_validity_days=3,
            ),
            mfa_configuration=args.config.mfa,
            software_token_mfa_configuration=aws.cognito.UserPoolSoftwareTokenMfaConfigurationArgs(enabled=True),
            auto_verified_attributes=["email"],
            account_recovery_setting=aws.cognito.UserPoolAccountRecoverySettingArgs(
                recovery_mechanisms=[aws.cognito.UserPoolAccountRecoverySettingRecoveryMechanismArgs(name="verified_email", priority=1)]
            ),
            # No deletion protection: the runner must be able to destroy a silo that left the OU.
            tags=tags,
            opts=self._child,
        )
        self.user_pool_client = aws.cognito.UserPoolClient(
            f"{name}-console-client",
            name=f"{base}-dropzone-console",
            user_pool_id=self.user_pool.id,
            generate_secret=False,  # a browser console cannot keep a secret
            explicit_auth_flows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            id_token_validity=60,
            access_token_validity=60,
            refresh_token_validity=12,
            token_validity_units=aws.cognito.UserPoolClientTokenValidityUnitsArgs(
                id_token="minutes", access_token="minutes", refresh_token="hours"
            ),
            opts=self._child,
        )
        for group, description, precedence in (
            ("admin", "Manages dropzone partners and their credentials", 1),
            ("member", "Lists dropzone partners and uploads files", 2),
        ):
            aws.cognito.UserGroup(
                f"{name}-{group}-group",
                name=group,
                user_pool_id=self.user_pool.id,
                description=description,
                precedence=precedence,
                opts=self._child,
            )

    def _audit_log(self, name: str, args: DropzoneArgs, tags: dict[str, str]) -> aws.cloudwatch.LogGroup:
        site = args.site
        return aws.cloudwatch.LogGroup(
            f"{name}-audit-log",
            name=audit_log_group_name(site.silo_name, site.namespace),
            retention_in_days=args.config.audit_log_retention_days,
            kms_key_id=site.key_arn,
            tags=tags,
            # Audit evidence outlives the stack, like the data buckets and their key.
            opts=args.adoption.options(
                "aws:cloudwatch/logGroup:LogGroup", f"{name}-audit-log",
                pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(retain_on_delete=True)),
            ),
        )

    def _partner_boundary(self, name: str, args: DropzoneArgs, tags: dict[str, str]) -> aws.iam.Policy:
        """The permissions boundary of every partner user: its own prefix of the dropzone bucket."""
        site = args.site
        own_prefix = "dropzone/${aws:username}/"
        return aws.iam.Policy(
            f"{name}-partner-boundary",
            name=f"{site.base_name}-partner-boundary",
            path="/datalake/",
            description=f"Most any {site.silo_name} dropzone partner may ever do: its own prefix of the dropzone bucket",
            policy=policy_json(site.reach_statements("PartnerOwnPrefix", own_prefix)),
            tags=tags,
            # Partner users are made at run time, outside the stack: if a silo is destroyed while
            # some remain, they keep this boundary (IAM would refuse to delete it anyway).
            opts=args.adoption.options(
                "aws:iam/policy:Policy", f"{name}-partner-boundary",
                pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(retain_on_delete=True)),
            ),
        )

    def _functions(
        self, name: str, args: DropzoneArgs, tags: dict[str, str], session_role_arn: pulumi.Input[str]
    ) -> dict[str, DropzoneFunction]:
        """The credential-vending API's function and the janitor's, by role (`api`, `janitor`)."""
        site = args.site
        partner_env = {
            "SILO_NAME": site.silo_name,
            "DROPZONE_BUCKET": site.bucket_name,
            "KMS_KEY_ARN": site.key_arn,
            "AUDIT_LOG_GROUP": self.audit_log.name,
            **site.namespace_environment(),
        }
        audit_statement = log_write_statement(
            "WriteAuditRecords", site.account, audit_log_group_name(site.silo_name, site.namespace)
        )
        specs = (
            self._api_spec(args, partner_env, audit_statement, session_role_arn),
            self._janitor_spec(site, partner_env, audit_statement),
        )
        return {
            spec.role: DropzoneFunction(
                f"{name}-{spec.role}",
                spec,
                physical_name=f"{site.base_name}-{'credential-vending' if spec.role == 'api' else 'dropzone-' + spec.role}"[:64],
                account=site.account,
                log_retention_days=args.config.function_log_retention_days,
                kms_key_arn=site.key_arn,
                tags=tags,
                opts=self._child,
            )
            for spec in specs
        }

    def _api_spec(
        self,
        args: DropzoneArgs,
        partner_env: dict[str, pulumi.Input[str]],
        audit_statement: Statement,
        session_role_arn: pulumi.Input[str],
    ) -> FunctionSpec:
        site = args.site
        partners = partner_users_arn(site.account, site.silo_name, site.namespace)
        return FunctionSpec(
            role="api",
            package="credential_vending",
            handler="credential_vending.handler.handler",
            description=f"Dropzone credential-vending API of silo {site.silo_name}",
            environment={
                **partner_env,
                "PERMISSIONS_BOUNDARY_ARN": self.boundary.arn,
                "SESSION_ROLE_ARN": session_role_arn,
                "ALLOWED_ORIGIN": args.config.allowed_origin,
                "UPLOAD_MAX_BYTES": str(args.config.upload_max_mb * 1024 * 1024),
                "UPLOAD_URL_SECONDS": str(args.config.upload_url_seconds),
            },
            statements=[
                statement(
                    "CreatePartnersOnlyWithBoundary",
                    ["iam:CreateUser", "iam:PutUserPolicy"],
                    partners,
                    conditions={"ArnEquals": {"iam:PermissionsBoundary": self.boundary.arn}},
                ),
                statement(
                    "ManagePartnerUsers",
                    [
                        "iam:GetUser", "iam:TagUser", "iam:UntagUser", "iam:ListUserTags",
                        "iam:CreateAccessKey", "iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:DeleteAccessKey",
                        "iam:UploadSSHPublicKey", "iam:ListSSHPublicKeys", "iam:UpdateSSHPublicKey",
                        "iam:DeleteSSHPublicKey", "iam:DeleteLoginProfile",
                        "iam:ListUserPolicies", "iam:DeleteUserPolicy", "iam:ListAttachedUserPolicies",
                        "iam:DetachUserPolicy", "iam:DeleteUser",
                    ],
                    partners,
                ),
                list_users_statement(),
                statement("AssumePartnerSessionRole", "sts:AssumeRole", session_role_arn),
                statement("SignStaffUploads", "s3:PutObject", pulumi.Output.concat(site.bucket_arn, f"/{STAFF_PREFIX}*")),
                statement(
                    "EncryptInternalUploads",
                    "kms:GenerateDataKey",
                    site.key_arn,
                    conditions={"StringEquals": {"kms:ViaService": kms_via_service("s3", site.account.region)}},
                ),
                audit_statement,
            ],
        )

    @staticmethod
    def _janitor_spec(
        site: DropzoneSite, partner_env: dict[str, pulumi.Input[str]], audit_statement: Statement
    ) -> FunctionSpec:
        return FunctionSpec(
            role="janitor",
            package="credential_vending",
            handler="credential_vending.janitor.handler",
            description=f"Deactivates expired dropzone partners of silo {site.silo_name}",
            timeout=300,
            environment=partner_env,
            statements=[
                statement(
                    "ExpirePartnerKeys",
                    [
                        "iam:ListUserTags", "iam:UntagUser", "iam:ListAccessKeys",
                        "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:ListSSHPublicKeys", "iam:UpdateSSHPublicKey",
                    ],
                    partner_users_arn(site.account, site.silo_name, site.namespace),
                ),
                list_users_statement(),
                audit_statement,
            ],
        )

    def _partner_session_role(
        self, name: str, site: DropzoneSite, tags: dict[str, str], session_role_name: str
    ) -> aws.iam.Role:
        """The role the API assumes for partner sessions, which a session policy narrows per partner."""
        role, _ = role_with_policy(
            f"{name}-partner-session",
            session_role_name,
            role_trust_policy("AllowCredentialVendingApi", self.functions["api"].role.arn),
            site.reach_statements("Dropzone", "dropzone/"),
            tags,
            self._child,
            description="Assumed by the credential-vending API for partner sessions, narrowed per partner by a session policy",
            max_session_duration=3600,
        )
        return role

    def _janitor_schedule(self, name: str, args: DropzoneArgs, tags: dict[str, str]) -> None:
        site = args.site
        janitor = self.functions["janitor"].function
        schedule = aws.cloudwatch.EventRule(
            f"{name}-janitor-schedule",
            name=f"{site.base_name}-dropzone-janitor",
            description=f"Runs the {site.silo_name} dropzone janitor",
            schedule_expression=args.config.janitor_schedule,
            tags=tags,
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(f"{name}-janitor-target", rule=schedule.name, arn=janitor.arn, opts=self._child)
        aws.lambda_.Permission(
            f"{name}-janitor-permission",
            action="lambda:InvokeFunction",
            function=janitor.name,
            principal="events.amazonaws.com",
            source_arn=schedule.arn,
            opts=self._child,
        )

    def _rest_api(self, name: str, site: DropzoneSite, tags: dict[str, str]) -> aws.apigateway.RestApi:
        return aws.apigateway.RestApi(
            f"{name}-api",
            name=f"{site.base_name}-dropzone-api",
            description=f"Credential-vending API of the {site.silo_name} dropzone",
            endpoint_configuration=aws.apigateway.RestApiEndpointConfigurationArgs(types="REGIONAL"),
            tags=tags,
            opts=self._child,
        )

    def _api_routes(self, name: str, args: DropzoneArgs) -> list[pulumi.Resource]:
        """Every route behind the Cognito authorizer with its integration, and the gateway's own
        error responses: what a deployment of the API must wait for."""
        authorizer = aws.apigateway.Authorizer(
            f"{name}-authorizer",
            name="cognito",
            rest_api=self.rest_api.id,
            type="COGNITO_USER_POOLS",
            provider_arns=[self.user_pool.arn],
            identity_source="method.request.header.Authorization",
            opts=self._child,
        )
        paths = sorted({path for _, path in ROUTES})
        resources = self._api_resources(name, paths)
        routes = self._api_methods(name, args.site.account, paths, resources, authorizer)
        return routes + self._gateway_responses(name, args)

    def _allow_api_invocation(self, name: str, site: DropzoneSite) -> None:
        aws.lambda_.Permission(
            f"{name}-api-permission",
            action="lambda:InvokeFunction",
            function=self.functions["api"].function.name,
            principal="apigateway.amazonaws.com",
            source_arn=site.account.arn("execute-api", pulumi.Output.concat(self.rest_api.id, "/*/*")),
            opts=self._child,
        )

    def _api_resources(self, name: str, paths: Sequence[str]) -> dict[str, pulumi.Output[str]]:
        """An API resource for every segment of every path: its id by path without the leading `/`."""
        resources: dict[str, pulumi.Output[str]] = {"": self.rest_api.root_resource_id}
        for path in paths:
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts) + 1):
                sub = "/" + "/".join(parts[:depth])
                if sub[1:] in resources:
                    continue
                parent = "/".join(parts[: depth - 1])
                resource = aws.apigateway.Resource(
                    f"{name}-resource{sub.replace('/', '-').replace('{', '').replace('}', '')}",
                    rest_api=self.rest_api.id,
                    parent_id=resources[parent],
                    path_part=parts[depth - 1],
                    opts=self._child,
                )
                resources[sub[1:]] = resource.id
        return resources

    def _api_methods(
        self,
        name: str,
        account: AccountContext,
        paths: Sequence[str],
        resources: dict[str, pulumi.Output[str]],
        authorizer: aws.apigateway.Authorizer,
    ) -> list[pulumi.Resource]:
        # Built from ARNs rather than read from the API/function outputs, so the wiring is visible
        # (and testable) before anything exists.
        invoke_uri = pulumi.Output.concat(
            "arn:", account.partition, ":apigateway:", account.region, ":lambda:path/2015-03-31/functions/",
            self.functions["api"].function.arn, "/invocations",
        )
        methods: list[pulumi.Resource] = []
        # Every route and its CORS preflight go to the one function (Lambda proxy). Preflights
        # carry no token, so only OPTIONS is unauthenticated; the function answers it without data.
        for method, path in [*ROUTES, *(("OPTIONS", p) for p in paths)]:
            logical = f"{name}-{method.lower()}{path.replace('/', '-').replace('{', '').replace('}', '')}"
            secured = method != "OPTIONS"
            api_method = aws.apigateway.Method(
                logical,
                rest_api=self.rest_api.id,
                resource_id=resources[path.strip("/")],
                http_method=method,
                authorization="COGNITO_USER_POOLS" if secured else "NONE",
                authorizer_id=authorizer.id if secured else None,
                opts=self._child,
            )
            integration = aws.apigateway.Integration(
                f"{logical}-integration",
                rest_api=self.rest_api.id,
                resource_id=api_method.resource_id,
                http_method=api_method.http_method,
                type="AWS_PROXY",
                integration_http_method="POST",
                uri=invoke_uri,
                opts=self._child,
            )
            methods += [api_method, integration]
        return methods

    def _gateway_responses(self, name: str, args: DropzoneArgs) -> list[pulumi.Resource]:
        """Errors API Gateway answers itself (401 from the authorizer, throttling) need CORS headers
        too, or the browser hides them from the console."""
        origin_header = pulumi.Output.from_input(args.config.allowed_origin).apply(lambda o: f"'{o}'" if o else "")
        return [
            aws.apigateway.Response(
                f"{name}-{response_type.lower().replace('_', '-')}",
                rest_api_id=self.rest_api.id,
                response_type=response_type,
                response_parameters=origin_header.apply(
                    lambda header: {"gatewayresponse.header.Access-Control-Allow-Origin": header} if header else {}
                ),
                opts=self._child,
            )
            for response_type in ("DEFAULT_4XX", "DEFAULT_5XX")
        ]

    def _api_stage(
        self, name: str, args: DropzoneArgs, tags: dict[str, str], routes: Sequence[pulumi.Resource]
    ) -> aws.apigateway.Stage:
        """A deployment of `routes` (redeployed when `ROUTES` change) and its throttled, logged stage."""
        site = args.site
        route_digest = hashlib.sha256(json.dumps(sorted(ROUTES)).encode()).hexdigest()
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment",
            rest_api=self.rest_api.id,
            triggers={"routes": route_digest},
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(depends_on=list(routes))),
        )
        # Access logs under `datalake/<silo>/`, which the silo key's dropzone log grant covers.
        access_log = aws.cloudwatch.LogGroup(
            f"{name}-api-access-log",
            name=f"{site.namespace}/{site.silo_name}/api-access",
            retention_in_days=args.config.function_log_retention_days,
            kms_key_id=site.key_arn,
            tags=tags,
            opts=self._child,
        )
        return logged_stage(
            name,
            rest_api=self.rest_api.id,
            deployment=deployment.id,
            stage_name="api",
            access_log_arn=access_log.arn,
            throttle_rate_limit=args.config.throttle_rate_limit,
            throttle_burst_limit=args.config.throttle_burst_limit,
            depends_on=args.stage_depends_on,
            tags=tags,
            parent=self,
        )
