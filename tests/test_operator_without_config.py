"""`status` and `events` still work when the config on disk cannot be loaded."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.operator_ledger import build_ledger
from ticketbridge.cli import main


@pytest.fixture(autouse=True)
def _no_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TICKETBRIDGE_CONFIG", raising=False)


def broken_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("poll_interval: [unclosed\n", encoding="utf-8")
    return path


def test_status_reads_a_ledger_given_by_path_without_any_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sources and destinations come from the ledger itself."""
    ledger = build_ledger(tmp_path)

    assert main(["status", "--ledger", str(ledger), "--json"]) == 1

    report = json.loads(capsys.readouterr().out)
    assert [s["source"] for s in report["sources"]] == ["nagios"]
    assert [d["destination"] for d in report["destinations"]] == [
        "jira_new",
        "snow_old",
    ]
    assert report["attention"] == [
        "destination snow_old: 1 dead delivery "
        "(ticketbridge events list --state dead --destination snow_old)"
    ]


def test_status_with_ledger_judges_lateness_by_the_poll_interval_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = build_ledger(tmp_path, dead=False)
    time.sleep(0.05)

    argv = ["status", "--ledger", str(ledger), "--poll-interval", "0.01"]
    assert main(argv) == 1
    assert "source nagios: no successful poll for" in capsys.readouterr().out
    assert main(["status", "--ledger", str(ledger)]) == 0


def test_a_broken_config_names_ledger_as_the_way_around_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_ledger(tmp_path)

    assert main(["--config", str(broken_config(tmp_path)), "status"]) == 2

    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert "give --ledger PATH" in err


def test_ledger_wins_over_a_broken_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = build_ledger(tmp_path)
    config = broken_config(tmp_path)

    argv = ["--config", str(config), "events", "list", "--ledger", str(ledger)]
    assert main(argv) == 0
    assert "nagios:bad1" in capsys.readouterr().out


def test_events_repair_works_with_a_ledger_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = build_ledger(tmp_path)

    assert main(["events", "retry", "--dead", "--ledger", str(ledger)]) == 0
    assert "nagios:bad1" in capsys.readouterr().out


def test_a_missing_ledger_file_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--ledger", str(tmp_path / "none.sqlite3")]) == 2
    assert "(check --ledger)" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["status"], ["events", "list"]])
def test_no_config_at_all_is_a_bad_request_naming_ledger(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2, as the README promises for a wrong request."""
    with pytest.raises(SystemExit) as exited:
        main(command)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "no config: give --config FILE or set TICKETBRIDGE_CONFIG" in err
    assert "--ledger PATH" in err


def test_check_config_without_a_config_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check-config"])

    assert exited.value.code == 2
    assert "--ledger" not in capsys.readouterr().err
