"""The packaged CloudFormation templates, loaded for the tests of tests/deploy: what deploys is
the template osls builds from serverless.yml (plugins, variables, params per stage, resource
extensions applied), not serverless.yml itself. `make package` writes the default stage (dev) to
.serverless/ and the prod stage to .serverless-prod/; a missing file fails the test, never skips
it, so a run without packaging cannot pass by testing nothing. serverless.yml is read only for its
`params` block, each stage's expected values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"dev": ROOT / ".serverless", "prod": ROOT / ".serverless-prod"}
TEMPLATE_FILE = "cloudformation-template-update-stack.json"

Resource = dict[str, Any]


@dataclass(frozen=True)
class Template:
    """One stage's packaged template and the params serverless.yml gives that stage."""

    stage: str
    body: dict[str, Any]
    params: dict[str, Any]

    @property
    def resources(self) -> dict[str, Resource]:
        found: dict[str, Resource] = self.body["Resources"]
        return found

    def of_type(self, resource_type: str) -> dict[str, Resource]:
        """Logical id -> resource, for every resource of `resource_type`."""
        return {name: r for name, r in self.resources.items() if r["Type"] == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.resources[logical_id].get("Properties", {})
        return found


def stage_params(stage: str) -> dict[str, Any]:
    """serverless.yml's params.default overlaid with params.<stage>, as osls resolves ${param:...}."""
    params: dict[str, Any] = yaml.safe_load((ROOT / "serverless.yml").read_text())["params"]
    return {**params["default"], **(params.get(stage) or {})}


def load(stage: str) -> Template:
    path = PACKAGES[stage] / TEMPLATE_FILE
    if not path.is_file():
        pytest.fail(
            f"{path.relative_to(ROOT)} is missing: run `make package` first (it packages every stage)",
            pytrace=False,
        )
    body: dict[str, Any] = json.loads(path.read_text())
    return Template(stage=stage, body=body, params=stage_params(stage))


@pytest.fixture(scope="session")
def template() -> Template:
    """The default stage (dev): IAM-signed API."""
    return load("dev")


@pytest.fixture(scope="session")
def prod_template() -> Template:
    """The prod stage (params.prod): JWT API, longer log retention."""
    return load("prod")


@pytest.fixture(scope="session", params=sorted(PACKAGES))
def packaged(request: pytest.FixtureRequest) -> Template:
    """Each packaged stage in turn, for settings every stage must have."""
    stage: str = request.param
    return load(stage)
