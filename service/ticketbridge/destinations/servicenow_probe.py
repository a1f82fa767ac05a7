"""ServiceNow preflight: credentials, the table, and the resolve settings.

Checks: `credentials` and `table` (GET {table}?sysparm_limit=1),
`resolved_state` and `close_code` (the choice lists of the table's `state`
and `close_code` fields in sys_choice). An unknown close code is the silent
killer here: ServiceNow drops it and then refuses every resolve (403, data
policy). Where sys_choice is not readable to the integration user, or lists
no choices, the two checks pass with a detail saying they could not be made.
"""

from __future__ import annotations

from ticketbridge.config.model import ServiceNowSettings
from ticketbridge.destinations.base import (
    DestinationError,
    PermanentError,
    ProbeResult,
)
from ticketbridge.destinations.http import HttpClient
from ticketbridge.destinations.probe import Checks, fetch

# Incident states from 6 (Resolved) up are closed ones; see servicenow.py.
FIRST_CLOSED_STATE = 6


async def probe_servicenow(
    http: HttpClient, base: str, table_url: str, settings: ServiceNowSettings
) -> list[ProbeResult]:
    """Run every check; see the module docstring."""
    checks = Checks(http)

    # 1. Credentials and the table, in one read.
    table = settings.table
    try:
        await fetch(http, table_url, {"sysparm_limit": "1", "sysparm_fields": "sys_id"})
    except PermanentError as exc:
        if exc.status == 401:
            checks.error("credentials", exc, "check username and password")
            return checks.skipped(_LATER, "credentials failed")
        checks.passed("credentials", f"accepted for {settings.username}")
        if exc.status == 404:
            # Version 1 of the Table API answers an empty table with 404.
            checks.passed("table", f"table {table} readable (no records)")
        else:
            checks.error("table", exc, f"can {settings.username} read {table}?")
    except DestinationError as exc:
        checks.error("credentials", exc)
        return checks.skipped(_LATER, "credentials failed")
    else:
        checks.passed("credentials", f"accepted for {settings.username}")
        checks.passed("table", f"table {table} readable")

    # 2. The values written on resolve.
    state = settings.resolved_state
    if not state.isdigit() or int(state) < FIRST_CLOSED_STATE:
        checks.failed(
            "resolved_state",
            f"state {state!r} is not a closed state (6 Resolved or above): "
            "a resolved ticket would read as open",
        )
    else:
        await _check_choice(
            http, base, settings, "state", state, "resolved_state", checks
        )
    await _check_choice(
        http, base, settings, "close_code", settings.close_code, "close_code", checks
    )
    return checks.results


_LATER = ("table", "resolved_state", "close_code")


async def _check_choice(
    http: HttpClient,
    base: str,
    settings: ServiceNowSettings,
    element: str,
    value: str,
    check: str,
    checks: Checks,
) -> None:
    query = f"name={settings.table}^element={element}^inactive=false"
    params = {
        "sysparm_query": query,
        "sysparm_fields": "value,label",
        "sysparm_limit": "500",
    }
    try:
        reply = await fetch(http, f"{base}/api/now/table/sys_choice", params)
    except PermanentError as exc:
        checks.passed(
            check, f"{value!r} not checked: sys_choice unreadable (HTTP {exc.status})"
        )
        return
    except DestinationError as exc:
        checks.error(check, exc)
        return

    body = reply.body if isinstance(reply.body, dict) else {}
    result = body.get("result")
    rows = (
        [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []
    )
    choices = {str(r.get("value")): str(r.get("label")) for r in rows}
    if not choices:
        checks.passed(check, f"{value!r} not checked: no {element} choices listed")
    elif value in choices:
        checks.passed(check, f"{value!r} ({choices[value]}) is a {element} choice")
    else:
        known = ", ".join(repr(v) for v in sorted(choices))
        checks.failed(
            check, f"{value!r} is not a {element} choice of {settings.table} ({known})"
        )
