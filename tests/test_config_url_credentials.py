"""Credentials in a destination URL: refused where they clash, never printed."""

from pathlib import Path

import pytest

from tests.helpers import base_config, write_config
from ticketbridge.config import Config, ConfigError, load_config, summarise


def load_with(tmp_path: Path, destination: dict) -> Config:
    config = base_config(
        tmp_path,
        destinations={"hook": destination},
        routes=[{"name": "all", "destinations": ["hook"]}],
    )
    return load_config(write_config(tmp_path / "c.yaml", config), environ={})


def test_a_webhook_token_with_credentials_in_the_url_is_refused(
    tmp_path: Path,
) -> None:
    """aiohttp cannot send both; every request would fail at run time."""
    with pytest.raises(ConfigError) as caught:
        load_with(
            tmp_path,
            {"type": "webhook", "url": "http://u:p@127.0.0.1:9/x", "token": "t0ken"},
        )
    assert "remove the user and password from the URL" in caught.value.problems[0]


def test_check_config_summary_shows_no_url_credentials_or_path(
    tmp_path: Path,
) -> None:
    config = load_with(
        tmp_path,
        {
            "type": "webhook",
            "url": "https://user:pw-in-url@hooks.example:8443/T0/B0/path-secret",
        },
    )
    summary = summarise(config)
    assert "hook: webhook https://hooks.example:8443/..." in summary
    assert "pw-in-url" not in summary and "path-secret" not in summary
