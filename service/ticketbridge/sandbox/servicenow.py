"""The ServiceNow Table API subset ticketbridge uses, for the incident table.

Like the real Table API every value is a string, misspelt fields in a write or
a query are silently ignored, and resolving an incident without its
resolution code and notes is refused by the out-of-box data policy.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from ticketbridge.sandbox.settings import SETTINGS, SandboxSettings
from ticketbridge.sandbox.store import STORE, Incident, JournalEntry, now

TABLES = ("incident",)
CHOICE_TABLE = "sys_choice"
CHOICE_FIELDS = ("name", "element", "value", "label", "inactive", "language")
STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved"}
STATES |= {"7": "Closed", "8": "Canceled"}
RESOLVED_STATES = ("6", "7")
JOURNAL_FIELDS = ("comments", "work_notes")
WRITABLE = (
    "state",
    "correlation_id",
    "correlation_display",
    "short_description",
    "description",
    "urgency",
    "impact",
    "priority",
    "category",
    "caller_id",
    "assignment_group",
    "close_code",
    "close_notes",
    *JOURNAL_FIELDS,
)
READ_ONLY = (
    "sys_id",
    "number",
    "active",
    "opened_at",
    "resolved_at",
    "closed_at",
    "sys_created_on",
    "sys_updated_on",
    "sys_mod_count",
)
MANDATORY_ON_RESOLVE = {
    "close_code": "Resolution code",
    "close_notes": "Resolution notes",
}
_CONDITION = re.compile(
    r"(?P<field>[\w.]+?)(?P<op>!=|=|LIKE|STARTSWITH|ENDSWITH)(?P<value>.*)"
)


def error(status: int, message: str, detail: str | None = None) -> web.Response:
    """The failure body every Table API error carries."""
    body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return web.json_response(body, status=status)


def not_found() -> web.Response:
    return error(
        404,
        "No Record found",
        "Record doesn't exist or ACL restricts the record retrieval",
    )


def routes() -> list[web.RouteDef]:
    routes: list[web.RouteDef] = []
    for base in ("/api/now/table", "/api/now/{api:v1|v2}/table"):
        routes += [
            web.post(f"{base}/{{table}}", create_record),
            web.get(f"{base}/{{table}}", query_records),
            web.get(f"{base}/{{table}}/{{sys_id}}", get_record),
            web.patch(f"{base}/{{table}}/{{sys_id}}", update_record),
        ]
    return routes


# Handlers


async def create_record(request: web.Request) -> web.Response:
    table = request.match_info["table"]
    if table not in TABLES:
        return error(400, f"Invalid table {table}")
    body = await _json_object(request)
    if body is None:
        return _bad_payload()
    stamp = _snow_time(now())
    values = {name: "" for name in (*WRITABLE, *READ_ONLY)}
    values |= {
        "sys_id": uuid.uuid4().hex,
        "number": request.app[STORE].next_incident_number(),
        "state": "1",
        "urgency": "3",
        "impact": "3",
        "priority": "5",
        "opened_at": stamp,
        "sys_created_on": stamp,
        "sys_mod_count": "-1",
    }
    incident = Incident(table=table, values=values, created=now())
    refused = _apply(request.app[SETTINGS], incident, body)
    if refused is not None:
        return refused

    request.app[STORE].incidents[incident.sys_id] = incident
    location = f"{request.scheme}://{request.host}{request.path}/{incident.sys_id}"
    return web.json_response(
        {"result": _render(request, incident)},
        status=201,
        headers={"Location": location},
    )


async def get_record(request: web.Request) -> web.Response:
    incident = _find(request)
    if incident is None:
        return not_found()
    return web.json_response({"result": _render(request, incident)})


async def update_record(request: web.Request) -> web.Response:
    incident = _find(request)
    if incident is None:
        return not_found()
    body = await _json_object(request)
    if body is None:
        return _bad_payload()
    refused = _apply(request.app[SETTINGS], incident, body)
    if refused is not None:
        return refused
    return web.json_response({"result": _render(request, incident)})


async def query_records(request: web.Request) -> web.Response:
    table = request.match_info["table"]
    if table == CHOICE_TABLE:
        return _query_choices(request)
    if table not in TABLES:
        return error(400, f"Invalid table {table}")
    try:
        conditions, order = _parse_query(request.query.get("sysparm_query", ""))
        limit = int(request.query.get("sysparm_limit", "10000"))
        offset = max(0, int(request.query.get("sysparm_offset", "0")))
    except ValueError as exc:
        return error(400, "Invalid query", str(exc))
    store = request.app[STORE]
    records = [
        i
        for i in store.incidents.values()
        if i.table == table
        and all(_holds(c, i.values) for c in conditions)
        and store.searchable(i.created)
    ]
    for field, descending in reversed(order):
        records.sort(key=lambda i: i.values.get(field, ""), reverse=descending)
    if not records and request.match_info.get("api") == "v1":
        return not_found()
    page = records[offset : offset + limit]
    return web.json_response(
        {"result": [_render(request, i) for i in page]},
        headers={"X-Total-Count": str(len(records))},
    )


def _query_choices(request: web.Request) -> web.Response:
    """sys_choice, read-only: the incident table's state and close_code lists."""
    try:
        conditions, _ = _parse_query(
            request.query.get("sysparm_query", ""), CHOICE_FIELDS
        )
    except ValueError as exc:
        return error(400, "Invalid query", str(exc))
    rows = [
        row
        for row in _choices(request.app[SETTINGS])
        if all(_holds(c, row) for c in conditions)
    ]
    fields = request.query.get("sysparm_fields")
    if fields:
        wanted = [f.strip() for f in fields.split(",")]
        rows = [{f: row[f] for f in wanted if f in row} for row in rows]
    return web.json_response(
        {"result": rows}, headers={"X-Total-Count": str(len(rows))}
    )


