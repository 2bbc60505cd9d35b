"""One rendering of time for every stored and served timestamp.

DRS sends ISO-8601 strings with either `Z` or `+00:00`, EC2 sends datetimes; we store and serve
UTC with millisecond precision ending in `Z`, so documents compare and sort as plain strings.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(moment: datetime) -> str:
    """Render an aware (or naive-UTC) datetime as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 timestamp leniently (`Z`, `+00:00`, no offset = UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def normalize_time(text: str | None) -> str | None:
    """`parse_time` then `iso_z`; None and unparsable values give None."""
    if not text:
        return None
    try:
        return iso_z(parse_time(text))
    except ValueError:
        return None
