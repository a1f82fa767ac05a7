"""The spool directory must exist: a missing one is a source error, not re-made."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.helpers import base_config, write_config
from ticketbridge.cli import main
from ticketbridge.config import load_config
from ticketbridge.config.model import SpoolSource
from ticketbridge.daemon import Daemon
from ticketbridge.ledger import Ledger
from ticketbridge.sources import SourceError, build_source
from ticketbridge.sources.spool import SpoolDirectory


def spool_at(path: Path) -> SpoolDirectory:
    return SpoolDirectory("nagios", SpoolSource(type="spool", path=path))


async def test_a_missing_spool_directory_is_an_error_and_not_recreated(
    tmp_path: Path,
) -> None:
    source = spool_at(tmp_path / "spool")

    with pytest.raises(SourceError, match=r"^sources\.nagios\.path: .* does not exist"):
        await source.poll(None)

    assert not (tmp_path / "spool").exists()


async def test_a_spool_path_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("", encoding="utf-8")

    with pytest.raises(SourceError, match="is not a directory"):
        await spool_at(tmp_path / "spool").poll(None)


async def test_an_existing_spool_gets_its_processed_and_rejected_folders(
    tmp_path: Path,
) -> None:
    (tmp_path / "spool").mkdir()

    await spool_at(tmp_path / "spool").poll(None)

    assert (tmp_path / "spool" / "processed").is_dir()
    assert (tmp_path / "spool" / "rejected").is_dir()


async def test_a_spool_moved_away_counts_logs_and_records_a_source_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`mv spool spool.away` under a running daemon is loud, and stays so."""
    (tmp_path / "spool").mkdir()
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))
    config = load_config(path)
    daemon = Daemon(path, config)
    daemon.ledger = await Ledger.open(config.ledger.path)
    daemon.sources = {n: build_source(n, s) for n, s in config.sources.items()}
    try:
        assert (await daemon.poll_once())[0]
        (tmp_path / "spool").rename(tmp_path / "spool.away")

        with caplog.at_level(logging.ERROR):
            healthy, _ = await daemon.poll_once()

        rows = await daemon.ledger.rows("SELECT source, last_error FROM source_status")
    finally:
        await daemon.ledger.close()

    assert not healthy
    assert not (tmp_path / "spool").exists()
    errors = daemon.metrics.source_errors.labels("nagios")._value.get()
    assert errors == 1
    assert "does not exist" in caplog.text
    assert [r["source"] for r in rows] == ["nagios"]
    assert "sources.nagios.path" in rows[0]["last_error"]


def test_check_config_refuses_a_spool_path_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))

    assert main(["check-config", str(path)]) == 2

    err = capsys.readouterr().err
    assert f"  sources.nagios.path: {tmp_path / 'spool'} does not exist" in err


def test_check_config_accepts_an_existing_spool_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spool").mkdir()
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))

    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: OK")
