"""`ticketbridge status`: the exit code says whether anything needs attention."""

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.operator_ledger import build_ledger, operator_config
from ticketbridge.cli import main
from ticketbridge.ledger import Ledger


def status(config: Path, *extra: str) -> int:
    return main(["--config", str(config), "status", *extra])


def test_a_healthy_ledger_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path, dead=False)
    assert status(operator_config(tmp_path)) == 0
    assert "OK: nothing needs attention" in capsys.readouterr().out


def test_dead_deliveries_need_attention(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path)
    assert status(operator_config(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "destination snow_old: 1 dead delivery" in out
    assert "HTTP 401" in out


def test_a_source_not_polled_within_three_intervals_needs_attention(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path, dead=False)
    config = operator_config(tmp_path, poll_interval=0.01)
    time.sleep(0.05)

    assert status(config) == 1
    assert "source nagios: no successful poll for" in capsys.readouterr().out


def test_a_source_with_no_poll_record_says_the_daemon_may_be_down(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path, dead=False)
    sources = {
        "nagios": {"type": "spool", "path": str(tmp_path / "spool")},
        "other": {"type": "spool", "path": str(tmp_path / "other")},
    }
    assert status(operator_config(tmp_path, sources=sources)) == 1
    assert "source other: never polled" in capsys.readouterr().out


def test_an_open_circuit_needs_attention(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = build_ledger(tmp_path, dead=False)

    async def trip() -> None:
        ledger = await Ledger.open(path)
        await ledger.record_destination_status(
            "jira_new", circuit_state="open", last_error="HTTP 503"
        )
        await ledger.close()

    asyncio.run(trip())

    assert status(operator_config(tmp_path)) == 1
    assert "destination jira_new: circuit open" in capsys.readouterr().out


def test_an_old_pending_delivery_needs_attention(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The dead one is active no more; a fresh pending one is older than 0s."""
    path = build_ledger(tmp_path, dead=False)

    async def add_pending() -> None:
        from tests.operator_ledger import routed

        ledger = await Ledger.open(path)
        await ledger.ingest("nagios", [routed("new", "web02", ["jira_new"])], None)
        await ledger.close()

    asyncio.run(add_pending())
    time.sleep(0.01)

    assert status(operator_config(tmp_path), "--max-pending-age", "0") == 1
    assert "oldest pending delivery is" in capsys.readouterr().out


def test_json_output_has_stable_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    build_ledger(tmp_path)
    status(operator_config(tmp_path), "--json")
    report = json.loads(capsys.readouterr().out)

    assert sorted(report) == ["attention", "destinations", "ok", "sources"]
    snow = next(d for d in report["destinations"] if d["destination"] == "snow_old")
    assert snow["counts"]["dead"] == 1 and report["ok"] is False


def test_a_missing_ledger_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert status(operator_config(tmp_path)) == 2
    assert "no ledger at" in capsys.readouterr().err
