"""Bad rows of a legacy SQL table: hand-written and generated with Hypothesis.

The table's columns have no declared type, so every value keeps the storage
class it was written with (NULL, INTEGER, REAL, TEXT, BLOB), as in the
loosely typed legacy databases this source reads. The cursor column `ts` is as
mixed as the rest: NULLs, numbers, text and BLOBs must not stall the cursor.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.badinput.generated import collect
from tests.badinput.hostile import HOSTILE_TEXTS
from tests.badinput.spool_corpus import ANY, DELIVERED, rejected

COLUMNS = ("ts", "id", "kind", "host", "svc", "state", "output")
MAPPING = {
    "id": "id",
    "kind": "kind",
    "host": "host",
    "check": "svc",
    "severity": "state",
    "summary": "output",
}


@dataclass(frozen=True)
class SqlCase:
    category: str
    row: tuple[Any, ...]  # in COLUMNS order
    expect: str


def _row(ts: Any, id_: Any, **fields: Any) -> tuple[Any, ...]:
    values = {
        "kind": "PROBLEM",
        "host": "db01",
        "svc": "disk",
        "state": "CRITICAL",
        "output": "disk full",
        **fields,
    }
    return (
        ts,
        id_,
        values["kind"],
        values["host"],
        values["svc"],
        values["state"],
        values["output"],
    )


class _Text(str):
    """A TEXT value written as raw bytes that are not UTF-8."""


def sql_cases() -> list[SqlCase]:
    cases: list[SqlCase] = []
    n = 0

    def add(category: str, expect: str, ts: Any = None, **fields: Any) -> None:
        nonlocal n
        n += 1
        id_ = fields.pop("id", f"row-{n}")
        cases.append(
            SqlCase(category, _row(ts if ts is not None else n, id_, **fields), expect)
        )

    for column in ("id", "kind", "host"):
        add("NULL in a required column", rejected("invalid"), **{column: None})
    for column in ("svc", "state", "output"):
        add("NULL in an optional column", DELIVERED, **{column: None})

    blob = b"\x00\xffbinary"
    for column in ("id", "kind", "host", "svc", "state", "output"):
        add("BLOB value", rejected("invalid"), **{column: blob})

    for value in (1.5, 1e300, -0.0, 3, -7, 2**62):
        add("number as id", DELIVERED, id=value)
    for value in (1, 2.5, 0):
        add("number as kind", rejected("invalid"), kind=value)
    add("number as host", DELIVERED, host=42)

    add("huge text", DELIVERED, output="x" * 200_000)
    add("huge text", rejected("too_large"), output="x" * 2_000_000)
    add("huge text", rejected("too_large"), host="h" * 1_500_000)

    add("not UTF-8 in TEXT", DELIVERED, output=_Text("caf\xe9"))
    add("not UTF-8 in TEXT", ANY, host=_Text("\xff\xfe"))

    for macro in ("$HOSTNAME$", "{HOST.NAME}"):
        add("unexpanded macro", rejected("invalid"), host=macro)
        add("unexpanded macro", DELIVERED, output=macro)

    for column in ("host", "svc", "state", "output"):
        for text in HOSTILE_TEXTS:
            add("hostile text", ANY, **{column: text})

    # Cursor values of every storage class, including NULL and BLOB.
    for ts in (None, None, b"\x01", b"\x02", "2024-05-01", "later", 1e10, -5):
        cases.append(
            SqlCase("odd cursor value", _row(ts, f"cur-{len(cases)}"), DELIVERED)
        )

    cell = st.one_of(
        st.none(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=40),
        st.binary(max_size=20),
    )
    rows = collect(st.tuples(*[cell for _ in COLUMNS]), 80)
    cases += [SqlCase("generated: random cells", row, ANY) for row in rows]
    return cases


def write_table(path: Path, cases: list[SqlCase]) -> None:
    """The legacy database holding one row per case, in case order."""
    db = sqlite3.connect(path)
    try:
        db.execute(f"CREATE TABLE alerts ({', '.join(COLUMNS)})")
        for case in cases:
            values = []
            marks = []
            for value in case.row:
                if isinstance(value, _Text):
                    # Bytes stored as TEXT, as a legacy writer may have done.
                    values.append(value.encode("latin-1"))
                    marks.append("CAST(? AS TEXT)")
                else:
                    values.append(value)
                    marks.append("?")
            db.execute(f"INSERT INTO alerts VALUES ({', '.join(marks)})", values)
        db.commit()
    finally:
        db.close()
