"""`ticketbridge events`: list, show, retry and skip against a real ledger file."""

import json
from pathlib import Path

import pytest

from tests.operator_ledger import build_ledger, ledger_rows, operator_config
from ticketbridge.cli import main


def run(tmp_path: Path, *argv: str) -> int:
    return main(["--config", str(operator_config(tmp_path)), "events", *argv])


def listed(tmp_path: Path, capsys: pytest.CaptureFixture, *argv: str) -> list[dict]:
    assert run(tmp_path, "list", "--json", *argv) == 0
    return list(json.loads(capsys.readouterr().out)["deliveries"])


def test_list_filters_by_state(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    build_ledger(tmp_path)
    rows = listed(tmp_path, capsys, "--state", "dead")
    assert [(r["event"], r["destination"]) for r in rows] == [
        ("nagios:bad1", "snow_old")
    ]


def test_list_filters_by_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path)
    rows = listed(tmp_path, capsys, "--destination", "jira_new")
    assert [(r["event"], r["ticket"]) for r in rows] == [("nagios:ok1", "OPS-1")]


def test_list_shows_a_readable_table(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path)
    assert run(tmp_path, "list", "--limit", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["EVENT", "LEDGER", "ID"]
    assert len(lines) == 2 and "nagios:bad1" in lines[1]


def test_show_gives_every_attempt_with_status_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path)
    assert run(tmp_path, "show", "nagios:bad1", "--json") == 0
    shown = json.loads(capsys.readouterr().out)

    assert shown["event"]["route"] == "both"
    assert shown["event"]["fields"]["host"] == "db01"
    (delivery,) = shown["deliveries"]
    (attempt,) = delivery["attempts"]
    assert (attempt["operation"], attempt["outcome"], attempt["status"]) == (
        "create",
        "dead",
        401,
    )
    assert "User Not Authenticated" in attempt["error"]


def test_show_accepts_the_ledger_id(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path)
    assert run(tmp_path, "show", "1", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["event"]["ref"] == "nagios:ok1"
    assert shown["deliveries"][0]["ticket"] == {
        "id": "10001",
        "key": "OPS-1",
        "state": "open",
    }
    assert shown["deliveries"][0]["verification"]["outcome"] == "verified"


def test_an_unknown_event_is_a_clear_error_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path)
    assert run(tmp_path, "show", "nagios:nope") == 2
    assert "unknown event 'nagios:nope'" in capsys.readouterr().err


def test_retry_puts_a_dead_delivery_back_to_pending(tmp_path: Path) -> None:
    ledger = build_ledger(tmp_path)
    assert run(tmp_path, "retry", "nagios:bad1") == 0

    (row,) = ledger_rows(ledger, "SELECT * FROM deliveries WHERE id = 2")
    outcomes = ledger_rows(ledger, "SELECT outcome FROM attempts WHERE delivery_id=2")
    assert (row["state"], row["consecutive_failures"]) == ("pending", 0)
    assert outcomes[-1]["outcome"] == "operator-retry"


def test_retry_dead_takes_every_dead_delivery_of_a_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path)
    assert run(tmp_path, "retry", "--dead", "--destination", "snow_old", "--json") == 0
    changed = json.loads(capsys.readouterr().out)["retried"]
    assert [(c["event"], c["state"]) for c in changed] == [("nagios:bad1", "pending")]


def test_retry_of_a_verified_event_changes_nothing_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ledger = build_ledger(tmp_path)
    assert run(tmp_path, "retry", "nagios:ok1") == 1
    assert "nothing retried" in capsys.readouterr().out
    assert ledger_rows(ledger, "SELECT state FROM deliveries WHERE id = 1") == [
        {"state": "verified"}
    ]


def test_skip_records_the_operators_reason(tmp_path: Path) -> None:
    ledger = build_ledger(tmp_path)
    assert run(tmp_path, "skip", "2", "--reason", "opened by hand as INC0042") == 0

    (row,) = ledger_rows(ledger, "SELECT state, last_error FROM deliveries WHERE id=2")
    (attempt,) = ledger_rows(
        ledger, "SELECT * FROM attempts WHERE delivery_id = 2 ORDER BY id DESC LIMIT 1"
    )
    assert row == {
        "state": "skipped",
        "last_error": "operator: opened by hand as INC0042",
    }
    assert (attempt["outcome"], attempt["error"]) == ("skipped", row["last_error"])
