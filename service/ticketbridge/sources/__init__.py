"""Sources: where events come from. Each type lives in its own module."""

from __future__ import annotations

from ticketbridge.config.model import SourceSettings, SpoolSource, SqlSource
from ticketbridge.sources.base import Polled, Reject, Source
from ticketbridge.sources.spool import SpoolDirectory
from ticketbridge.sources.sql import SqlTable


def build_source(name: str, settings: SourceSettings) -> Source:
    if isinstance(settings, SpoolSource):
        return SpoolDirectory(name, settings)
    if isinstance(settings, SqlSource):
        return SqlTable(name, settings)
    raise ValueError(f"sources.{name}: unknown type")


__all__ = ["Polled", "Reject", "Source", "build_source"]
