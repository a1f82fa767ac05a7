"""The sd_notify client speaks the datagram protocol to a real socket."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ticketbridge import systemd_notify


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's notification socket."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def test_lines_arrive_as_one_datagram(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)

    assert systemd_notify.notify("READY=1", "STATUS=polling") is True

    assert sock.recv(4096) == b"READY=1\nSTATUS=polling"


def test_abstract_socket_name_starts_with_nul(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"ticketbridge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)

        assert systemd_notify.notify("WATCHDOG=1") is True

        assert sock.recv(4096) == b"WATCHDOG=1"


def test_nothing_happens_without_notify_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    assert systemd_notify.notify("READY=1") is False


def test_missing_socket_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd going away must not take the daemon with it."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))

    assert systemd_notify.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}

    assert systemd_notify.watchdog_interval(env) == 30.0


def test_watchdog_without_pid_is_ours() -> None:
    assert systemd_notify.watchdog_interval({"WATCHDOG_USEC": "2000000"}) == 1.0


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    env = {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}

    assert systemd_notify.watchdog_interval(env) is None


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
def test_watchdog_unarmed_or_garbled_is_none(usec: str) -> None:
    assert systemd_notify.watchdog_interval({"WATCHDOG_USEC": usec}) is None


def test_watchdog_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    assert systemd_notify.watchdog_interval() == 2.0
