"""DRS events as they really arrive on EventBridge, parsed at the edge.

Only `DRS Source Server Launch Result` drives us. It names a job (`detail.job-id`) and, in
`resources`, one source server ARN; it carries no instance ids or IPs. `is-drill` is documented
as the string "FALSE"/"TRUE" but we also accept booleans. `state` is kept as a free string:
DRS documents two values, and an unknown one must not make the event unparsable, because the
event is only a hint that names what to reconcile.
"""

from __future__ import annotations

import re
from typing import Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JOB_ID_PATTERN = r"^drsjob-[0-9a-zA-Z]{17}$"
SOURCE_SERVER_ARN = re.compile(
    r"arn:aws[a-z-]*:drs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):source-server/(?P<id>s-[0-9a-zA-Z]{17})"
)

LAUNCH_RESULT = "DRS Source Server Launch Result"


class LaunchResultDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    state: str = Field(min_length=1, max_length=64)
    job_id: str = Field(alias="job-id", pattern=JOB_ID_PATTERN)
    is_drill: bool = Field(alias="is-drill")

    @field_validator("is_drill", mode="before")
    @classmethod
    def _drill_flag(cls, value: object) -> bool:
        """ "TRUE"/"FALSE" in any case, or a JSON boolean; nothing ambiguous (1, "yes", null)."""
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError("is-drill must be 'TRUE', 'FALSE' or a JSON boolean")


class LaunchResultEvent(EventBridgeModel):
    """The EventBridge envelope with a typed Launch Result detail."""

    source: Literal["aws.drs"]
    detail_type: Literal["DRS Source Server Launch Result"] = Field(alias="detail-type")
    detail: LaunchResultDetail

    @model_validator(mode="after")
    def _arn_agrees_with_envelope(self) -> LaunchResultEvent:
        """A source-server ARN names the account and Region of the envelope: a forwarded event
        keeps both (docs/multi-account.md), so a disagreement is a forged or broken event."""
        for arn in self.resources:
            match = SOURCE_SERVER_ARN.fullmatch(arn)
            if match and (match["account"], match["region"]) != (self.account, self.region):
                raise ValueError(
                    f"resources: {arn} is not in the envelope's account {self.account} "
                    f"and Region {self.region}"
                )
        return self

    @property
    def source_server_id(self) -> str | None:
        """The one source server the event is about, from its ARN in `resources`."""
        for arn in self.resources:
            match = SOURCE_SERVER_ARN.fullmatch(arn)
            if match:
                return match["id"]
        return None
