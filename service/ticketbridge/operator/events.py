"""`ticketbridge events`: list deliveries, show one event's history, repair.

An ID names an *event*, as logs do (`event=nagios:web01-17`), or by its
ledger id; the commands act on that event's deliveries (one per
destination), optionally narrowed with `--destination`.
"""

from __future__ import annotations

import json
from typing import Any

from ticketbridge import ledger_report
from ticketbridge.events import EVENT_FIELDS
from ticketbridge.ledger import RETRYABLE_STATES, SKIPPABLE_STATES, Ledger
from ticketbridge.operator.access import OperatorError, event_ref, find_events
from ticketbridge.operator.render import (
    age,
    as_json,
    count,
    fields,
    shorten,
    table,
    timestamp,
)

RAW_SHOWN = {*EVENT_FIELDS, "id"}


async def list_deliveries(
    ledger: Ledger,
    now: float,
    *,
    state: str | None,
    destination: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Deliveries (one event at one destination), most recently changed first."""
    rows = await ledger_report.deliveries(
        ledger, state=state, destination=destination, limit=limit
    )
    return [_listed(row, now) for row in rows]


def _listed(row: dict[str, Any], now: float) -> dict[str, Any]:
    record = json.loads(row["record"])
    return {
        "event": event_ref(row),
        "event_id": row["event_id"],
        "delivery_id": row["id"],
        "kind": row["kind"],
        "host": record.get("host"),
        "check": record.get("check"),
        "destination": row["destination"],
        "state": row["state"],
        "attempts": row["attempts"],
        "ticket": row["ticket_key"],
        "updated_at": timestamp(row["updated_at"]),
        "updated_age": now - row["updated_at"],
        "last_error": row["last_error"],
    }


def render_list(rows: list[dict[str, Any]], as_json_output: bool) -> str:
    if as_json_output:
        return as_json({"deliveries": rows})
    if not rows:
        return "no deliveries match"
    return table(
        ["EVENT", "LEDGER ID", "KIND", "HOST/CHECK", "DESTINATION", "STATE", "TRIES"]
        + ["TICKET", "CHANGED", "LAST ERROR"],
        [
            [
                r["event"],
                r["event_id"],
                r["kind"],
                "/".join(p for p in (r["host"], r["check"]) if p),
                r["destination"],
                r["state"],
                r["attempts"],
                r["ticket"],
                f"{age(r['updated_age'])} ago",
                shorten(r["last_error"]),
            ]
            for r in rows
        ],
    )


# -- show -----------------------------------------------------------------


async def show_event(ledger: Ledger, ref: str) -> dict[str, Any]:
    """The whole history of one event: its fields, route and every attempt."""
    (event,) = await find_events(ledger, [ref])
    deliveries = await ledger_report.event_deliveries(ledger, [event["id"]])
    return {
        "event": {
            "id": event["id"],
            "ref": event_ref(event),
            "source": event["source"],
            "source_event_id": event["source_event_id"],
            "kind": event["kind"],
            "incident_key": event["incident_key"],
            "occurred_at": event["occurred_at"],
            "ingested_at": timestamp(event["ingested_at"]),
            "route": event["route"],
            "fields": event["record"],
        },
        "deliveries": [await _history(ledger, d) for d in deliveries],
    }


async def _history(ledger: Ledger, delivery: dict[str, Any]) -> dict[str, Any]:
    tried = [
        {**attempt, "at": timestamp(attempt["at"])}
        for attempt in await ledger_report.attempts(ledger, delivery["id"])
    ]
    checks = [a for a in tried if a["operation"] == "verify"]
    ticket = None
    if delivery["ticket_id"] is not None:
        ticket = {
            "id": delivery["ticket_id"],
            "key": delivery["ticket_key"],
            "state": delivery["ticket_state"],
        }
    return {
        "delivery_id": delivery["id"],
        "destination": delivery["destination"],
        "route": delivery["route"],
        "state": delivery["state"],
        "operation": delivery["operation"],
        "marker": delivery["marker"],
        "attempt_count": delivery["attempts"],
        "consecutive_failures": delivery["consecutive_failures"],
        "next_attempt_at": timestamp(delivery["next_attempt_at"]),
        "last_error": delivery["last_error"],
        "ticket": ticket,
        "verification": checks[-1] if checks else None,
        "attempts": tried,
    }


def render_show(shown: dict[str, Any], as_json_output: bool) -> str:
    if as_json_output:
        return as_json(shown)
    event = shown["event"]
    record = event["fields"]
    head = fields(
        [
            ("event", f"{event['ref']} (ledger id {event['id']})"),
            ("kind", event["kind"]),
            ("occurred", event["occurred_at"]),
            ("ingested", event["ingested_at"]),
            ("incident", event["incident_key"]),
            ("route", event["route"] or "(not recorded)"),
        ]
    )
    payload = fields(
        [(name, shorten(str(value), 100)) for name, value in _payload(record)]
    )
    parts = [head, "payload:\n" + _indent(payload)]
    if not shown["deliveries"]:
        parts.append("no deliveries: the route sent it nowhere")
    parts += [_render_delivery(d) for d in shown["deliveries"]]
    return "\n\n".join(parts)


def _payload(record: dict[str, Any]) -> list[tuple[str, Any]]:
    main = ["severity", "host", "check", "summary", "details", "problem_id"]
    pairs = [(name, record.get(name)) for name in main if record.get(name)]
    # Raw fields the event model already shows are not repeated.
    raw = record.get("raw") or {}
    pairs += [(f"raw.{k}", v) for k, v in raw.items() if k not in RAW_SHOWN]
    return pairs


def _render_delivery(d: dict[str, Any]) -> str:
    ticket = d["ticket"]
    ticket_text = (
        f"{ticket['key']} ({ticket['state'] or 'unknown'})" if ticket else None
    )
    check = d["verification"]
    check_text = f"{check['outcome']} at {check['at']}" if check else None
    head = fields(
        [
            ("state", d["state"]),
            ("ticket", ticket_text),
            ("verification", check_text),
            ("marker", d["marker"]),
            ("failures in a row", d["consecutive_failures"]),
            ("last error", d["last_error"]),
        ]
    )
    attempts = table(
        ["TIME", "OPERATION", "OUTCOME", "STATUS", "SECONDS", "ERROR"],
        [
            [
                a["at"],
                a["operation"],
                a["outcome"],
                a["status"],
                a["duration"],
                shorten(a["error"], 80),
            ]
            for a in d["attempts"]
        ],
    )
    title = f"destination {d['destination']} (delivery {d['delivery_id']})"
    return f"{title}\n{_indent(head)}\n{_indent(attempts)}"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


# -- repairs --------------------------------------------------------------


async def retry(
    ledger: Ledger,
    refs: list[str],
    *,
    all_dead: bool,
    destination: str | None,
) -> list[dict[str, Any]]:
    """Send the named events' (or all) dead and retrying deliveries back to work."""
    if all_dead:
        chosen = await ledger_report.deliveries_in_state(ledger, "dead", destination)
    else:
        chosen = await _of_events(ledger, refs, destination, RETRYABLE_STATES)
    changed = await ledger.operator_retry([row["id"] for row in chosen])
    return await _changed(ledger, changed)


async def skip(
    ledger: Ledger, refs: list[str], reason: str, destination: str | None
) -> list[dict[str, Any]]:
    """Give up on the named events' unfinished or dead deliveries, with a reason."""
    if not reason.strip():
        raise OperatorError("give the reason for skipping with --reason TEXT")
    chosen = await _of_events(ledger, refs, destination, SKIPPABLE_STATES)
    changed = await ledger.operator_skip([row["id"] for row in chosen], reason)
    return await _changed(ledger, changed)


async def _of_events(
    ledger: Ledger,
    refs: list[str],
    destination: str | None,
    states: tuple[str, ...],
) -> list[dict[str, Any]]:
    events = await find_events(ledger, refs)
    return await ledger_report.event_deliveries(
        ledger, [e["id"] for e in events], destination=destination, states=states
    )


async def _changed(ledger: Ledger, ids: list[int]) -> list[dict[str, Any]]:
    rows = []
    for delivery_id in ids:
        delivery = await ledger.delivery(delivery_id)
        rows.append(
            {
                "delivery_id": delivery.id,
                "event": f"{delivery.event.source}:{delivery.event.source_event_id}",
                "event_id": delivery.event_id,
                "destination": delivery.destination,
                "state": delivery.state,
            }
        )
    return rows


def render_changed(rows: list[dict[str, Any]], verb: str, as_json_output: bool) -> str:
    if as_json_output:
        return as_json({verb: rows})
    if not rows:
        return f"nothing {verb}: no delivery of these events is in a state for it"
    listing = table(
        ["EVENT", "DESTINATION", "DELIVERY", "NOW"],
        [[r["event"], r["destination"], r["delivery_id"], r["state"]] for r in rows],
    )
    return f"{listing}\n{count(len(rows), 'delivery')} {verb}"
