"""Sources: spool files and legacy SQL rows become events; bad ones are set aside."""

import json
import sqlite3
from pathlib import Path

from tests.helpers import write_spool_event
from ticketbridge.config.model import SpoolSource, SqlSource
from ticketbridge.sources.spool import SpoolDirectory
from ticketbridge.sources.sql import SqlTable


def spool(tmp_path: Path) -> SpoolDirectory:
    (tmp_path / "spool").mkdir(exist_ok=True)
    return SpoolDirectory("nagios", SpoolSource(type="spool", path=tmp_path / "spool"))


async def test_spool_file_becomes_an_event(tmp_path: Path) -> None:
    source = spool(tmp_path)
    write_spool_event(source.path, "a1", host="web01")
    polled = await source.poll(None)
    assert [e.host for e in polled.events] == ["web01"]


async def test_spool_file_moves_to_processed_only_on_acknowledge(
    tmp_path: Path,
) -> None:
    source = spool(tmp_path)
    write_spool_event(source.path, "a1")
    polled = await source.poll(None)
    assert (source.path / "a1.json").exists()

    await source.acknowledge(polled)

    assert not (source.path / "a1.json").exists()
    assert (source.processed / "a1.json").exists()


async def test_bad_spool_file_is_rejected_with_a_reason_file(tmp_path: Path) -> None:
    source = spool(tmp_path)
    (source.path / "bad.json").write_text("{not json", encoding="utf-8")
    polled = await source.poll(None)
    await source.set_aside(polled)

    reason = (source.rejected / "bad.json.reason").read_text(encoding="utf-8")
    assert (source.rejected / "bad.json").exists()
    assert reason.startswith("json: invalid JSON at line 1")


async def test_missing_field_is_named_in_the_reason(tmp_path: Path) -> None:
    source = spool(tmp_path)
    (source.path / "nohost.json").write_text(
        json.dumps({"id": "x", "kind": "problem"}), encoding="utf-8"
    )
    polled = await source.poll(None)
    assert polled.rejects[0].detail == "host: missing"


async def test_temporary_dot_files_are_not_read(tmp_path: Path) -> None:
    source = spool(tmp_path)
    (source.path / ".partial.json").write_text("{", encoding="utf-8")
    polled = await source.poll(None)
    assert polled.events == [] and polled.rejects == []


async def test_unexpanded_macro_is_rejected(tmp_path: Path) -> None:
    source = spool(tmp_path)
    write_spool_event(source.path, "m1", host="$HOSTNAME$")
    polled = await source.poll(None)
    assert "unexpanded monitoring macro" in polled.rejects[0].detail


async def test_macro_inside_the_host_is_rejected(tmp_path: Path) -> None:
    """BC-20: a value still holding a macro token would merge incidents."""
    source = spool(tmp_path)
    write_spool_event(source.path, "m1", host="{HOST.NAME}.example")
    polled = await source.poll(None)
    assert polled.rejects[0].detail == "host: unexpanded monitoring macro '{HOST.NAME}'"


async def test_macro_in_the_time_falls_back_to_the_time_received(
    tmp_path: Path,
) -> None:
    """BC-20: an unexpanded optional field never drops the event."""
    source = spool(tmp_path)
    write_spool_event(source.path, "m1", occurred_at="{EVENT.DATE} {EVENT.TIME}")
    polled = await source.poll(None)
    assert polled.rejects == []
    assert polled.events[0].occurred_at.year >= 2026


def legacy_db(tmp_path: Path, rows: list[tuple]) -> Path:
    path = tmp_path / "legacy.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE alerts (id INTEGER, type TEXT, host TEXT, svc TEXT, "
        "state TEXT, done INTEGER)"
    )
    db.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    return path


def sql_source(path: Path, processed: str | None = None) -> SqlTable:
    settings = SqlSource(
        type="sql",
        database=path,
        table="alerts",
        cursor_column="id",
        columns={"id": "id", "kind": "type", "host": "host", "check": "svc"},
        processed_column=processed,
    )
    return SqlTable("legacy", settings)


async def test_sql_rows_are_read_after_the_cursor(tmp_path: Path) -> None:
    path = legacy_db(tmp_path, [(1, "PROBLEM", "h1", "c", "CRIT", 0)])
    source = sql_source(path)
    first = await source.poll(None)

    db = sqlite3.connect(path)
    db.execute("INSERT INTO alerts VALUES (2, 'RECOVERY', 'h1', 'c', 'OK', 0)")
    db.commit()
    db.close()
    second = await source.poll(first.cursor)

    assert [e.source_event_id for e in first.events] == ["1"]
    assert [e.source_event_id for e in second.events] == ["2"]


async def test_sql_row_with_null_host_is_rejected_with_reason(tmp_path: Path) -> None:
    path = legacy_db(tmp_path, [(1, "PROBLEM", None, "c", "CRIT", 0)])
    polled = await sql_source(path).poll(None)
    assert polled.rejects[0].detail == "host: missing"
    assert polled.cursor is not None


async def test_sql_rows_are_flagged_only_on_acknowledge(tmp_path: Path) -> None:
    path = legacy_db(tmp_path, [(1, "PROBLEM", "h1", "c", "CRIT", 0)])
    source = sql_source(path, processed="done")
    polled = await source.poll(None)
    assert (await source.poll(None)).events  # still unflagged

    await source.acknowledge(polled)

    assert (await source.poll(None)).events == []


async def test_sql_source_without_marking_opens_read_only(tmp_path: Path) -> None:
    path = legacy_db(tmp_path, [(1, "PROBLEM", "h1", "c", "CRIT", 0)])
    path.chmod(0o444)
    polled = await sql_source(path).poll(None)
    assert len(polled.events) == 1
