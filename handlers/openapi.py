"""docs/openapi.json: the HTTP API's OpenAPI 3.1 description, generated from the code.

Powertools' OpenAPI support describes each route of the two HTTP functions (read, start) from its
decorator (summary, answers with their pydantic models, path parameters). What the functions
parse themselves is added here from the same models and patterns the code uses: the list's query
parameters (`ListQuery`), the create's body (`CreateExecutionRequest`), the Idempotency-Key and
If-None-Match headers, the report's `format` parameter and its text/markdown and text/csv answers. Powertools' own 422 "Validation Error" answer is dropped: request
validation is ours (a 400 listing the problems), so no route answers it.

`python -m handlers.openapi` rewrites the file; `--check` exits 1 when the file differs from the
code (tests/unit/test_openapi.py runs the same comparison in `make test`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from pydantic.json_schema import models_json_schema

from reconciler.report import MEDIA_TYPES, ReportFormat
from schemas.api import EXECUTION_ID, IDEMPOTENCY_KEY, CleanupRequest, CreateExecutionRequest, ListQuery

from . import read, start

PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
TITLE = "DRS Wave Reconciler API"
VERSION = "1.0.0"
_COMPONENTS = "#/components/schemas/{model}"
_POWERTOOLS_ONLY = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def _routes(app: APIGatewayHttpResolver) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
    return document


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string, never null: drop pydantic's `null` branch."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**options[0], **rest}
    return schema


def _query_parameters() -> list[dict[str, Any]]:
    schema = ListQuery.model_json_schema(by_alias=True)
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": prop.get("description", ""),
            "schema": _not_null(
                {
                    k: v
                    for k, v in prop.items()
                    if k not in ("description", "title") and (k, v) != ("default", None)
                }
            ),
        }
        for name, prop in schema["properties"].items()
    ]


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same key with the same request gets the first answer (24 hours by default); "
    "with another request, 422.",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY},
}
DRY_RUN = {
    "name": "dryRun",
    "in": "query",
    "required": False,
    "description": "true: run every check and answer the readiness report (200); nothing is written or started.",
    "schema": {"type": "string", "enum": ["true", "false"], "default": "false"},
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the last answer: 304 while nothing changed.",
    "schema": {"type": "string"},
}
REPORT_FORMAT = {
    "name": "format",
    "in": "query",
    "required": False,
    "description": "markdown: a title, a table of waves and the execution, a table of servers; csv: a "
    "header row, then per wave a row per server (scope server) and its summary (scope wave), then the "
    "execution's (scope execution). Another value or any other parameter: 400.",
    "schema": {
        "type": "string",
        "enum": [f.value for f in ReportFormat],
        "default": ReportFormat.MARKDOWN.value,
    },
}
# The report's 200: one text per format, each with its media type
REPORT_CONTENT = {
    f"{MEDIA_TYPES[f]}": {"schema": {"type": "string"}} for f in (ReportFormat.MARKDOWN, ReportFormat.CSV)
}
_ETAGGED = ("getExecution", "getExecutionReport")
_HEADERS = {
    "ETag": {"description": "Changes with every accepted write", "schema": {"type": "string"}},
    "Location": {"description": "The execution's path", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}},
}


def generate() -> dict[str, Any]:
    """The description, from the code as it is now."""
    documents = [_routes(read.app), _routes(start.app)]
    body_refs, definitions = models_json_schema(
        [(CreateExecutionRequest, "validation"), (CleanupRequest, "validation")],
        by_alias=True,
        ref_template=_COMPONENTS,
    )
    schemas: dict[str, Any] = {**definitions.get("$defs", {})}
    paths: dict[str, dict[str, Any]] = {}
    for document in documents:
        schemas.update(document.get("components", {}).get("schemas", {}))
        for path, operations in document["paths"].items():
            paths.setdefault(path, {}).update(operations)
    for name in _POWERTOOLS_ONLY:
        schemas.pop(name, None)
    for operations in paths.values():
        for method, operation in operations.items():
            answers = operation["responses"]
            if answers.get("422", {}).get("description") == "Validation Error":
                del answers["422"]
            for status, answer in answers.items():
                if (
                    answer.get("content", {}).get("application/json", {}).get("schema", {}).get("title")
                    == "Return"
                ):
                    del answer["content"]  # no model: no body (304)
                header = {"200": "ETag", "304": "ETag", "202": "Location", "503": "Retry-After"}.get(status)
                if header and (header != "ETag" or operation["operationId"] in _ETAGGED):
                    answer["headers"] = {header: _HEADERS[header]}
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "executionId":
                    parameter["schema"] = {"type": "string", "pattern": f"^{EXECUTION_ID.pattern}$"}
            if method == "post":
                operation.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
    paths["/executions"]["get"]["parameters"] = _query_parameters()
    paths["/executions"]["post"]["parameters"].append(DRY_RUN)
    paths["/executions/{executionId}"]["get"]["parameters"].append(IF_NONE_MATCH)
    report = paths["/executions/{executionId}/report"]["get"]
    report["parameters"] += [REPORT_FORMAT, IF_NONE_MATCH]
    report["responses"]["200"]["content"] = REPORT_CONTENT
    paths["/executions"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": body_refs[(CreateExecutionRequest, "validation")]}},
    }
    paths["/executions/{executionId}/cleanup"]["post"]["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": body_refs[(CleanupRequest, "validation")]}},
    }
    return {
        "openapi": documents[0]["openapi"],
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Disaster-recovery executions of AWS Elastic Disaster Recovery waves. "
            "Errors are {message, problems}.",
        },
        "servers": [{"url": "/"}],
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": {"schemas": {name: schemas[name] for name in sorted(schemas)}},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when docs/openapi.json differs from the code"
    )
    args = parser.parse_args(argv)
    text = render(generate())
    if args.check:
        if not PATH.exists() or PATH.read_text() != text:
            sys.stderr.write(f"{PATH} does not match the code: run `python -m handlers.openapi`\n")
            return 1
        return 0
    PATH.write_text(text)
    sys.stdout.write(f"wrote {PATH}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