def _choices(settings: SandboxSettings) -> list[dict[str, str]]:
    lists = {"state": list(STATES.items())}
    if settings.close_codes is not None:
        lists["close_code"] = [(code, code) for code in settings.close_codes]
    return [
        {
            "sys_id": f"choice-{element}-{n}",
            "name": table,
            "element": element,
            "value": value,
            "label": label,
            "inactive": "false",
            "language": "en",
            "sequence": str(n),
        }
        for table in TABLES
        for element, choices in lists.items()
        for n, (value, label) in enumerate(choices)
    ]


# Writing


def _apply(
    settings: SandboxSettings, incident: Incident, body: dict[str, Any]
) -> web.Response | None:
    """Apply a create or update body, or return the refusal and change nothing."""
    values = dict(incident.values)
    notes: list[JournalEntry] = []
    for name, raw in body.items():
        if name not in WRITABLE:
            continue  # the Table API ignores fields it does not know or own
        value = _as_string(raw)
        if name in JOURNAL_FIELDS:
            if value:
                notes.append(JournalEntry(name, value, now()))
        elif name == "close_code" and not _valid_close_code(settings, value):
            continue  # an unknown choice is dropped, then the data policy fires
        else:
            values[name] = value

    missing = _missing_on_resolve(values)
    if missing:
        detail = "Data Policy Exception: The following fields are mandatory: "
        return error(403, "Operation Failed", detail + ", ".join(missing))

    _stamp(incident.values.get("state", ""), values)
    incident.values = values
    incident.journal.extend(notes)
    return None


def _stamp(old_state: str, values: dict[str, str]) -> None:
    """Keep the derived fields in step with the state, as business rules do."""
    moment = _snow_time(now())
    state = values["state"]
    resolved = state.isdigit() and int(state) >= 6
    values["active"] = "false" if resolved else "true"
    if state == "6" and old_state != "6":
        values["resolved_at"] = moment
    if state == "7" and old_state != "7":
        values["closed_at"] = moment
    if not resolved:
        values["resolved_at"] = values["closed_at"] = ""
    values["sys_updated_on"] = moment
    values["sys_mod_count"] = str(int(values["sys_mod_count"] or "0") + 1)


def _missing_on_resolve(values: dict[str, str]) -> list[str]:
    if values.get("state") not in RESOLVED_STATES:
        return []
    return [label for name, label in MANDATORY_ON_RESOLVE.items() if not values[name]]


def _valid_close_code(settings: SandboxSettings, value: str) -> bool:
    return not value or settings.close_codes is None or value in settings.close_codes


# Reading


def _parse_query(
    text: str, known: tuple[str, ...] = (*WRITABLE, *READ_ONLY)
) -> tuple[list[tuple[str, str, str]], list[tuple[str, bool]]]:
    """Conditions and sort keys of an encoded query; unknown fields are dropped."""
    conditions: list[tuple[str, str, str]] = []
    order: list[tuple[str, bool]] = []
    for part in filter(None, text.split("^")):
        if part.startswith("ORDERBYDESC"):
            order.append((part.removeprefix("ORDERBYDESC"), True))
            continue
        if part.startswith("ORDERBY"):
            order.append((part.removeprefix("ORDERBY"), False))
            continue
        match = _CONDITION.fullmatch(part)
        if match is None or part.startswith(("OR", "NQ")):
            raise ValueError(
                f"unsupported query part {part!r}: the sandbox understands "
                "field=value, !=, LIKE, STARTSWITH, ENDSWITH, ORDERBY joined by ^"
            )
        if match["field"] in known:
            conditions.append((match["field"], match["op"], match["value"]))
    return conditions, order


def _holds(condition: tuple[str, str, str], values: dict[str, str]) -> bool:
    field, op, wanted = condition
    actual = values.get(field, "")
    checks = {
        "=": actual == wanted,
        "!=": actual != wanted,
        "LIKE": wanted in actual,
        "STARTSWITH": actual.startswith(wanted),
        "ENDSWITH": actual.endswith(wanted),
    }
    return checks[op]


def _render(request: web.Request, incident: Incident) -> dict[str, str]:
    fields = request.query.get("sysparm_fields")
    if not fields:
        return dict(incident.values)
    wanted = [f.strip() for f in fields.split(",")]
    return {f: incident.values[f] for f in wanted if f in incident.values}


# Helpers


def _find(request: web.Request) -> Incident | None:
    incident = request.app[STORE].incidents.get(request.match_info["sys_id"])
    if incident is None or incident.table != request.match_info["table"]:
        return None
    return incident


def _as_string(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, dict) and "value" in raw:
        return str(raw["value"])
    return str(raw)


def _bad_payload() -> web.Response:
    return error(
        400, "Exception while reading request", "The payload is not valid JSON."
    )


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _snow_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")
