"""SQL source: rows of a table in a legacy SQLite database, read in cursor order.

The database is opened read-only unless `processed_column` asks us to flag
rows; then a row is flagged only after the ledger committed its event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import Any

from ticketbridge.config.model import SqlSource
from ticketbridge.events import Event, InvalidEvent, event_from_mapping
from ticketbridge.sources.base import Polled, Reject

log = logging.getLogger(__name__)

# A row whose mapped columns hold more text than this is quarantined, as a
# spool file of that size would be.
MAX_ROW_BYTES = 1_000_000


class SqlTable:
    def __init__(self, name: str, settings: SqlSource) -> None:
        self.name = name
        self.settings = settings
        self.batch_size = settings.batch_size

    def _connect(self) -> sqlite3.Connection:
        writable = self.settings.processed_column is not None
        mode = "rw" if writable else "ro"
        uri = f"file:{self.settings.database}?mode={mode}"
        db = sqlite3.connect(uri, uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        # Legacy tables hold bytes that are not UTF-8 in TEXT columns; the
        # default decoder would fail the whole batch on one such row.
        db.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
        return db

    async def poll(self, cursor: str | None) -> Polled:
        return await asyncio.to_thread(self._poll, cursor)

    def _poll(self, cursor: str | None) -> Polled:
        with self._connect() as db:
            rows = db.execute(*self._query(cursor)).fetchall()

        polled = Polled(cursor=cursor)
        for row in rows:
            outcome = self._to_event(row)
            if isinstance(outcome, Reject):
                polled.rejects.append(outcome)
            else:
                polled.events.append(outcome)
            polled.handles.append(row["_rowid"])
            polled.cursor = encode_cursor(row["_cursor"], row["_rowid"])
        return polled

    def _query(self, cursor: str | None) -> tuple[str, list[Any]]:
        s = self.settings
        columns = ", ".join(
            f'"{col}" AS "f_{field}"' for field, col in s.columns.items()
        )
        sql = (
            f'SELECT rowid AS _rowid, "{s.cursor_column}" AS _cursor, {columns} '
            f'FROM "{s.table}"'
        )
        where: list[str] = []
        params: list[Any] = []
        if s.processed_column is not None:
            where.append(
                f'("{s.processed_column}" IS NULL OR "{s.processed_column}" = 0)'
            )
        elif cursor is not None:
            # Ties on a timestamp cursor are broken by rowid, so none is skipped.
            # NULL sorts first and equals nothing, so it needs its own test.
            value, rowid = decode_cursor(cursor)
            column = f'"{s.cursor_column}"'
            if value is None:
                where.append(f"({column} IS NOT NULL OR rowid > ?)")
                params += [rowid]
            else:
                where.append(f"({column} > ? OR ({column} = ? AND rowid > ?))")
                params += [value, value, rowid]
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f' ORDER BY "{s.cursor_column}", rowid LIMIT {s.batch_size}'
        return sql, params

    def _to_event(self, row: sqlite3.Row) -> Event | Reject:
        data = {field: row[f"f_{field}"] for field in self.settings.columns}
        item = f"rowid {row['_rowid']}"
        size = sum(len(v) for v in data.values() if isinstance(v, str | bytes))
        if size > MAX_ROW_BYTES:
            detail = f"{size} bytes of text > {MAX_ROW_BYTES}"
            return Reject(item=item, reason="too_large", detail=detail)
        try:
            return event_from_mapping(self.name, data)
        except InvalidEvent as exc:
            payload = json.dumps(data, default=repr)
            return Reject(item=item, reason="invalid", detail=str(exc), payload=payload)

    async def acknowledge(self, polled: Polled) -> None:
        if self.settings.processed_column is None or not polled.handles:
            return
        await asyncio.to_thread(self._mark_processed, polled.handles)

    async def set_aside(self, polled: Polled) -> None:
        # A rejected row is flagged like the others (its reason is in the ledger's
        # quarantine), or left behind the cursor; the table is never edited otherwise.
        for reject in polled.rejects:
            log.warning(
                "row rejected",
                extra={
                    "source": self.name,
                    "row": reject.item,
                    "detail": reject.detail,
                },
            )

    def _mark_processed(self, rowids: list[int]) -> None:
        column = self.settings.processed_column
        with self._connect() as db:
            db.executemany(
                f'UPDATE "{self.settings.table}" SET "{column}" = 1 WHERE rowid = ?',
                [(rowid,) for rowid in rowids],
            )


def encode_cursor(value: Any, rowid: int) -> str:
    """The position after a row, as JSON; BLOB cursor values are kept as hex."""
    if isinstance(value, bytes):
        value = {"blob": value.hex()}
    return json.dumps([value, rowid])


def decode_cursor(cursor: str) -> tuple[Any, int]:
    value, rowid = json.loads(cursor)
    if isinstance(value, dict):
        value = bytes.fromhex(value["blob"])
    return value, int(rowid)
