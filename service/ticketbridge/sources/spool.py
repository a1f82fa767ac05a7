"""Spool source: a directory of JSON event files, one event per file.

Writers (for example `ticketbridge notify`) write to a dot-name and rename, so
a name without a leading dot is a complete file. After the ledger commit a file
moves to processed/; a bad one moves to rejected/ beside a .reason file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from ticketbridge.config.model import SpoolSource
from ticketbridge.events import Event, InvalidEvent, event_from_mapping
from ticketbridge.sources.base import Polled, Reject

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000


class SpoolDirectory:
    def __init__(self, name: str, settings: SpoolSource) -> None:
        self.name = name
        self.settings = settings
        self.batch_size = settings.batch_size
        self.path = settings.path
        self.processed = self.path / "processed"
        self.rejected = self.path / "rejected"

    async def poll(self, cursor: str | None) -> Polled:
        return await asyncio.to_thread(self._poll)

    def _poll(self) -> Polled:
        self.processed.mkdir(parents=True, exist_ok=True)
        self.rejected.mkdir(parents=True, exist_ok=True)

        polled = Polled()
        for path in self._candidates():
            outcome = self._read(path)
            if isinstance(outcome, Reject):
                polled.rejects.append(outcome)
            else:
                polled.events.append(outcome)
            polled.handles.append(path)
        return polled

    def _candidates(self) -> list[Path]:
        names = sorted(
            entry.name
            for entry in os.scandir(self.path)
            if not entry.name.startswith(".") and entry.name.endswith(".json")
        )
        return [self.path / name for name in names[: self.settings.batch_size]]

    def _read(self, path: Path) -> Event | Reject:
        return read_event_file(self.name, path)

    async def acknowledge(self, polled: Polled) -> None:
        rejected = {reject.item for reject in polled.rejects}
        done = [path for path in polled.handles if path.name not in rejected]
        await asyncio.to_thread(self._move_all, done, self.processed)

    async def set_aside(self, polled: Polled) -> None:
        await asyncio.to_thread(self._set_aside, polled.rejects)

    def _set_aside(self, rejects: list[Reject]) -> None:
        for reject in rejects:
            reason_file = self.rejected / f"{reject.item}.reason"
            reason_file.write_text(
                f"{reject.reason}: {reject.detail}\n", encoding="utf-8"
            )
            self._move_all([self.path / reject.item], self.rejected)
            log.warning(
                "spool file rejected",
                extra={
                    "source": self.name,
                    "file": reject.item,
                    "reason": reject.reason,
                    "detail": reject.detail,
                },
            )

    def _move_all(self, paths: list[Path], target: Path) -> None:
        for path in paths:
            try:
                os.replace(path, target / path.name)
            except FileNotFoundError:
                # Already moved by an earlier run that stopped before finishing.
                continue
        if paths:
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def read_event_file(source: str, path: Path) -> Event | Reject:
    """One spool file as an event, or the reason it is rejected.

    `ticketbridge route` validates a file with this too, so its errors are
    the spool's own.
    """
    try:
        if path.is_symlink():
            return _reject(path, "symlink", "symlinks are not followed")
        if not path.is_file():
            return _reject(path, "not_a_file", "not a regular file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return _reject(path, "too_large", f"{size} bytes > {MAX_FILE_BYTES}")
        raw = path.read_bytes()
    except OSError as exc:
        return _reject(path, "unreadable", f"cannot read: {exc.strerror}")

    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return _reject(path, "encoding", f"not UTF-8 at byte {exc.start}")
    except json.JSONDecodeError as exc:
        detail = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        return _reject(path, "json", detail)
    except RecursionError:
        return _reject(path, "json", "JSON nested too deeply")

    try:
        return event_from_mapping(source, data)
    except InvalidEvent as exc:
        return _reject(path, "invalid", str(exc))


def _reject(path: Path, reason: str, detail: str) -> Reject:
    return Reject(item=path.name, reason=reason, detail=detail)
