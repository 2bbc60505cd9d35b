"""docs/openapi.json is what the code generates, and describes exactly serverless.yml's routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from handlers import openapi
from schemas.api import CreateExecutionRequest, ExecutionDocument, ExecutionList, ListQuery

ROOT = Path(__file__).resolve().parents[2]


def _routes() -> set[tuple[str, str]]:
    document = yaml.safe_load((ROOT / "serverless.yml").read_text())
    return {
        (event["httpApi"]["method"].lower(), event["httpApi"]["path"])
        for function in document["functions"].values()
        for event in function.get("events", [])
        if "httpApi" in event
    }


def test_the_committed_description_is_what_the_code_generates() -> None:
    assert openapi.PATH.read_text() == openapi.render(openapi.generate()), (
        "docs/openapi.json is stale: run `python -m handlers.openapi`"
    )
    assert openapi.main(["--check"]) == 0


def test_it_describes_exactly_the_deployed_routes() -> None:
    document = openapi.generate()
    described = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert described == _routes()


def _schema(document: dict[str, Any], answer: dict[str, Any]) -> str:
    ref: str = answer["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def test_answers_bodies_and_parameters_come_from_the_models() -> None:
    document = openapi.generate()
    paths = document["paths"]
    assert _schema(document, paths["/executions"]["get"]["responses"]["200"]) == ExecutionList.__name__
    assert (
        _schema(document, paths["/executions/{executionId}"]["get"]["responses"]["200"])
        == "ExecutionDocument"
    )
    body = paths["/executions"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith(CreateExecutionRequest.__name__)
    schemas = document["components"]["schemas"]
    assert set(schemas["ExecutionDocument"]["properties"]) == {
        field.alias or name for name, field in ExecutionDocument.model_fields.items()
    }
    # The plan refuses unknown fields, and the description says so.
    assert schemas["CreateExecutionRequest"]["additionalProperties"] is False
    listed = {p["name"] for p in paths["/executions"]["get"]["parameters"]}
    assert listed == {field.alias for field in ListQuery.model_fields.values()}
    for path, operations in paths.items():
        for method, operation in operations.items():
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert ("Idempotency-Key" in headers) == (method == "post"), (method, path)
            assert "422" not in operation["responses"] or method == "post"  # Powertools' own 422 dropped
            assert {"401", "403", "429", "503"} <= set(operation["responses"]), (method, path)
    assert "HTTPValidationError" not in schemas
