"""Output for the operator commands: aligned tables for people, JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; None shows as "-"."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max([len(header), *(len(row[i]) for row in cells)])
        for i, header in enumerate(headers)
    ]
    lines = [_line(headers, widths)]
    lines += [_line(row, widths) for row in cells]
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """`name: value` lines with the values aligned."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(
        f"{name + ':':<{width + 1}} {_cell(value)}" for name, value in pairs
    )


def as_json(data: Any) -> str:
    """Stable JSON: sorted keys, two-space indent."""
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def timestamp(seconds: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC, to the second; None stays None."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def age(seconds: float | None) -> str | None:
    """A duration as people read it: 42s, 3m05s, 2h10m, 4d03h."""
    if seconds is None:
        return None
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def shorten(text: str | None, limit: int = 60) -> str | None:
    """One line of at most `limit` characters, for a table cell."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def count(number: int, noun: str) -> str:
    """`1 delivery`, `3 deliveries`: nouns in -y take -ies, others -s."""
    if number == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{number} {plural}"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    padded = [value.ljust(width) for value, width in zip(values, widths, strict=True)]
    return "  ".join(padded).rstrip()
