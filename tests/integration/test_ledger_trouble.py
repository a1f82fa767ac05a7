"""Ledger trouble with a real daemon: disk full, read-only, locked.

In each, the daemon holds events at their source (the spool file stays),
reports it (`ticketbridge_ledger_writable` 0, /readyz not ready, an error
line), keeps running, and delivers everything once the trouble clears.

How each is made, as root-proof as the test machine allows:
- disk full: the ledger lives on a small tmpfs that a filler file fills;
  SQLite then gets ENOSPC (SQLITE_FULL). Unmounted when the test ends.
- read-only: the ledger and its WAL are made immutable (`chattr +i`), which
  refuses writes even to root and even through open descriptors; chmod would
  not (root ignores it) and a read-only remount is refused while the daemon
  holds the files open.
- locked: another process's connection holds `BEGIN EXCLUSIVE`.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Daemon, Sandbox, http_json, wait_until

WRITABLE = "ticketbridge_ledger_writable"


def not_ready_because_of_the_ledger(daemon: Daemon) -> bool:
    try:
        http_json(daemon.url("/readyz"))
    except urllib.error.HTTPError as exc:
        return "ledger not writable" in exc.read().decode()
    return False


def assert_held_then_delivered(daemon: Daemon, clear: object) -> None:
    daemon.notify("p1")
    wait_until(lambda: daemon.metric(WRITABLE) == 0, timeout=20, what="writable 0")

    assert not_ready_because_of_the_ledger(daemon)
    assert "ledger not writable" in daemon.log()
    assert list(daemon.spool.glob("*p1.json")), "the spool file must stay"
    assert daemon.process is not None and daemon.process.poll() is None

    clear()  # type: ignore[operator]
    wait_until(lambda: daemon.metric(WRITABLE) == 1, timeout=20, what="writable 1")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")
    assert daemon.ready()
    assert "ledger writable again" in daemon.log()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "ledgerfs"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
    )
    if made.returncode != 0:
        # The disk-full case is required, not optional: fail loudly (needs root).
        pytest.fail(f"cannot mount a tmpfs: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_disk_full_holds_events_until_space_returns(
    tmp_path: Path, sandbox: Sandbox, small_disk: Path
) -> None:
    daemon = Daemon(tmp_path / "d", sandbox.url)
    daemon.ledger = small_disk / "ledger.sqlite3"
    daemon.config["ledger"] = {"path": str(daemon.ledger)}
    daemon.write_config(daemon.config)
    daemon.start()
    try:
        filler = fill(small_disk)
        assert_held_then_delivered(daemon, filler.unlink)
    finally:
        daemon.stop()


def chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True)


def test_read_only_ledger_holds_events_until_writable(daemon: Daemon) -> None:
    if shutil.which("chattr") is None:
        pytest.fail("chattr is needed (Debian's e2fsprogs)")
    daemon.start()
    files = [daemon.ledger, Path(f"{daemon.ledger}-wal")]
    try:
        chattr("+i", *files)
    except subprocess.CalledProcessError:
        pytest.fail("this file system has no immutable flag: run the tests on ext4")
    try:
        assert_held_then_delivered(daemon, lambda: chattr("-i", *files))
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=False)


def test_locked_ledger_holds_events_until_released(daemon: Daemon) -> None:
    daemon.start()
    other = sqlite3.connect(daemon.ledger, isolation_level=None, timeout=10)
    other.execute("BEGIN EXCLUSIVE")
    try:
        assert_held_then_delivered(daemon, lambda: other.execute("ROLLBACK"))
    finally:
        other.close()
    assert os.path.exists(daemon.ledger)
