"""Sources: where events come from. Each type lives in its own module."""

from __future__ import annotations

from ticketbridge.config.model import SourceSettings, SpoolSource, SqlSource
from ticketbridge.sources.base import Polled, Reject, Source, SourceError
from ticketbridge.sources.spool import SpoolDirectory, spool_directory_problem
from ticketbridge.sources.sql import SqlTable


def build_source(name: str, settings: SourceSettings) -> Source:
    if isinstance(settings, SpoolSource):
        return SpoolDirectory(name, settings)
    if isinstance(settings, SqlSource):
        return SqlTable(name, settings)
    raise ValueError(f"sources.{name}: unknown type")


def source_problems(name: str, settings: SourceSettings) -> list[str]:
    """What `check-config` finds wrong on disk: `sources.<name>.path: ...`."""
    if isinstance(settings, SpoolSource):
        problem = spool_directory_problem(settings.path)
        return [f"sources.{name}.path: {problem}"] if problem else []
    return []


__all__ = [
    "Polled",
    "Reject",
    "Source",
    "SourceError",
    "build_source",
    "source_problems",
]
