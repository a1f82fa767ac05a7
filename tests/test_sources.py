"""Sources: spool files and legacy SQL rows become events; bad ones are set aside."""

import asyncio
import json
import os
import sqlite3
from pathlib import Path

from tests.helpers import make_event, write_spool_event
from ticketbridge.config.model import SpoolSource, SqlSource
from ticketbridge.sources.spool import MAX_FILE_BYTES, SpoolDirectory
from ticketbridge.sources.sql import SqlTable


def spool(tmp_path: Path) -> SpoolDirectory:
    (tmp_path / "spool").mkdir(exist_ok=True)
    settings = SpoolSource(type="spool", path=tmp_path / "spool", settle_seconds=0)
    return SpoolDirectory("nagios", settings)


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


async def test_half_written_file_is_left_for_a_later_poll(tmp_path: Path) -> None:
    """A foreign writer writing the .json name in place is not rejected mid-write."""
    (tmp_path / "spool").mkdir()
    settings = SpoolSource(type="spool", path=tmp_path / "spool", settle_seconds=30)
    source = SpoolDirectory("nagios", settings)
    (source.path / "half.json").write_text('{"id": "h1", "ki', encoding="utf-8")

    polled = await source.poll(None)

    assert polled.events == [] and polled.rejects == []
    assert (source.path / "half.json").exists()


async def test_old_truncated_file_is_rejected(tmp_path: Path) -> None:
    source = spool(tmp_path)
    (source.path / "half.json").write_text('{"id": "h1", "ki', encoding="utf-8")
    polled = await source.poll(None)
    assert [r.reason for r in polled.rejects] == ["json"]


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


def sql_source(
    path: Path, processed: str | None = None, cursor: str = "id"
) -> SqlTable:
    settings = SqlSource(
        type="sql",
        database=path,
        table="alerts",
        cursor_column=cursor,
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


async def test_fifo_is_rejected_without_blocking_the_poll(tmp_path: Path) -> None:
    source = spool(tmp_path)
    os.mkfifo(source.path / "pipe.json")
    polled = await asyncio.wait_for(source.poll(None), timeout=5)
    assert [(r.item, r.reason) for r in polled.rejects] == [("pipe.json", "not_a_file")]


async def test_oversized_file_is_refused_by_its_size(tmp_path: Path) -> None:
    source = spool(tmp_path)
    (source.path / "big.json").write_bytes(b" " * (MAX_FILE_BYTES + 1))
    polled = await source.poll(None)
    assert polled.rejects[0].reason == "too_large"


async def test_integer_of_thousands_of_digits_is_rejected(tmp_path: Path) -> None:
    source = spool(tmp_path)
    (source.path / "n.json").write_text('{"id": ' + "9" * 5000 + "}")
    polled = await source.poll(None)
    assert polled.rejects[0].reason == "json"


async def test_symlink_out_of_the_spool_is_rejected_unread(tmp_path: Path) -> None:
    source = spool(tmp_path)
    secret = write_spool_event(tmp_path, "secret")
    (source.path / "link.json").symlink_to(secret)
    polled = await source.poll(None)
    await source.set_aside(polled)
    assert polled.rejects[0].reason == "symlink"
    assert (source.rejected / "link.json").is_symlink() and secret.exists()


async def test_rejected_name_already_taken_keeps_both(tmp_path: Path) -> None:
    source = spool(tmp_path)
    for _ in range(2):
        (source.path / "bad.json").write_text("{", encoding="utf-8")
        await source.set_aside(await source.poll(None))
    assert (source.rejected / "bad.json.1").exists()
    assert (source.rejected / "bad.json.1.reason").exists()


def test_unexpanded_macro_in_an_optional_field_falls_back() -> None:
    """BC-20: the event is kept; the field gets a default and is named."""
    event = make_event(summary="{EVENT.TAGSJSON}", occurred_at="{EVENT.DATE} x")
    assert event.summary == ""
    assert event.fallbacks == ("summary", "occurred_at")


async def test_sql_null_cursor_value_does_not_stall_the_cursor(
    tmp_path: Path,
) -> None:
    path = legacy_db(tmp_path, [(1, "PROBLEM", "h1", "c", "CRIT", None)])
    source = sql_source(path, cursor="done")
    first = await source.poll(None)
    db = sqlite3.connect(path)
    db.execute("INSERT INTO alerts VALUES (2, 'PROBLEM', 'h2', 'c', 'CRIT', 5)")
    db.commit()
    db.close()
    second = await source.poll(first.cursor)
    assert [e.host for e in first.events + second.events] == ["h1", "h2"]


async def test_sql_blob_cursor_value_is_stored_and_resumed(tmp_path: Path) -> None:
    path = legacy_db(tmp_path, [(1, "PROBLEM", "h1", "c", "CRIT", b"\x01")])
    source = sql_source(path, cursor="done")
    first = await source.poll(None)
    assert (await source.poll(first.cursor)).events == []
    assert len(first.events) == 1


async def test_sql_text_that_is_not_utf8_does_not_fail_the_batch(
    tmp_path: Path,
) -> None:
    path = legacy_db(tmp_path, [(1, "PROBLEM", "h1", "c", "CRIT", 0)])
    db = sqlite3.connect(path)
    db.execute("UPDATE alerts SET svc = CAST(x'ff41' AS TEXT)")
    db.commit()
    db.close()
    polled = await sql_source(path).poll(None)
    assert [e.check for e in polled.events] == ["\ufffdA"]
