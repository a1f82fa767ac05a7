"""An event id the ledger already holds: the stored event is kept, and said so."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import base_config, write_config, write_spool_event
from ticketbridge.config import load_config
from ticketbridge.daemon import Daemon
from ticketbridge.ledger import Ledger
from ticketbridge.sources import build_source


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    (tmp_path / "spool").mkdir()
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))
    config = load_config(path)
    daemon = Daemon(path, config)
    daemon.ledger = await Ledger.open(config.ledger.path)
    daemon.sources = {n: build_source(n, s) for n, s in config.sources.items()}
    yield daemon
    await daemon.ledger.close()


def duplicates(daemon: Daemon) -> float:
    return float(daemon.metrics.duplicates.labels("nagios")._value.get())


async def deliver(daemon: Daemon, tmp_path: Path, **fields: str) -> None:
    write_spool_event(tmp_path / "spool", "e1", **fields)
    assert (await daemon.poll_once())[0]


async def test_an_id_reused_with_other_content_warns_and_keeps_the_stored_event(
    daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await deliver(daemon, tmp_path, summary="HTTP 503")

    with caplog.at_level(logging.DEBUG, logger="ticketbridge.daemon"):
        await deliver(daemon, tmp_path, summary="disk full")

    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "stored version kept" in warning.getMessage()
    fields = (getattr(warning, "source", None), getattr(warning, "event", None))
    assert fields == ("nagios", "nagios:e1")
    assert duplicates(daemon) == 1
    assert "event ingested" not in caplog.text
    assert daemon.ledger is not None
    rows = await daemon.ledger.rows("SELECT record FROM events")
    assert len(rows) == 1 and "HTTP 503" in rows[0]["record"]
    assert (tmp_path / "spool" / "processed" / "e1.json.1").exists()


async def test_an_identical_redelivery_is_counted_and_logged_at_debug_only(
    daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await deliver(daemon, tmp_path)

    with caplog.at_level(logging.DEBUG, logger="ticketbridge.daemon"):
        await deliver(daemon, tmp_path)

    levels = [r.levelno for r in caplog.records if "duplicate" in r.getMessage()]
    assert levels == [logging.DEBUG]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert duplicates(daemon) == 1


async def test_a_new_event_is_not_a_duplicate(daemon: Daemon, tmp_path: Path) -> None:
    await deliver(daemon, tmp_path)
    assert duplicates(daemon) == 0
