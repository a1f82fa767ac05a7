"""`ticketbridge notify`: one monitoring notification becomes one spool file.

Nagios (or Icinga 1) runs this as its notification command, with
`enable_environment_macros=1` so the macros arrive as `NAGIOS_*` variables.
Command line options override the environment, which also makes the command
usable by hand. The event is validated exactly as the spool source will read
it, so a bad notification fails here, loudly, and never reaches the spool.

The file appears atomically: it is written under a dot-name (which the spool
source skips), flushed to disk, then renamed. The event id is derived from the
notification itself, so running the same notification twice gives two files
with one id, which the ledger stores once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ticketbridge.events import (
    UNEXPANDED_MACRO,
    InvalidEvent,
    event_from_mapping,
    parse_kind,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2

# Icinga 1 exports the same macros under its own prefix.
ENV_PREFIXES = ("NAGIOS_", "ICINGA_")

# Notification types that are not a state change become comments; flapping
# and downtime keep their own kind so that a route can choose to ignore them.
STATE_KINDS = {
    "PROBLEM": "problem",
    "RECOVERY": "recovery",
    "ACKNOWLEDGEMENT": "acknowledgement",
    "CUSTOM": "update",
}
PREFIX_KINDS = (("FLAPPING", "flapping"), ("DOWNTIME", "downtime"))

FILE_MODE = 0o640
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class NotifyError(Exception):
    """A notification that cannot become an event file; the message says why."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_notify_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `notify` options; every one overrides its Nagios macro."""
    parser.add_argument(
        "--spool", required=True, type=Path, help="existing spool directory"
    )
    parser.add_argument(
        "--kind",
        help="problem, recovery, acknowledgement or update "
        "(default: from NAGIOS_NOTIFICATIONTYPE)",
    )
    parser.add_argument("--host", help="host name (NAGIOS_HOSTNAME)")
    parser.add_argument("--check", help="service name (NAGIOS_SERVICEDESC)")
    parser.add_argument("--severity", help="state (NAGIOS_SERVICESTATE/HOSTSTATE)")
    parser.add_argument("--summary", help="one-line output (NAGIOS_SERVICEOUTPUT)")
    parser.add_argument("--details", help="long output (NAGIOS_LONGSERVICEOUTPUT)")
    parser.add_argument(
        "--problem-id", help="incident id shared by a problem and its recovery"
    )
    parser.add_argument(
        "--id", help="event id (default: derived from the notification, stable)"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse `notify` options alone and run; for `python -m` without the CLI."""
    parser = argparse.ArgumentParser(
        prog="ticketbridge notify",
        description="Write one event file from Nagios/Icinga notification macros.",
    )
    add_notify_arguments(parser)
    return run_notify(parser.parse_args(argv))


def run_notify(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> int:
    """Build, validate and spool one event; returns the process exit code.

    2 means the notification itself is unusable (nothing was written),
    1 that writing failed.
    """
    env = os.environ if environ is None else environ
    try:
        data = build_event_data(args, env)
        check_event(data)
        path = write_event_file(Path(args.spool), data)
    except NotifyError as exc:
        # Plain stderr, not the log: this must reach whoever ran the command
        # even when no logging is set up.
        print(f"ticketbridge notify: {exc}", file=sys.stderr)
        return exc.exit_code

    log.info(
        "event spooled",
        extra={"event": data["id"], "kind": data["kind"], "path": str(path)},
    )
    return EXIT_OK


def build_event_data(
    args: argparse.Namespace, env: Mapping[str, str]
) -> dict[str, Any]:
    """The event record: Nagios macros first, then the options over them."""
    data = _macro_fields(_Macros(env))

    for name in ("host", "check", "severity", "summary", "details", "problem_id"):
        value = getattr(args, name, None)
        if value is not None:
            data[name] = _option_text(name, value)
    if args.kind is not None:
        data["kind"] = _option_kind(args.kind)
    data["object_type"] = "service" if data.get("check") else "host"

    if not data.get("kind"):
        raise NotifyError("kind: missing (set NAGIOS_NOTIFICATIONTYPE or pass --kind)")
    if not data.get("host"):
        raise NotifyError("host: missing (set NAGIOS_HOSTNAME or pass --host)")

    # Stamped now, not when the spool is read, so the id and time are fixed.
    if not data.get("occurred_at"):
        data["occurred_at"] = datetime.now(UTC).isoformat()
    data["id"] = _option_text("id", args.id) if args.id else event_id(data)
    return {key: value for key, value in data.items() if value not in (None, "")}


def check_event(data: Mapping[str, Any]) -> None:
    """Validate as the spool source will, so a bad event is refused now."""
    try:
        event_from_mapping("notify", data)
    except InvalidEvent as exc:
        raise NotifyError(f"invalid event: {exc}") from exc


def event_id(data: Mapping[str, Any]) -> str:
    """Same notification, same id: a retried notify is stored only once.

    Nagios runs the command once per contact (BC-06), with one notification
    id for all of them but a $TIMET$ read per run, which can cross a second:
    so with a notification id the time is left out, and the contact never
    counts. The last state change tells episodes apart should the ids start
    over (Nagios without state retention). Without a notification id (a run
    by hand) the current time stands in, so such runs are all distinct.
    """
    parts = [
        data.get("object_type", ""),
        data["host"],
        data.get("check", ""),
        data.get("notification_type") or data["kind"],
        data.get("problem_id", ""),
    ]
    if data.get("notification_id"):
        parts += [
            data["notification_id"],
            data.get("notification_number", ""),
            data.get("last_state_change", ""),
        ]
    else:
        parts += ["", data.get("occurred_at", "")]
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8"))
    return f"nagios-{digest.hexdigest()[:24]}"


def write_event_file(spool: Path, data: Mapping[str, Any]) -> Path:
    """Write one JSON file into `spool` atomically and durably; return its path."""
    if not spool.is_dir():
        raise NotifyError(f"spool directory {spool} does not exist")

    payload = json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")
    final = spool / _file_name(str(data["id"]))
    temporary = spool / f".{final.name}.{secrets.token_hex(4)}.tmp"

    try:
        _write_synced(temporary, payload + b"\n")
        os.rename(temporary, final)
        _sync_directory(spool)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise NotifyError(f"cannot write into {spool}: {exc}", EXIT_FAILED) from exc
    return final


class _Macros:
    """Reads notification macros, refusing any left unexpanded by the caller."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, name: str) -> str:
        for prefix in ENV_PREFIXES:
            variable = prefix + name
            value = self.env.get(variable)
            if value is None or value == "":
                continue
            if UNEXPANDED_MACRO.match(value.strip()):
                raise NotifyError(f"{variable} holds the unexpanded macro {value!r}")
            return value
        return ""


def _macro_fields(macros: _Macros) -> dict[str, Any]:
    # Host and service macros differ only in their infix; a notification without
    # SERVICEDESC is about the host itself.
    service = macros.get("SERVICEDESC")
    obj = "SERVICE" if service else "HOST"
    notification_type = macros.get("NOTIFICATIONTYPE").upper()
    last_problem_id = macros.get(f"LAST{obj}PROBLEMID")
    return {
        "kind": _kind(notification_type),
        "notification_type": notification_type,
        "host": macros.get("HOSTNAME"),
        "check": service,
        "severity": macros.get(f"{obj}STATE"),
        "summary": macros.get(f"{obj}OUTPUT"),
        "details": _details(macros, macros.get(f"LONG{obj}OUTPUT")),
        "problem_id": _problem_id(
            notification_type, macros.get(f"{obj}PROBLEMID"), last_problem_id
        ),
        "last_problem_id": last_problem_id,
        "notification_id": macros.get(f"{obj}NOTIFICATIONID"),
        "notification_number": macros.get(f"{obj}NOTIFICATIONNUMBER"),
        "last_state_change": macros.get(f"LAST{obj}STATECHANGE"),
        "state_type": macros.get(f"{obj}STATETYPE"),
        "attempt": macros.get(f"{obj}ATTEMPT"),
        "occurred_at": _occurred_at(macros),
        "author": macros.get("NOTIFICATIONAUTHOR"),
        "comment": macros.get("NOTIFICATIONCOMMENT"),
    }


def _kind(notification_type: str) -> str:
    if not notification_type:
        return ""
    if notification_type in STATE_KINDS:
        return STATE_KINDS[notification_type]
    for prefix, kind in PREFIX_KINDS:
        if notification_type.startswith(prefix):
            return kind
    raise NotifyError(
        f"NAGIOS_NOTIFICATIONTYPE: unknown notification type {notification_type!r}"
    )


def _problem_id(notification_type: str, current: str, last: str) -> str:
    # Nagios zeroes the current problem id before a RECOVERY is sent; the id of
    # the problem that just ended is then in the LAST... macro.
    if current and current != "0":
        return current
    if notification_type == "RECOVERY" and last != "0":
        return last
    return ""


def _occurred_at(macros: _Macros) -> str:
    timet = macros.get("TIMET")
    if not timet:
        return ""
    try:
        return datetime.fromtimestamp(int(timet), tz=UTC).isoformat()
    except (ValueError, OverflowError, OSError) as exc:
        raise NotifyError(f"NAGIOS_TIMET: {timet[:40]!r} is not Unix seconds") from exc


def _details(macros: _Macros, long_output: str) -> str:
    # An acknowledgement's text is its comment: put it where a ticket shows it.
    author = macros.get("NOTIFICATIONAUTHOR")
    comment = macros.get("NOTIFICATIONCOMMENT")
    if not (author or comment):
        return long_output
    note = f"{author or 'unknown'}: {comment}" if comment else f"by {author}"
    return f"{long_output}\n{note}" if long_output else note


def _option_text(name: str, value: str) -> str:
    if UNEXPANDED_MACRO.match(value.strip()):
        option = "--" + name.replace("_", "-")
        raise NotifyError(f"{option} holds the unexpanded macro {value!r}")
    return value


def _option_kind(value: str) -> str:
    try:
        return parse_kind(_option_text("kind", value)).value
    except InvalidEvent as exc:
        raise NotifyError(f"--{exc}") from exc


def _file_name(event_id: str) -> str:
    # Names sort in the order files were written, which the spool source keeps:
    # a recovery written after its problem is read after it, even within a second.
    now = time.time_ns()
    stamp = datetime.fromtimestamp(now // 1_000_000_000, tz=UTC).strftime(
        "%Y%m%dT%H%M%S"
    )
    safe_id = SAFE_NAME.sub("_", event_id)[:80]
    return f"{stamp}.{now % 1_000_000_000:09d}Z-{safe_id}.json"


def _write_synced(path: Path, payload: bytes) -> None:
    # O_EXCL: never write through a name someone else placed. The umask still
    # applies to FILE_MODE, so a stricter umask makes the file stricter.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
