"""Spool source: a directory of JSON event files, one event per file.

Writers (for example `ticketbridge notify`) write to a dot-name and rename, so
a name without a leading dot is a complete file. Only `*.json` names are read;
dot-files and other names (`x.tmp`, `x.json.part`) are a writer's business.
A foreign writer may still write a `.json` name in place: a file that does not
parse yet and changed within `settle_seconds` is left for a later poll rather
than rejected half-written.

The directory itself must exist: the installer or operator creates it. A
missing one is a source error, never re-created, since a new empty directory
would hide that the writers put their files somewhere else.

After the ledger commit a file moves to processed/; a bad one moves to
rejected/ beside a `.reason` file. Nothing but regular files is ever opened
for reading: symlinks, FIFOs, sockets, devices and directories are set aside
unread, so a FIFO cannot block the poll and a link cannot leak a file from
elsewhere.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from ticketbridge.config.model import SpoolSource
from ticketbridge.events import Event, InvalidEvent, event_from_mapping
from ticketbridge.sources.base import Polled, Reject, SourceError

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000
# Deeper than any event needs; also keeps the ledger's JSON encoder, which
# recurses, far from Python's recursion limit.
MAX_DEPTH = 32

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class _NotYet(Exception):
    """A file that looks half-written: leave it for a later poll."""


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
        problem = spool_directory_problem(self.path)
        if problem:
            raise SourceError(f"sources.{self.name}.path: {problem}")
        self.processed.mkdir(exist_ok=True)
        self.rejected.mkdir(exist_ok=True)

        polled = Polled()
        for path in self._candidates():
            try:
                outcome = self._read(path)
            except _NotYet:
                continue
            if isinstance(outcome, Reject):
                polled.rejects.append(outcome)
            else:
                polled.events.append(outcome)
                polled.handles.append(path)
            if len(polled.events) + len(polled.rejects) >= self.batch_size:
                break
        return polled

    def _candidates(self) -> list[Path]:
        # Names sort in the order notify wrote them; see notify._file_name.
        names = sorted(
            entry.name
            for entry in os.scandir(self.path)
            if not entry.name.startswith(".") and entry.name.endswith(".json")
        )
        return [self.path / name for name in names]

    def _read(self, path: Path) -> Event | Reject:
        try:
            raw, modified = read_regular_file(path)
        except _Refused as refused:
            return _reject(path, refused.reason, refused.detail)

        try:
            data = _parse(raw)
        except _Refused as refused:
            if time.time() - modified < self.settings.settle_seconds:
                log.debug("spool file not complete yet", extra={"file": path.name})
                raise _NotYet from None
            return _reject(path, refused.reason, refused.detail)

        return _event(self.name, path, data)

    async def acknowledge(self, polled: Polled) -> None:
        await asyncio.to_thread(self._move_all, polled.handles, self.processed)

    async def set_aside(self, polled: Polled) -> None:
        await asyncio.to_thread(self._set_aside, polled.rejects)

    def _set_aside(self, rejects: list[Reject]) -> None:
        for reject in rejects:
            path: Path = reject.handle
            try:
                target = _free_name(self.rejected, path.name)
                os.replace(path, target)
                reason_file = target.with_name(target.name + ".reason")
                reason_file.write_text(
                    f"{reject.reason}: {reject.detail}\n", encoding="utf-8"
                )
            except OSError as exc:
                # It stays in the spool and is rejected again next poll; the
                # quarantine row in the ledger already holds the reason.
                log.error(
                    "cannot move rejected spool file: %s",
                    exc.strerror,
                    extra={"source": self.name, "file": reject.item},
                )
                continue
            log.warning(
                "spool file rejected",
                extra={
                    "source": self.name,
                    "file": reject.item,
                    "reason": reject.reason,
                    "detail": reject.detail,
                },
            )
        if rejects:
            _sync_directory(self.rejected)

    def _move_all(self, paths: list[Path], target: Path) -> None:
        for path in paths:
            try:
                os.replace(path, _free_name(target, path.name))
            except FileNotFoundError:
                # Already moved by an earlier run that stopped before finishing.
                continue
        if paths:
            _sync_directory(target)


def spool_directory_problem(path: Path) -> str | None:
    """What is wrong with `path` as a spool directory, or None if nothing is."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"{path} does not exist; create the spool directory or fix the path"
    except OSError as exc:
        return f"cannot stat {path}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    return None


def read_event_file(source: str, path: Path) -> Event | Reject:
    """One spool file as an event, or the reason it is rejected.

    `ticketbridge route` validates a file with this too, so its errors are
    the spool's own (without the wait for a file still being written).
    """
    try:
        data = _parse(read_regular_file(path)[0])
    except _Refused as refused:
        return _reject(path, refused.reason, refused.detail)
    return _event(source, path, data)


def _event(source: str, path: Path, data: Any) -> Event | Reject:
    try:
        return event_from_mapping(source, data)
    except InvalidEvent as exc:
        return _reject(path, "invalid", str(exc))


def _reject(path: Path, reason: str, detail: str) -> Reject:
    return Reject(
        item=display_name(path.name), reason=reason, detail=detail, handle=path
    )


def read_regular_file(path: Path) -> tuple[bytes, float]:
    """The bytes of a regular file, refused by kind and size before reading."""
    try:
        link = os.lstat(path)
    except OSError as exc:
        raise _Refused("unreadable", f"cannot stat: {exc.strerror}") from None
    if stat.S_ISLNK(link.st_mode):
        raise _Refused("symlink", "symlinks are not followed")
    if not stat.S_ISREG(link.st_mode):
        raise _Refused("not_a_file", f"not a regular file ({_kind(link)})")

    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link since lstat
            raise _Refused("symlink", "symlinks are not followed") from None
        raise _Refused("unreadable", f"cannot open: {exc.strerror}") from None
    try:
        # fstat, not the lstat above: the name may have been swapped since.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("not_a_file", f"not a regular file ({_kind(info)})")
        if info.st_size > MAX_FILE_BYTES:
            raise _Refused("too_large", f"{info.st_size} bytes > {MAX_FILE_BYTES}")
        raw = _read_at_most(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _Refused("unreadable", f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:  # grew while we read it
        raise _Refused("too_large", f"more than {MAX_FILE_BYTES} bytes")
    return raw, info.st_mtime


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        raise _Refused("empty", "the file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused("encoding", f"not UTF-8 at byte {exc.start}") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        detail = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise _Refused("json", detail) from None
    except RecursionError:
        raise _Refused("too_deep", "JSON nested too deeply") from None
    except ValueError as exc:  # NaN, or an integer of thousands of digits
        raise _Refused("json", str(exc)[:200]) from None
    if _depth(data) > MAX_DEPTH:
        raise _Refused("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(data: Any) -> int:
    """Nesting depth without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            stack.extend((item, level + 1) for item in value)
    return deepest


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _kind(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "unknown type"


def _free_name(directory: Path, name: str) -> Path:
    """`directory/name`, or `name.1`, `name.2`... if that is taken."""
    target = directory / name
    counter = 0
    while os.path.lexists(target):
        counter += 1
        target = directory / f"{name}.{counter}"
    return target


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def display_name(name: str) -> str:
    """A file name as printable UTF-8 text (names are bytes on Linux)."""
    text = os.fsencode(name).decode("utf-8", errors="replace")
    return "".join(ch if ch.isprintable() else "?" for ch in text)
