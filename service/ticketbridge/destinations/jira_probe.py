"""Jira preflight: what can be checked before the first ticket, with reads only.

Checks, in order: `credentials` (GET /myself), `api_version` (GET
/serverInfo: Cloud answers on v3, Data Center only on v2), `search` (the very
search `find` runs, so a removed search endpoint, 410 Gone, shows here and
not as doubled tickets), `project` (GET /project/{key}), `issue_type` and
`resolve_transition` (GET /project/{key}/statuses: the issue types of the
project, each with the statuses of its workflow).

What cannot be checked: Jira lists transitions only for an existing issue
(GET /issue/{key}/transitions), and reading workflows needs admin rights. So
`resolve_transition` passes when the issue type's workflow has a status of
that name in the done category (the client also picks a transition by the
name of its target status), and otherwise only says that the name will be
checked at the first resolve, as long as some done status exists at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from ticketbridge.config.model import JiraSettings
from ticketbridge.destinations.base import (
    DestinationError,
    PermanentError,
    ProbeResult,
)
from ticketbridge.destinations.http import HttpClient
from ticketbridge.destinations.probe import Checks, fetch

# A label no ticket carries: the search only has to answer, not to find.
PROBE_LABEL = "tb-preflight-probe"
AFTER_CREDENTIALS = (
    "api_version",
    "search",
    "project",
    "issue_type",
    "resolve_transition",
)

Search = Callable[[str], Awaitable[object]]


async def probe_jira(
    http: HttpClient, api: str, settings: JiraSettings, search: Search
) -> list[ProbeResult]:
    """Run every check; see the module docstring. `search(jql)` is find's search."""
    checks = Checks(http)
    v = settings.api_version

    # 1. Credentials: nothing else can be read without them.
    try:
        me = await fetch(http, f"{api}/myself")
    except DestinationError as exc:
        checks.error("credentials", exc, _credentials_hint(exc, v))
        return checks.skipped(AFTER_CREDENTIALS, "credentials failed")
    who = me.body.get("displayName") if isinstance(me.body, dict) else None
    checks.passed("credentials", f"authenticated as {who or 'an unnamed user'}")

    # 2. The API version and the search it implies.
    await _check_api_version(http, api, v, checks)
    project = settings.project
    try:
        await search(f'project = "{project}" AND labels = "{PROBE_LABEL}"')
    except DestinationError as exc:
        checks.error("search", exc, _search_hint(exc, v))
    else:
        checks.passed("search", f"{_search_name(v)} answers")

    # 3. Project, issue type and workflow.
    project_url = f"{api}/project/{quote(project, safe='')}"
    try:
        found = await fetch(http, project_url)
    except DestinationError as exc:
        checks.error("project", exc)
        return checks.skipped(AFTER_CREDENTIALS[3:], f"project {project} failed")
    name = found.body.get("name") if isinstance(found.body, dict) else None
    checks.passed("project", f"project {project} ({name or 'unnamed'}) exists")
    await _check_workflow(http, project_url, settings, checks)
    return checks.results


async def _check_api_version(
    http: HttpClient, api: str, version: int, checks: Checks
) -> None:
    try:
        reply = await fetch(http, f"{api}/serverInfo")
    except DestinationError as exc:
        hint = ""
        if exc.status == 404 and version == 3:
            hint = "no /rest/api/3 here: Jira Data Center needs api_version: 2"
        checks.error("api_version", exc, hint)
        return

    info = reply.body if isinstance(reply.body, dict) else {}
    kind = str(info.get("deploymentType") or "")
    where = f"Jira {kind or 'of unknown deployment'} {info.get('version', '')}"
    if version == 3 and kind and kind != "Cloud":
        checks.failed(
            "api_version", f"{where.strip()}: api_version 3 is for Jira Cloud; use 2"
        )
    elif version == 2 and kind == "Cloud":
        checks.failed(
            "api_version",
            f"{where.strip()}: Jira Cloud removed /rest/api/2/search, which "
            "finding tickets needs; use api_version 3 with email and API token",
        )
    else:
        checks.passed("api_version", f"{where.strip()} answers /rest/api/{version}")


async def _check_workflow(
    http: HttpClient, project_url: str, settings: JiraSettings, checks: Checks
) -> None:
    try:
        reply = await fetch(http, f"{project_url}/statuses")
    except DestinationError as exc:
        checks.error("issue_type", exc)
        checks.skipped(["resolve_transition"], "statuses unreadable")
        return

    body = reply.body if isinstance(reply.body, list) else []
    types = [t for t in body if isinstance(t, dict)]
    wanted = settings.issue_type
    chosen = next((t for t in types if t.get("name") == wanted), None)
    if chosen is None:
        known = ", ".join(repr(t.get("name")) for t in types) or "none"
        checks.failed(
            "issue_type",
            f"project {settings.project} has no issue type {wanted!r} "
            f"(it has: {known})",
        )
        checks.skipped(["resolve_transition"], f"no issue type {wanted!r}")
        return
    checks.passed("issue_type", f"issue type {wanted!r} exists")

    statuses = [s for s in chosen.get("statuses") or [] if isinstance(s, dict)]
    checks.results.append(_resolve_check(settings.resolve_transition, wanted, statuses))


def _resolve_check(
    transition: str, issue_type: str, statuses: list[dict[str, Any]]
) -> ProbeResult:
    done = [s for s in statuses if _category(s) == "done"]
    names = ", ".join(repr(s.get("name")) for s in done)
    if not done:
        return ProbeResult(
            "resolve_transition",
            False,
            f"the workflow of {issue_type!r} has no status in the done category: "
            "no transition can resolve a ticket",
        )
    wanted = transition.casefold()
    same = next(
        (s for s in statuses if str(s.get("name", "")).casefold() == wanted), None
    )
    if same is not None and _category(same) != "done":
        return ProbeResult(
            "resolve_transition",
            False,
            f"status {same.get('name')!r} is in category {_category(same)!r}, "
            f"not done: a ticket moved there reads as open (done statuses: {names})",
        )
    if same is not None:
        return ProbeResult(
            "resolve_transition", True, f"leads to done status {same.get('name')!r}"
        )
    return ProbeResult(
        "resolve_transition",
        True,
        f"no status named {transition!r}; Jira lists transition names only per "
        f"issue, so the name is checked at the first resolve (done statuses: "
        f"{names})",
    )


def _category(status: dict[str, Any]) -> str:
    category = status.get("statusCategory")
    return str(category.get("key", "")) if isinstance(category, dict) else ""


def _credentials_hint(exc: DestinationError, version: int) -> str:
    if exc.status not in (401, 403):
        return ""
    if version == 3:
        return "check email and API token"
    return "check the personal access token"


def _search_hint(exc: DestinationError, version: int) -> str:
    if exc.status == 410:
        return (
            "this search endpoint was removed: tickets cannot be looked up "
            "after a lost answer; Jira Cloud needs api_version 3 (/search/jql)"
        )
    if isinstance(exc, PermanentError) and exc.status == 400:
        return "the project may be unknown to search"
    return ""


def _search_name(version: int) -> str:
    return "POST /search/jql" if version == 3 else "GET /search"
