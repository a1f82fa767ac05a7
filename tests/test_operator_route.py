"""`ticketbridge route`: a dry run of one event file, without the ledger."""

import json
from pathlib import Path

import pytest

from tests.helpers import write_spool_event
from tests.operator_ledger import operator_config
from ticketbridge.cli import main


def route(tmp_path: Path, event: Path, *extra: str) -> int:
    return main(
        ["--config", str(operator_config(tmp_path)), "route", str(event), *extra]
    )


def test_route_shows_rule_destinations_key_and_ticket_text(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    event = write_spool_event(tmp_path, "p1", summary="HTTP 503 on /health")

    assert route(tmp_path, event) == 0

    out = capsys.readouterr().out
    assert "route:        both" in out
    assert "destinations: jira_new, snow_old" in out
    assert "incident key: nagios|web01|HTTP" in out
    assert "summary: [CRITICAL] web01/HTTP: HTTP 503 on /health" in out
    assert "marker:       tb-" in out


def test_route_builds_the_fields_the_client_would_send(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    event = write_spool_event(tmp_path, "p1")

    assert route(tmp_path, event, "--json") == 0

    shown = json.loads(capsys.readouterr().out)
    snow = shown["requests"]["snow_old"]
    assert snow["operation"] == "create"
    assert snow["fields"]["correlation_id"] == shown["marker"]
    assert shown["requests"]["jira_new"]["fields"]["labels"] == [shown["marker"]]


def test_a_matching_drop_route_is_reported_as_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    event = write_spool_event(tmp_path, "n1", check="NTP offset")
    assert route(tmp_path, event, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["route"], shown["dropped"], shown["requests"]) == ("quiet", True, {})


def test_an_invalid_file_gets_the_spools_error_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    event = write_spool_event(tmp_path, "bad", host="$HOSTNAME$")

    assert route(tmp_path, event) == 2

    out = capsys.readouterr().out
    assert "invalid: host: unexpanded monitoring macro '$HOSTNAME$'" in out


def test_route_never_touches_the_ledger(tmp_path: Path) -> None:
    event = write_spool_event(tmp_path, "p1")
    route(tmp_path, event)
    assert not (tmp_path / "ledger.sqlite3").exists()
