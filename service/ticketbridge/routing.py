"""Routing: ordered rules pick the destinations of each event; first match wins."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ticketbridge.config.model import (
    DEFAULT_LIFECYCLE,
    FieldMatch,
    Lifecycle,
    Match,
    Route,
)
from ticketbridge.events import Event


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the route sends an event.

    `shadow` destinations only render what they would create; `twins` pairs
    the two destinations of a mirror route so each ticket can name the other.
    """

    route: str
    destinations: tuple[str, ...]
    shadow: tuple[str, ...] = ()
    twins: Mapping[str, str] = field(default_factory=dict)
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE

    @property
    def dropped(self) -> bool:
        return not self.destinations and not self.shadow


NO_ROUTE = Decision(route="(no route)", destinations=())


def decide(route: Route) -> Decision:
    """The destinations of a matched route, by its `mode` or its list."""
    rules = route.lifecycle
    old, new = route.old or "", route.new or ""
    match route.mode:
        case "old":
            return Decision(route.name, (old,), lifecycle=rules)
        case "new":
            return Decision(route.name, (new,), lifecycle=rules)
        case "mirror":
            twins = {old: new, new: old}
            return Decision(route.name, (old, new), twins=twins, lifecycle=rules)
        case "shadow":
            return Decision(route.name, (old,), shadow=(new,), lifecycle=rules)
    return Decision(route.name, tuple(route.destinations), lifecycle=rules)


class Router:
    """Compiled routing rules; cheap to rebuild on every config reload."""

    def __init__(self, routes: list[Route]) -> None:
        self._routes = routes
        self._regexes = {
            pattern: re.compile(pattern)
            for route in routes
            for test in route.match.fields.values()
            if (pattern := test.regex) is not None
        }

    def route(self, event: Event) -> Decision:
        for route in self._routes:
            if self._matches(route.match, event):
                return decide(route)
        return NO_ROUTE

    def _matches(self, match: Match, event: Event) -> bool:
        globs = {
            "source": match.source,
            "severity": match.severity,
            "host": match.host,
            "check": match.check,
        }
        for name, pattern in globs.items():
            if pattern is not None and not glob(pattern, event.field_value(name)):
                return False
        if match.kind is not None and event.kind.value not in match.kind:
            return False
        return all(
            self._field_matches(test, event.field_value(name))
            for name, test in match.fields.items()
        )

    def _field_matches(self, test: FieldMatch, value: str) -> bool:
        if test.equals is not None:
            return value == test.equals
        if test.one_of is not None:
            return value in test.one_of
        if test.glob is not None:
            return glob(test.glob, value)
        assert test.regex is not None
        return self._regexes[test.regex].search(value) is not None


def glob(pattern: str, value: str) -> bool:
    """Case-insensitive shell glob, as operators write host and check names."""
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def incident_key(event: Event, fields: list[str]) -> str:
    """What ties a problem to its recovery, e.g. `nagios|web01|HTTP`.

    The source always comes first, even when the configured fields leave it
    out: two sources (a test and a production Nagios) sending the same host
    and check must never share a ticket. Whatever else tells environments
    apart within one source (an `env` field) is added in the source's
    `incident_key`. `|` and `\\` inside values are escaped so that
    ("a|b", "c") and ("a", "b|c") stay two keys; keys of values without them
    are unchanged.
    """
    names = fields if "source" in fields else ["source", *fields]
    return "|".join(_escape_part(event.field_value(name)) for name in names)


def _escape_part(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def correlation_marker(event: Event) -> str:
    """The key written on the ticket; always [A-Za-z0-9._-] whatever the input."""
    digest = hashlib.sha256(
        f"{event.source}\0{event.source_event_id}".encode()
    ).hexdigest()
    return f"tb-{digest[:20]}"
