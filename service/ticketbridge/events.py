"""The event: one message from a monitoring source, validated and normalised."""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


class EventKind(enum.StrEnum):
    PROBLEM = "problem"
    RECOVERY = "recovery"
    ACKNOWLEDGEMENT = "acknowledgement"
    FLAPPING = "flapping"
    DOWNTIME = "downtime"
    UPDATE = "update"


class InvalidEvent(ValueError):
    """A source record that cannot become an event; the message names the field."""


# Nagios notification types that are not a state change become comments;
# flapping and downtime keep a kind of their own so a route can ignore them.
KIND_ALIASES = {
    "problem": EventKind.PROBLEM,
    "recovery": EventKind.RECOVERY,
    "ok": EventKind.RECOVERY,
    "resolved": EventKind.RECOVERY,
    "acknowledgement": EventKind.ACKNOWLEDGEMENT,
    "acknowledgment": EventKind.ACKNOWLEDGEMENT,
    "ack": EventKind.ACKNOWLEDGEMENT,
    "update": EventKind.UPDATE,
    "custom": EventKind.UPDATE,
    "flapping": EventKind.FLAPPING,
    "flappingstart": EventKind.FLAPPING,
    "flappingstop": EventKind.FLAPPING,
    "flappingdisabled": EventKind.FLAPPING,
    "downtime": EventKind.DOWNTIME,
    "downtimestart": EventKind.DOWNTIME,
    "downtimeend": EventKind.DOWNTIME,
    "downtimecancelled": EventKind.DOWNTIME,
}

# A whole value that is still a monitoring macro, e.g. "$HOSTNAME$" or "{HOST.NAME}".
UNEXPANDED_MACRO = re.compile(r"^(\$[A-Z0-9_]+\$|\{[A-Z0-9_.]+\})$")
# Such a macro anywhere in a value, e.g. "{EVENT.DATE} {EVENT.TIME}" (BC-20).
MACRO_TOKEN = re.compile(r"\$[A-Z][A-Z0-9_]*\$|\{[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+\}")

MAX_TEXT = 100_000


@dataclass(frozen=True, slots=True)
class Event:
    source: str
    source_event_id: str
    kind: EventKind
    severity: str
    host: str
    check: str
    summary: str
    details: str
    occurred_at: datetime
    raw: Mapping[str, Any] = field(default_factory=dict)
    problem_id: str = ""
    # Set from the ledger once routed; not part of the stored record.
    incident_key: str = ""
    # Optional fields that held something unusable and were replaced by a
    # default (an unexpanded macro, a time that does not parse). Not stored.
    fallbacks: tuple[str, ...] = ()

    def field_value(self, name: str) -> str:
        """The value of a named field as text, for routing and incident keys."""
        if name == "kind":
            return self.kind.value
        if name == "occurred_at":
            return self.occurred_at.isoformat()
        if name in EVENT_FIELDS:
            return str(getattr(self, name))
        value = self.raw.get(name, "")
        return "" if value is None else str(value)

    def to_record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_event_id": self.source_event_id,
            "kind": self.kind.value,
            "severity": self.severity,
            "host": self.host,
            "check": self.check,
            "summary": self.summary,
            "details": self.details,
            "occurred_at": self.occurred_at.isoformat(),
            "problem_id": self.problem_id,
            "raw": dict(self.raw),
        }


EVENT_FIELDS = (
    "source",
    "source_event_id",
    "kind",
    "severity",
    "host",
    "check",
    "summary",
    "details",
    "occurred_at",
    "problem_id",
)


def parse_kind(value: object) -> EventKind:
    if not isinstance(value, str):
        raise InvalidEvent(f"kind: expected text, got {type(value).__name__}")
    kind = KIND_ALIASES.get(value.strip().lower())
    if kind is None:
        known = ", ".join(sorted({k.value for k in EventKind}))
        raise InvalidEvent(
            f"kind: unknown kind {value[:40]!r} (expected one of {known})"
        )
    return kind


def parse_time(value: object) -> datetime:
    """Accept Unix seconds or ISO 8601; naive times are taken as UTC."""
    if isinstance(value, bool):
        raise InvalidEvent("occurred_at: expected a time, got a boolean")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidEvent(f"occurred_at: {value!r} is out of range") from exc
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return parse_time(float(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidEvent(f"occurred_at: {text[:40]!r} is not a time") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:  # year 1 or 9999 with an offset
            raise InvalidEvent(f"occurred_at: {text[:40]!r} is out of range") from exc
    raise InvalidEvent(f"occurred_at: expected a time, got {type(value).__name__}")


def clean_text(name: str, value: object, *, required: bool = False) -> str:
    """Text field: control characters other than newline and tab are removed."""
    if value is None:
        if required:
            raise InvalidEvent(f"{name}: missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidEvent(f"{name}: expected text, got {type(value).__name__}")
    text = str(value)
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable() or ch == " ")
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
    if required and not text.strip():
        raise InvalidEvent(f"{name}: empty")
    if required and UNEXPANDED_MACRO.match(text.strip()):
        raise InvalidEvent(f"{name}: unexpanded monitoring macro {text.strip()!r}")
    return text


def event_from_mapping(source: str, data: Mapping[str, Any]) -> Event:
    """Build an event from a source's record; raises InvalidEvent naming the field.

    The fields that identify the event and its incident (id, kind, host, check,
    problem_id) must be usable. A bad optional field never drops the event: an
    unexpanded macro in severity, summary or details becomes empty, and a time
    that is not one becomes the time of reading; `Event.fallbacks` names them.
    """
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"event: expected a JSON object, got {type(data).__name__}")

    source_event_id = clean_text("id", data.get("id"), required=True)
    kind = parse_kind(data.get("kind"))
    host = _identifying("host", clean_text("host", data.get("host"), required=True))
    check = _identifying("check", data.get("check"))
    problem_id = _identifying("problem_id", data.get("problem_id"))

    fallbacks: list[str] = []
    text = {}
    for name in ("severity", "summary", "details"):
        value = clean_text(name, data.get(name))
        if UNEXPANDED_MACRO.match(value.strip()):
            fallbacks.append(name)
            value = ""
        text[name] = value

    occurred = data.get("occurred_at")
    occurred_at = datetime.now(UTC)
    if occurred not in (None, ""):
        try:
            occurred_at = parse_time(occurred)
        except InvalidEvent:
            fallbacks.append("occurred_at")

    return Event(
        source=source,
        source_event_id=source_event_id,
        kind=kind,
        severity=text["severity"] or "unknown",
        host=host,
        check=check,
        summary=text["summary"],
        details=text["details"],
        occurred_at=occurred_at,
        raw=dict(data),
        problem_id=problem_id,
        fallbacks=tuple(fallbacks),
    )


def _identifying(name: str, value: object) -> str:
    # Optional, but part of what ties events into an incident: a macro here
    # would merge unrelated incidents, so it is refused rather than blanked.
    text = clean_text(name, value)
    token = MACRO_TOKEN.search(text)
    if token is not None:
        raise InvalidEvent(f"{name}: unexpanded monitoring macro {token.group(0)!r}")
    return text
