"""Settings come from the environment, validated; the table name has no default."""

from __future__ import annotations

import pytest

from reconciler.settings import Settings


def test_defaults_apply_when_only_the_table_is_named():
    settings = Settings.from_env({"TABLE_NAME": "waves"})
    assert (settings.ec2_grace_seconds, settings.max_servers_per_wave, settings.sweep_concurrency) == (
        900,
        100,
        8,
    )
    assert settings.page_size is None


def test_values_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "TABLE_NAME": "waves",
            "EC2_GRACE_SECONDS": "60",
            "MAX_SERVERS_PER_WAVE": "200",
            "API_PAGE_SIZE": "1",
        }
    )
    assert (settings.ec2_grace_seconds, settings.max_servers_per_wave, settings.page_size) == (60, 200, 1)


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"TABLE_NAME": ""},
        {"TABLE_NAME": "waves", "MAX_SERVERS_PER_WAVE": "201"},
        {"TABLE_NAME": "t", "SWEEP_CONCURRENCY": "x"},
    ],
    ids=["no table", "empty table", "over the DRS API limit", "not a number"],
)
def test_a_bad_or_missing_setting_fails_at_start_with_a_clear_message(environ: dict[str, str]):
    with pytest.raises(RuntimeError, match="invalid configuration"):
        Settings.from_env(environ)
