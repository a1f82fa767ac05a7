"""Ticket text: cleaning, cutting to a field's limit, and quoting for queries.

Every destination client puts event text into fields with length limits and
into query languages with their own special characters. The rules live here
once: control characters go, a cut never splits what a reader sees as one
character, and a value either reaches a query quoted or is refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC

from ticketbridge.events import Event

MARKER = re.compile(r"[A-Za-z0-9._-]{1,255}")
ELLIPSIS = "…"

# C0 and C1 controls except tab and newline, DEL, and lone surrogates (which
# cannot be encoded as UTF-8 at all).
_UNWANTED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WIDE_FORMAT = re.compile(r"[%{][^a-zA-Z%}]{0,12}?\d{5,}")


class UnsafeQueryValue(ValueError):
    """A value that cannot be put into a query language safely."""


def check_marker(marker: str) -> str:
    """Refuse a correlation marker outside [A-Za-z0-9._-].

    Every query language we build lookups in (JQL, encoded queries, URLs)
    treats other characters specially; the router never makes such a marker.
    """
    if not MARKER.fullmatch(marker):
        raise ValueError(f"correlation marker {marker[:40]!r} is not [A-Za-z0-9._-]")
    return marker


def clean(text: str) -> str:
    """Text fit for any ticket field: controls other than tab and newline gone.

    CR LF and lone CR become LF first, so Windows line ends survive as line
    ends. Lone surrogates become U+FFFD: no UTF-8 encoder accepts them.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not _UNWANTED.search(text):
        return text
    return _UNWANTED.sub(
        lambda m: "\ufffd" if "\ud800" <= m.group() <= "\udfff" else "", text
    )


def utf16_len(text: str) -> int:
    """Length as Java-based systems (Jira, ServiceNow) count it: emoji are two."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` UTF-16 units, ending with "…" when cut.

    The limit counts UTF-16 units because the Java-based ticket systems count
    string length that way (an emoji is two). The cut never splits a
    character, nor a base letter from its combining marks, nor an emoji
    sequence joined by ZWJ, modifiers or variation selectors, nor a flag.
    """
    if utf16_len(text) <= limit:
        return text
    end = 0
    used = 0
    budget = limit - 1  # room for the ellipsis
    while end < len(text) and used + _units(text[end]) <= budget:
        used += _units(text[end])
        end += 1
    while 0 < end < len(text) and _continues_cluster(text, end):
        end -= 1
    return text[:end].rstrip() + ELLIPSIS


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _continues_cluster(text: str, index: int) -> bool:
    """Whether the character at `index` belongs to the one before it."""
    char, before = text[index], text[index - 1]
    point = ord(char)
    if unicodedata.category(char) in ("Mn", "Mc", "Me"):
        return True
    if point == 0x200D or before == "\u200d":  # zero-width joiner
        return True
    if 0xFE00 <= point <= 0xFE0F or 0xE0100 <= point <= 0xE01EF:  # selectors
        return True
    if 0x1F3FB <= point <= 0x1F3FF or 0xE0020 <= point <= 0xE007F:  # skin, tags
        return True
    if _is_regional(char):
        # Flags are pairs of regional indicators: split only between pairs.
        run = 0
        while index - run - 1 >= 0 and _is_regional(text[index - run - 1]):
            run += 1
        return run % 2 == 1
    return False


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def has_wide_format(text: str) -> bool:
    """Whether a format string asks for a field five or more digits wide."""
    return _WIDE_FORMAT.search(text) is not None


# --- Query languages ---------------------------------------------------------


def quote_jql(value: str) -> str:
    """A JQL string literal: backslash and double quote escaped.

    Control characters (newlines included) have no place in a lookup value
    and are refused rather than guessed at.
    """
    _refuse_controls("JQL", value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def encoded_query_value(value: str) -> str:
    """A value for a ServiceNow encoded query (`field=value^...`).

    The encoded query has no escape for `^`, its condition separator, so a
    value holding one is refused: it would add a condition of its own.
    """
    _refuse_controls("encoded query", value)
    if not value or "^" in value:
        raise UnsafeQueryValue(
            f"encoded query: value {value[:40]!r} is empty or holds '^'"
        )
    return value


def redmine_filter_value(value: str) -> str:
    """A value for a Redmine issue filter (`cf_N=value`).

    `|` separates alternatives and a leading operator character changes the
    filter's meaning; Redmine has no escape for either, so they are refused.
    """
    _refuse_controls("Redmine filter", value)
    if not value or "|" in value or value[0] in "~!^$*=<>":
        raise UnsafeQueryValue(
            f"Redmine filter: value {value[:40]!r} is empty, holds '|' "
            "or starts with an operator"
        )
    return value


def quote_ticketsql(value: str) -> str:
    """A TicketSQL (Request Tracker) string literal in single quotes."""
    _refuse_controls("TicketSQL", value)
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _refuse_controls(language: str, value: str) -> None:
    if _CONTROL.search(value):
        raise UnsafeQueryValue(f"{language}: value {value[:40]!r} holds a control")


# --- The built-in ticket text ------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketText:
    """What a ticket or comment says: a one-line title and a plain-text body."""

    title: str
    body: str

    @property
    def comment(self) -> str:
        return f"{self.title}\n\n{self.body}"


def render_text(event: Event) -> TicketText:
    """The built-in ticket text, as it was before templates.

    The default templates (see `templates.py`) render exactly this; it stays
    as the reference they are tested against.
    """
    subject = f"{event.host}/{event.check}" if event.check else event.host
    title = f"[{event.severity.upper()}] {subject}"
    if event.summary:
        title = f"{title}: {' '.join(event.summary.split())}"

    when = event.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    facts = [
        f"Host: {event.host}",
        *([f"Check: {event.check}"] if event.check else []),
        f"Severity: {event.severity}",
        f"Kind: {event.kind.value}",
        f"Time: {when}",
        f"Source: {event.source} (event {event.source_event_id})",
    ]
    body = "\n".join(facts)
    if event.details.strip():
        body = f"{body}\n\n{event.details.strip()}"
    return TicketText(title=title, body=body)
