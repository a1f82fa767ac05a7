"""The daemon under a notification socket, as systemd runs the unit.

The test listens where systemd would (NOTIFY_SOCKET), arms the watchdog
(WATCHDOG_USEC) and reloads with the unit's own ExecReload line.
"""

from __future__ import annotations

import configparser
import shlex
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Daemon, Sandbox, wait_until

UNIT = Path(__file__).parents[2] / "systemd" / "ticketbridge.service"
WATCHDOG_SECONDS = 1.0  # pings every 0.5 s while healthy


class NotifyListener:
    """Collects every datagram sent to a NOTIFY_SOCKET, with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode().split("\n")))

    def lines(self) -> list[str]:
        return [line for _, lines in list(self.messages) for line in lines]

    def watchdogs_between(self, start: float, end: float) -> int:
        return sum(
            "WATCHDOG=1" in lines
            for at, lines in list(self.messages)
            if start <= at < end
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


def legacy_database(path: Path) -> None:
    """A legacy alert table in rollback-journal mode, as old systems keep them."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("CREATE TABLE alerts (id INTEGER PRIMARY KEY, kind TEXT, host TEXT)")
    db.commit()
    db.close()


@pytest.fixture
def daemon_under_systemd(
    tmp_path: Path, sandbox: Sandbox, listener: NotifyListener
) -> Iterator[Daemon]:
    database = tmp_path / "legacy.db"
    legacy_database(database)
    daemon = Daemon(tmp_path / "daemon", sandbox.url)
    daemon.config["sources"]["legacy"] = {
        "type": "sql",
        "database": str(database),
        "table": "alerts",
        "cursor_column": "id",
        "columns": {"id": "id", "kind": "kind", "host": "host"},
    }
    daemon.write_config(daemon.config)
    daemon.env.update(
        NOTIFY_SOCKET=str(listener.path),
        WATCHDOG_USEC=str(int(WATCHDOG_SECONDS * 1_000_000)),
        WATCHDOG_PID=None,
    )
    daemon.start()
    yield daemon
    daemon.stop()


def exec_reload(pid: int) -> None:
    """Run the unit's ExecReload= command line for the main process `pid`."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNIT)
    command = unit["Service"]["ExecReload"].replace("$MAINPID", str(pid))
    subprocess.run(shlex.split(command), check=True, timeout=10)


def test_ready_is_sent_once_the_daemon_serves(
    daemon_under_systemd: Daemon, listener: NotifyListener
) -> None:
    wait_until(lambda: "READY=1" in listener.lines(), what="READY=1")

    assert "STATUS=polling" in listener.lines()


def test_exec_reload_sends_reloading_then_ready(
    daemon_under_systemd: Daemon, listener: NotifyListener
) -> None:
    wait_until(lambda: "READY=1" in listener.lines(), what="READY=1")
    assert daemon_under_systemd.process is not None

    exec_reload(daemon_under_systemd.process.pid)
    wait_until(lambda: listener.lines().count("READY=1") == 2, what="second READY")

    lines = listener.lines()
    reloading = lines.index("RELOADING=1")
    assert (
        lines.index("READY=1") < reloading < len(lines) - lines[::-1].index("READY=1")
    )
    assert any(line.startswith("MONOTONIC_USEC=") for line in lines)


def test_watchdog_pings_at_half_the_watchdog_interval(
    daemon_under_systemd: Daemon, listener: NotifyListener
) -> None:
    wait_until(lambda: "READY=1" in listener.lines(), what="READY=1")
    start = time.monotonic()
    time.sleep(3)

    # Every 0.5 s: 6 in 3 s, give or take scheduling on a loaded machine.
    assert 4 <= listener.watchdogs_between(start, start + 3) <= 7


def test_watchdog_stops_while_the_poll_loop_is_stuck_and_resumes_after(
    daemon_under_systemd: Daemon, listener: NotifyListener
) -> None:
    """A legacy database locked by another process blocks the poll for 5 s."""
    wait_until(lambda: "READY=1" in listener.lines(), what="READY=1")
    database = daemon_under_systemd.config["sources"]["legacy"]["database"]
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    time.sleep(1.5)  # the poll loop runs into the lock and waits

    stuck = time.monotonic()
    time.sleep(3)
    holder.execute("ROLLBACK")
    holder.close()
    time.sleep(6)  # the blocked poll gives up, the loop runs again
    resumed = time.monotonic()
    time.sleep(2)

    assert listener.watchdogs_between(stuck, stuck + 3) == 0
    assert listener.watchdogs_between(resumed, resumed + 2) >= 2
    assert daemon_under_systemd.process is not None
    assert daemon_under_systemd.process.poll() is None


def test_stop_sends_stopping(
    daemon_under_systemd: Daemon, listener: NotifyListener
) -> None:
    wait_until(lambda: "READY=1" in listener.lines(), what="READY=1")

    assert daemon_under_systemd.stop() == 0

    wait_until(lambda: "STOPPING=1" in listener.lines(), what="STOPPING=1")
