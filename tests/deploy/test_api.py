"""The HTTP API as packaged is locked down: every route authenticates (IAM signing by default, a JWT
authorizer where params.apiAuth says `jwt`), reading (GET) and operating (POST) are authorized and
throttled apart, the README's IAM caller policies name exactly the routes of each kind, CORS admits
only the configured origins, the stage throttles, and the access log records who called what
without ever recording a credential."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase

from tests.deploy.conftest import ROOT, Template

ROUTE = "AWS::ApiGatewayV2::Route"
AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"
# What a SigV4-signed browser request sends besides the body.
SIGV4_HEADERS = {
    "Authorization",
    "Content-Type",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
}
# Never in an access log line: tokens, credentials, bodies.
UNLOGGABLE = ("authorizer", "authorization", "body", "token")
# Every route is one kind, by its method: reading or operating (starting, resuming, cancelling).
KIND = {"GET": "read", "POST": "operate"}
README_POLICIES = "### Authorization: reading and operating"
INVOKE_ARN = re.compile(r"^arn:aws:execute-api:REGION:ACCOUNT:API_ID/\*/(?P<route>(GET|POST)/.+)$")


def routes(template: Template) -> dict[str, dict[str, object]]:
    found = {name: template.properties(name) for name in template.of_type(ROUTE)}
    assert found, f"{template.stage}: no HTTP API route in the template"
    return found


def kind_of(route_key: str) -> str:
    """`read` or `operate`; a route of another method fails here until it is given a kind."""
    return KIND[route_key.split(" ", 1)[0]]


def test_every_route_requires_an_iam_signature_in_the_default_stage(template: Template) -> None:
    assert template.params["apiAuth"] == "iam"
    for name, route in routes(template).items():
        assert route.get("AuthorizationType") == "AWS_IAM", name
        assert "AuthorizerId" not in route, name
        assert "AuthorizationScopes" not in route, name  # IAM: the caller's policy decides
    # No JWT authorizer (with a placeholder issuer) is left lying around in an IAM stage.
    assert not template.of_type(AUTHORIZER)


def test_every_route_requires_a_jwt_from_the_configured_issuer_in_prod(prod_template: Template) -> None:
    params = prod_template.params
    assert params["apiAuth"] == "jwt"
    ((authorizer_id, authorizer),) = prod_template.of_type(AUTHORIZER).items()
    properties = authorizer["Properties"]
    assert properties["AuthorizerType"] == "JWT"
    assert properties["IdentitySource"] == ["$request.header.Authorization"]
    assert properties["JwtConfiguration"] == {
        "Issuer": params["jwtIssuer"],
        "Audience": params["jwtAudience"],
    }
    assert properties["JwtConfiguration"]["Issuer"].startswith("https://")
    for name, route in routes(prod_template).items():
        assert route.get("AuthorizationType") == "JWT", name
        assert route.get("AuthorizerId") == {"Ref": authorizer_id}, name


def test_with_jwt_reading_and_operating_require_different_scopes(prod_template: Template) -> None:
    params = prod_template.params
    assert params["apiAuth"] == "jwt"
    scopes = {"read": params["readScope"], "operate": params["operateScope"]}
    assert scopes["read"] != scopes["operate"]
    kinds = set()
    for name, route in routes(prod_template).items():
        kind = kind_of(str(route["RouteKey"]))
        kinds.add(kind)
        assert route.get("AuthorizationType") == "JWT", name
        assert route.get("AuthorizationScopes") == [scopes[kind]], f"{name} ({route['RouteKey']})"
    assert kinds == {"read", "operate"}


def readme_policies() -> list[dict[str, object]]:
    """The JSON blocks of the README's authorization section: the reader's, then the operator's."""
    text = (ROOT / "README.md").read_text()
    assert README_POLICIES in text, f"README.md has no section {README_POLICIES!r}"
    section = text.split(README_POLICIES, 1)[1].split("\n#", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


def invoked_routes(policy: dict[str, object], route_keys: set[str]) -> set[str]:
    """The route keys a caller policy lets its holder invoke; every resource must name one."""
    allowed: set[str] = set()
    statements = policy["Statement"]
    assert isinstance(statements, list)
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "execute-api:Invoke"
        for resource in statement["Resource"]:
            match = INVOKE_ARN.match(resource)
            assert match, f"not an execute-api ARN of the README's form: {resource}"
            # IAM's `*` matches any characters, `/` included, as fnmatch's does.
            hits = {key for key in route_keys if fnmatchcase(key.replace(" ", "", 1), match["route"])}
            assert hits, f"{resource} names no route of the API"
            allowed |= hits
    return allowed


def test_the_readme_s_iam_policies_cover_exactly_the_routes_of_each_kind(packaged: Template) -> None:
    route_keys = {str(route["RouteKey"]) for route in routes(packaged).values()}
    reader, operator = readme_policies()
    assert invoked_routes(reader, route_keys) == {k for k in route_keys if kind_of(k) == "read"}
    assert invoked_routes(operator, route_keys) == route_keys


def test_reads_and_operations_are_throttled_apart(packaged: Template) -> None:
    stage = packaged.resources["HttpApiStage"]
    settings = stage["Properties"]["RouteSettings"]
    found = routes(packaged)
    assert set(settings) == {str(route["RouteKey"]) for route in found.values()}
    params = packaged.params
    for key, limits in settings.items():
        kind = kind_of(key)
        assert limits == {
            "ThrottlingBurstLimit": params[f"{kind}ThrottleBurstLimit"],
            "ThrottlingRateLimit": params[f"{kind}ThrottleRateLimit"],
        }, key
        assert limits["ThrottlingBurstLimit"] > 0 and limits["ThrottlingRateLimit"] > 0, key
    read, operate = (
        (params[f"{k}ThrottleBurstLimit"], params[f"{k}ThrottleRateLimit"]) for k in ("read", "operate")
    )
    assert read != operate  # else one limit under two names
    # A route setting must name an existing route: the stage is created after every route.
    assert set(found) <= set(stage["DependsOn"])


def test_cors_admits_only_the_configured_origins(packaged: Template) -> None:
    ((_, api),) = packaged.of_type("AWS::ApiGatewayV2::Api").items()
    cors = api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == packaged.params["corsOrigins"]
    assert cors["AllowOrigins"]
    assert not any("*" in origin for origin in cors["AllowOrigins"])
    assert all(origin.startswith("https://") for origin in cors["AllowOrigins"])
    assert set(cors["AllowMethods"]) == {"GET", "POST"}
    assert set(cors["AllowHeaders"]) == SIGV4_HEADERS
    assert not cors.get("AllowCredentials")


def test_the_stage_throttles_every_route(packaged: Template) -> None:
    settings = packaged.properties("HttpApiStage")["DefaultRouteSettings"]
    assert settings["ThrottlingBurstLimit"] == packaged.params["throttleBurstLimit"]
    assert settings["ThrottlingRateLimit"] == packaged.params["throttleRateLimit"]
    assert settings["ThrottlingBurstLimit"] > 0
    assert settings["ThrottlingRateLimit"] > 0


def test_the_access_log_records_callers_and_outcomes_but_no_credentials(packaged: Template) -> None:
    logging = packaged.properties("HttpApiStage")["AccessLogSettings"]
    line = logging["Format"]
    for word in UNLOGGABLE:
        assert word not in line.lower(), word
    fields = json.loads(line)  # one JSON object per request
    assert {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "latency": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
        "callerArn": "$context.identity.userArn",
    }.items() <= fields.items()
    (log_group, attribute) = logging["DestinationArn"]["Fn::GetAtt"]
    assert attribute == "Arn"
    assert packaged.resources[log_group]["Type"] == "AWS::Logs::LogGroup"
    assert packaged.properties(log_group)["RetentionInDays"] == packaged.params["logRetentionDays"]
