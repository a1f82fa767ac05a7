"""A small sd_notify client: readiness, status and watchdog pings for systemd.

The protocol is one datagram of `KEY=VALUE` lines to the socket named in
$NOTIFY_SOCKET, so libsystemd is not needed. Outside systemd the variable is
unset and every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Watchdog pings repeat every few seconds: warn once per distinct error.
_last_error: str | None = None


def notify(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `lines` (e.g. "READY=1", "STATUS=polling") as one message.

    Returns True when a message was sent, False when there is no socket to send
    to or sending failed: systemd being away must never stop the daemon.
    """
    env = os.environ if environ is None else environ
    address = _socket_address(env.get("NOTIFY_SOCKET", ""))
    if address is None or not lines:
        return False

    payload = "\n".join(lines).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, address)
    except OSError as exc:
        _note_error(str(exc))
        return False
    _note_error(None)
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None if unarmed.

    WATCHDOG_PID, when set, names the process systemd expects pings from; a
    child that inherited the environment must not take it for itself.
    """
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None

    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


def _note_error(error: str | None) -> None:
    global _last_error
    if error is not None and error != _last_error:
        log.warning("systemd notification failed", extra={"error": error})
    _last_error = error


def _socket_address(value: str) -> str | bytes | None:
    # "@name" is a Linux abstract socket: its address starts with a NUL byte.
    # Other forms (vsock:...) are not used by a service manager on this host.
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    return None
