"""Lifecycle rules: what one event does to its incident's ticket.

Pure decisions, no I/O: the sender gathers the facts (the incident's latest
ticket at the destination, what the ledger saw of the incident before this
event) and applies the step chosen here. The same rules decide, at ingest,
which destinations own an incident's follow-ups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ticketbridge.config.model import Lifecycle
from ticketbridge.events import Event, EventKind

# Kinds that only ever become a comment, with the option that may silence them.
COMMENT_OPTIONS = {
    EventKind.ACKNOWLEDGEMENT: "on_acknowledgement",
    EventKind.FLAPPING: "on_flapping",
    EventKind.DOWNTIME: "on_downtime",
}

CLOSED_BY_PERSON = "person"
CLOSED_BY_BRIDGE = "bridge"


@dataclass(frozen=True, slots=True)
class Ticket:
    """The incident's latest ticket at one destination, as the ledger knows it."""

    ticket_id: str
    ticket_key: str
    marker: str
    open: bool
    resolved_at: float | None = None
    resolution: str = ""
    closed_by: str = ""


@dataclass(frozen=True, slots=True)
class History:
    """What the ledger stored of the incident before this event (by ingest order).

    Times are the events' own `occurred_at`, so a notification that arrives
    late is judged by when it happened, not when it was read.
    """

    last_problem_at: datetime | None = None
    last_recovery_at: datetime | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """The operation to apply: create, comment, resolve, reopen or skip."""

    operation: str
    reason: str = ""


def decide(
    event: Event,
    ticket: Ticket | None,
    history: History,
    rules: Lifecycle,
    *,
    can_reopen: bool = True,
) -> Step:
    """Choose what `event` does, given the incident's ticket and history."""
    if history.duplicate_of is not None:
        return Step("skip", f"duplicate of event {history.duplicate_of}")

    is_open = ticket is not None and ticket.open
    if event.kind is EventKind.PROBLEM:
        return _problem(event, ticket, history, rules, can_reopen)
    if event.kind is EventKind.RECOVERY:
        return _recovery(event, is_open, history, rules)

    option = COMMENT_OPTIONS.get(event.kind)
    if option is not None and getattr(rules, option) == "ignore":
        return Step("skip", f"{event.kind.value} ignored ({option}: ignore)")
    if not is_open:
        return Step("skip", "no open ticket")
    return Step("comment")


def _problem(
    event: Event,
    ticket: Ticket | None,
    history: History,
    rules: Lifecycle,
    can_reopen: bool,
) -> Step:
    if ticket is not None and ticket.open:
        if rules.on_repeat == "ignore":
            return Step("skip", "repeat problem ignored (on_repeat: ignore)")
        return Step("comment")

    # BC-21: a problem that happened before a recovery we already stored
    # belongs to an episode that is over; opening a ticket now would leave
    # it open for good.
    if _before(event, history.last_recovery_at):
        seen = _when(history.last_recovery_at)
        return Step("skip", f"late problem: older than the recovery at {seen}")

    if ticket is None:
        return Step("create")
    refusal = reopen_refusal(event, ticket, rules, can_reopen=can_reopen)
    if refusal is None:
        return Step("reopen")
    return Step("create", f"new ticket, not reopening {ticket.ticket_key}: {refusal}")


def _recovery(event: Event, is_open: bool, history: History, rules: Lifecycle) -> Step:
    if history.last_problem_at is None and history.last_recovery_at is None:
        return Step("skip", "recovery without a known problem")
    if _before(event, history.last_recovery_at):
        seen = _when(history.last_recovery_at)
        return Step("skip", f"stale recovery: older than the recovery at {seen}")
    if not is_open:
        return Step("skip", "no open ticket")
    if _before(event, history.last_problem_at):
        seen = _when(history.last_problem_at)
        return Step("skip", f"stale recovery: older than the problem at {seen}")
    if not rules.resolve_on_recovery:
        return Step("comment")
    return Step("resolve")


def reopen_refusal(
    event: Event, ticket: Ticket, rules: Lifecycle, *, can_reopen: bool = True
) -> str | None:
    """Why a problem must not reopen this resolved ticket; None if it may."""
    if not can_reopen:
        return "the destination cannot reopen tickets"
    if rules.reopen_window <= 0:
        return "reopen_window is 0"
    if ticket.closed_by == CLOSED_BY_PERSON:
        return "it was closed by a person"
    wont_fix = {name.casefold() for name in rules.wont_fix}
    if ticket.resolution and ticket.resolution.casefold() in wont_fix:
        return f"resolution {ticket.resolution!r} is listed in wont_fix"
    if ticket.resolved_at is None:
        return "its resolve time is unknown"
    elapsed = event.occurred_at.timestamp() - ticket.resolved_at
    if elapsed > rules.reopen_window:
        return (
            f"resolved {elapsed:.0f}s before the problem, "
            f"past reopen_window {rules.reopen_window:.0f}s"
        )
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """One delivery to make at ingest: destination, its role and mirror twin."""

    destination: str
    role: str = ""
    twin: str = ""


def follow_owners(
    event: Event,
    routed: Sequence[str],
    shadow: Sequence[str],
    twins: Mapping[str, str],
    owners: Mapping[str, Ticket | None],
    rules: Lifecycle,
) -> list[Target]:
    """The deliveries of one event: its route, or the owners the route left.

    `owners` maps each destination holding an active delivery or a ticket of
    the incident to its latest ticket (None while the create is in flight).
    While a destination the route no longer names owns the incident (the
    route changed mid-incident), the event goes to the owners only, so the
    incident stays in the system that holds it. Otherwise it goes where the
    route says: destinations differ in progress (one may have resolved its
    ticket while another has not yet), and each must see every event.
    """
    # A shadow destination that holds a real ticket (the route went back to
    # shadow mid-incident) owns it like any other: its follow-ups are sent.
    owning = [name for name, ticket in owners.items() if _owns(event, ticket, rules)]
    left_behind = [name for name in owning if name not in routed]
    chosen = owning if left_behind else list(routed)
    targets = [
        Target(name, "mirror" if name in twins else "", twins.get(name, ""))
        for name in chosen
    ]
    targets += [Target(name, "shadow") for name in shadow if name not in chosen]
    return targets


def _owns(event: Event, ticket: Ticket | None, rules: Lifecycle) -> bool:
    if ticket is None or ticket.open:
        return True
    # A resolved ticket still owns a problem that will reopen it.
    return (
        event.kind is EventKind.PROBLEM and reopen_refusal(event, ticket, rules) is None
    )


def _before(event: Event, moment: datetime | None) -> bool:
    return moment is not None and event.occurred_at < moment


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "?"
