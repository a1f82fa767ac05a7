"""The read-only Jira endpoints a preflight probe asks: who am I, which
server, which project, which issue types and statuses.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ticketbridge.sandbox import jira_rules as rules
from ticketbridge.sandbox.jira_rules import STATUSES
from ticketbridge.sandbox.settings import SETTINGS

SEARCH_REMOVED = (
    "The requested API has been removed. Please migrate to the "
    "/rest/api/3/search/jql API."
)


def routes(version: str) -> list[web.RouteDef]:
    base = f"/rest/api/{version}"
    return [
        web.get(f"{base}/myself", myself),
        web.get(f"{base}/serverInfo", server_info),
        web.get(f"{base}/project/{{project}}", project),
        web.get(f"{base}/project/{{project}}/statuses", project_statuses),
    ]


def deployment(request: web.Request) -> str:
    """Cloud or DataCenter, as this request's API version answers it."""
    chosen = request.app[SETTINGS].jira_deployment
    if chosen is not None:
        return chosen
    return "Cloud" if request.match_info["version"] == "3" else "DataCenter"


def old_search_removed(request: web.Request) -> bool:
    return request.app[SETTINGS].jira_deployment == "Cloud"


async def myself(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "self": f"{_base(request)}/myself",
            "accountId": "557058:sandbox-user",
            "accountType": "atlassian",
            "displayName": "Sandbox User",
            "active": True,
            "timeZone": "UTC",
        }
    )


async def server_info(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "baseUrl": f"{request.scheme}://{request.host}",
            "version": "1001.0.0-SNAPSHOT",
            "versionNumbers": [1001, 0, 0],
            "deploymentType": deployment(request),
            "buildNumber": 100000,
            "serverTitle": "Jira sandbox",
        }
    )


async def project(request: web.Request) -> web.Response:
    key = request.match_info["project"]
    ids = rules.project_ids(request.app[SETTINGS].jira_projects)
    if key not in ids:
        return _no_project(key)
    return web.json_response(
        {
            "self": f"{_base(request)}/project/{ids[key]}",
            "id": ids[key],
            "key": key,
            "name": f"{key} sandbox project",
            "projectTypeKey": "software",
            "issueTypes": [
                {k: v for k, v in t.items() if k != "statuses"}
                for t in _issue_types(request)
            ],
        }
    )


async def project_statuses(request: web.Request) -> web.Response:
    key = request.match_info["project"]
    if key not in request.app[SETTINGS].jira_projects:
        return _no_project(key)
    return web.json_response(_issue_types(request))


def _issue_types(request: web.Request) -> list[dict[str, Any]]:
    statuses = [
        {
            "id": s.id,
            "name": s.name,
            "untranslatedName": s.name,
            "statusCategory": {
                "key": s.category,
                "name": rules.CATEGORY_NAMES[s.category],
            },
        }
        for s in STATUSES.values()
    ]
    return [
        {
            "id": str(10001 + n),
            "name": name,
            "subtask": False,
            "statuses": statuses,
        }
        for n, name in enumerate(request.app[SETTINGS].jira_issue_types)
    ]


def _no_project(key: str) -> web.Response:
    body = {"errorMessages": [f"No project could be found with key '{key}'."]}
    return web.json_response({**body, "errors": {}}, status=404)


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/rest/api/{request.match_info['version']}"
