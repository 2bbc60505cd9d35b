"""The HTTP API as packaged is locked down: every route authenticates (IAM signing by default, a JWT
authorizer where params.apiAuth says `jwt`), CORS admits only the configured origins, the stage
throttles, and the access log records who called what without ever recording a credential."""

from __future__ import annotations

import json

from tests.deploy.conftest import Template

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


def routes(template: Template) -> dict[str, dict[str, object]]:
    found = {name: template.properties(name) for name in template.of_type(ROUTE)}
    assert found, f"{template.stage}: no HTTP API route in the template"
    return found


def test_every_route_requires_an_iam_signature_in_the_default_stage(template: Template) -> None:
    assert template.params["apiAuth"] == "iam"
    for name, route in routes(template).items():
        assert route.get("AuthorizationType") == "AWS_IAM", name
        assert "AuthorizerId" not in route, name
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
