"""The environment overrides what the file defines; it never adds an entry."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.helpers import base_config, write_config
from ticketbridge.config import ConfigError, load_config


def test_secret_for_a_destination_the_file_no_longer_has_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Removing a destination from the file is enough, its token may stay set."""
    monkeypatch.setenv("TICKETBRIDGE_DESTINATIONS__JIRA_OLD__TOKEN", "left-over")
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))

    with caplog.at_level(logging.WARNING):
        config = load_config(path)

    assert set(config.destinations) == {"jira_new"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "variable", None) for r in warnings] == [
        "TICKETBRIDGE_DESTINATIONS__JIRA_OLD__TOKEN"
    ]
    assert "left-over" not in caplog.text


def test_other_setting_for_an_undefined_destination_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETBRIDGE_DESTINATIONS__JIRA_OLD__URL", "http://x.invalid")
    monkeypatch.setenv("TICKETBRIDGE_DESTINATIONS__JIRA_OLD__TOKEN", "left-over")
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    [problem] = caught.value.problems
    assert problem.startswith("destinations.jira_old: set only by the environment")
    assert "unset TICKETBRIDGE_DESTINATIONS__JIRA_OLD__TOKEN, " in problem
    assert "TICKETBRIDGE_DESTINATIONS__JIRA_OLD__URL" in problem


def test_setting_for_an_undefined_source_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETBRIDGE_SOURCES__OLD_SPOOL__PATH", "/nowhere")
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.problems == [
        "sources.old_spool: set only by the environment "
        "(TICKETBRIDGE_SOURCES__OLD_SPOOL__PATH) but the file defines no source "
        "'old_spool'; unset TICKETBRIDGE_SOURCES__OLD_SPOOL__PATH or define "
        "old_spool in the file"
    ]


def test_secret_from_the_environment_still_fills_a_defined_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = base_config(tmp_path)
    del data["destinations"]["jira_new"]["token"]
    monkeypatch.setenv("TICKETBRIDGE_DESTINATIONS__JIRA_NEW__TOKEN", "from-env")

    config = load_config(write_config(tmp_path / "c.yaml", data))

    token = config.destinations["jira_new"].token  # type: ignore[union-attr]
    assert token is not None and token.get_secret_value() == "from-env"
