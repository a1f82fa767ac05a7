"""`ticketbridge status`: is every source polled and every destination served?

The answer is an exit code for scripts and checks (0 fine, 1 needs
attention) and, for people, what needs attention and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ticketbridge import ledger_report
from ticketbridge.config import Config
from ticketbridge.ledger import STATES, DestinationStats, Ledger
from ticketbridge.operator.render import (
    age,
    as_json,
    count,
    fields,
    table,
    timestamp,
)

# A source is late after this many poll intervals without a good poll (the
# same bound as /readyz uses for the poll loop).
LATE_POLLS = 3
DEFAULT_MAX_PENDING_AGE = 900.0
# The config's own default, for a ledger read without its config.
DEFAULT_POLL_INTERVAL = Config.model_fields["poll_interval"].default


@dataclass
class Status:
    sources: list[dict[str, Any]] = field(default_factory=list)
    destinations: list[dict[str, Any]] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.attention


async def gather(
    ledger: Ledger,
    config: Config | None,
    now: float,
    max_pending_age: float,
    poll_interval: float | None = None,
) -> Status:
    """Read the status tables and delivery counts; judge what needs attention.

    Without a config the sources and destinations are those the ledger
    knows, and a source is late against `poll_interval` (else the default).
    """
    status = Status()
    polls = await ledger_report.source_statuses(ledger)
    sources = list(polls) if config is None else list(config.sources)
    interval = poll_interval or (
        config.poll_interval if config else DEFAULT_POLL_INTERVAL
    )
    for name in sources:
        _add_source(status, name, polls.get(name), interval, now)

    stats = await ledger.destination_stats(now)
    known = await ledger_report.destination_statuses(ledger)
    configured = set(known) | set(stats) if config is None else config.destinations
    # A destination removed from the config may still hold dead deliveries.
    names = sorted(configured) if config is None else list(configured)
    names += sorted(set(stats) - set(names))
    for name in names:
        _add_destination(
            status,
            name,
            stats.get(name, DestinationStats({}, 0.0, 0)),
            known.get(name, {}),
            configured=name in configured,
            max_pending_age=max_pending_age,
        )
    return status


def _add_source(
    status: Status,
    name: str,
    poll: dict[str, Any] | None,
    interval: float,
    now: float,
) -> None:
    poll = poll or {}
    success = poll.get("last_success_at")
    since = None if success is None else now - success
    status.sources.append(
        {
            "source": name,
            "last_poll_at": timestamp(poll.get("last_poll_at")),
            "last_success_at": timestamp(success),
            "last_success_age": since,
            "consecutive_errors": poll.get("consecutive_errors", 0),
            "total_errors": poll.get("total_errors", 0),
            "last_error": poll.get("last_error"),
            "last_error_at": timestamp(poll.get("last_error_at")),
        }
    )

    bound = LATE_POLLS * interval
    if since is not None and since <= bound:
        return
    error = poll.get("last_error")
    why = f" (last error: {error})" if error and poll.get("consecutive_errors") else ""
    if not poll:
        status.attention.append(f"source {name}: never polled (is the daemon running?)")
    elif since is None:
        status.attention.append(f"source {name}: no successful poll yet{why}")
    else:
        status.attention.append(
            f"source {name}: no successful poll for {age(since)} "
            f"(more than {LATE_POLLS} poll intervals){why}"
        )


def _add_destination(
    status: Status,
    name: str,
    stats: DestinationStats,
    known: dict[str, Any],
    *,
    configured: bool,
    max_pending_age: float,
) -> None:
    counts = {state: stats.counts.get(state, 0) for state in STATES}
    circuit = known.get("circuit_state") or "closed"
    active = sum(counts[s] for s in ("pending", "retrying", "sent"))
    oldest = stats.oldest_pending_age if active else None
    status.destinations.append(
        {
            "destination": name,
            "configured": configured,
            "counts": counts,
            "oldest_pending_age": oldest,
            "circuit_state": circuit,
            "last_error": known.get("last_error"),
            "last_error_at": timestamp(known.get("last_error_at")),
            "probes": known.get("probes"),
        }
    )

    where = f"destination {name}"
    if counts["dead"]:
        status.attention.append(
            f"{where}: {count(counts['dead'], 'dead delivery')} "
            f"(ticketbridge events list --state dead --destination {name})"
        )
    if circuit == "open":
        error = known.get("last_error")
        status.attention.append(
            f"{where}: circuit open" + (f" (last error: {error})" if error else "")
        )
    if oldest is not None and oldest > max_pending_age:
        status.attention.append(
            f"{where}: oldest pending delivery is {age(oldest)} old "
            f"(bound {age(max_pending_age)})"
        )


def render(status: Status, as_json_output: bool) -> str:
    """The report as tables, or as JSON with the keys of `gather`."""
    if as_json_output:
        return as_json(
            {
                "ok": status.ok,
                "attention": status.attention,
                "sources": status.sources,
                "destinations": status.destinations,
            }
        )

    parts = [
        table(
            ["SOURCE", "LAST SUCCESS", "AGE", "ERRORS", "LAST ERROR"],
            [
                [
                    s["source"],
                    s["last_success_at"],
                    age(s["last_success_age"]),
                    f"{s['consecutive_errors']} in a row, {s['total_errors']} total",
                    s["last_error"],
                ]
                for s in status.sources
            ],
        ),
        table(
            ["DESTINATION", *(state.upper() for state in STATES), "OLDEST", "CIRCUIT"],
            [
                [
                    d["destination"] + ("" if d["configured"] else " (removed)"),
                    *(d["counts"][state] for state in STATES),
                    age(d["oldest_pending_age"]),
                    d["circuit_state"],
                ]
                for d in status.destinations
            ],
        ),
    ]
    errors = [
        (d["destination"], f"{d['last_error_at']} {d['last_error']}")
        for d in status.destinations
        if d["last_error"]
    ]
    if errors:
        parts.append("last destination errors:\n" + fields(errors))
    if status.attention:
        lines = "\n".join(f"  - {item}" for item in status.attention)
        parts.append(f"NEEDS ATTENTION:\n{lines}")
    else:
        parts.append("OK: nothing needs attention")
    return "\n\n".join(parts)
