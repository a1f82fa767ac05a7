"""The Jira REST API subset ticketbridge uses, on /rest/api/2 and /rest/api/3.

v2 carries descriptions and comment bodies as plain strings, v3 as Atlassian
Document Format (ADF) trees; each version refuses the other's form, so a
client that mixes them up fails here as it would against Jira.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiohttp import web

from ticketbridge.sandbox import adf, jira_meta, jql
from ticketbridge.sandbox import jira_rules as rules
from ticketbridge.sandbox.jira_rules import STATUSES, Status, Transition
from ticketbridge.sandbox.settings import SETTINGS
from ticketbridge.sandbox.store import STORE, Comment, JiraIssue, Store, now

VERSION = r"{version:2|3|latest}"
NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def error(
    status: int, messages: Iterable[str] = (), errors: dict[str, str] | None = None
) -> web.Response:
    """An ErrorCollection, the body of every Jira 4xx."""
    body = {"errorMessages": list(messages), "errors": errors or {}}
    return web.json_response(body, status=status)


def routes() -> list[web.RouteDef]:
    base = f"/rest/api/{VERSION}"
    return [
        web.post(f"{base}/issue", create_issue),
        web.get(f"{base}/issue/{{key}}", get_issue),
        web.get(f"{base}/issue/{{key}}/comment", list_comments),
        web.post(f"{base}/issue/{{key}}/comment", add_comment),
        web.get(f"{base}/issue/{{key}}/transitions", list_transitions),
        web.post(f"{base}/issue/{{key}}/transitions", do_transition),
        web.get(f"{base}/search", search),
        web.post(f"{base}/search", search),
        web.get(f"{base}/search/jql", search_jql),
        web.post(f"{base}/search/jql", search_jql),
        *jira_meta.routes(VERSION),
    ]


# Handlers


async def create_issue(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if body is None:
        return error(400, ["The request body is not a JSON object."])
    fields = body.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    known = request.app[SETTINGS].jira_projects
    problems, project = rules.check_create(fields, known, v3=_is_v3(request))
    if problems:
        return error(400, errors=problems)

    store = request.app[STORE]
    issue_id, key = store.next_jira_id(project)
    issuetype = fields["issuetype"]
    store.jira[issue_id] = JiraIssue(
        id=issue_id,
        key=key,
        project=project,
        issuetype=str(issuetype.get("name") or issuetype.get("id")),
        summary=fields["summary"],
        labels=list(fields.get("labels") or []),
        description=adf.to_text(fields.get("description")),
        created=now(),
    )
    self_url = f"{_base(request)}/issue/{issue_id}"
    return web.json_response({"id": issue_id, "key": key, "self": self_url}, status=201)


async def get_issue(request: web.Request) -> web.Response:
    issue = _find(request)
    if issue is None:
        return error(404, [NOT_FOUND])
    wanted = _wanted_fields(request.query.get("fields"), default="*all")
    return web.json_response(_issue_json(request, issue, wanted))


async def list_comments(request: web.Request) -> web.Response:
    issue = _find(request)
    if issue is None:
        return error(404, [NOT_FOUND])
    return web.json_response(_comments_json(request, issue))


async def add_comment(request: web.Request) -> web.Response:
    issue = _find(request)
    if issue is None:
        return error(404, [NOT_FOUND])
    body = await _json_object(request)
    if body is None:
        return error(400, ["The request body is not a JSON object."])
    problem = rules.check_text(body.get("body"), v3=_is_v3(request), required=True)
    if problem:
        return error(400, errors={"comment": problem})
    comment = _append_comment(request.app[STORE], issue, body["body"])
    return web.json_response(_comment_json(request, issue, comment), status=201)


async def list_transitions(request: web.Request) -> web.Response:
    issue = _find(request)
    if issue is None:
        return error(404, [NOT_FOUND])
    offered = [_transition_json(t) for t in rules.available(issue.status)]
    return web.json_response({"expand": "transitions", "transitions": offered})


async def do_transition(request: web.Request) -> web.Response:
    issue = _find(request)
    if issue is None:
        return error(404, [NOT_FOUND])
    body = await _json_object(request)
    if body is None:
        return error(400, ["The request body is not a JSON object."])
    requested = body.get("transition")
    wanted = str(requested.get("id")) if isinstance(requested, dict) else ""
    if not wanted:
        return error(400, ["Missing 'transition' identifier"])
    transition = next(
        (t for t in rules.available(issue.status) if t.id == wanted), None
    )
    if transition is None:
        return error(400, [f"Transition id '{wanted}' is not valid for this issue."])
    problems, resolution, comments = rules.check_transition(
        transition, body, v3=_is_v3(request)
    )
    if problems:
        return error(400, errors=problems)

    issue.status = transition.target
    done = rules.is_done(transition.target)
    issue.resolution = (resolution or "Done") if done else None
    issue.updated = now()
    for text in comments:
        _append_comment(request.app[STORE], issue, text)
    return web.Response(status=204)


async def search(request: web.Request) -> web.Response:
    if jira_meta.old_search_removed(request):
        return error(410, [jira_meta.SEARCH_REMOVED])
    params = await _search_params(request)
    if isinstance(params, web.Response):
        return params
    matches = _run_jql(request, params.get("jql"))
    if isinstance(matches, web.Response):
        return matches
    try:
        start = int(params.get("startAt", 0))
        limit = int(params.get("maxResults", 50))
    except (TypeError, ValueError):
        return error(400, ["startAt and maxResults must be numbers."])
    wanted = _wanted_fields(params.get("fields"), default="*navigable")
    page = matches[start : start + limit]
    return web.json_response(
        {
            "expand": "schema,names",
            "startAt": start,
            "maxResults": limit,
            "total": len(matches),
            "issues": [_issue_json(request, i, wanted) for i in page],
        }
    )


async def search_jql(request: web.Request) -> web.Response:
    params = await _search_params(request)
    if isinstance(params, web.Response):
        return params
    matches = _run_jql(request, params.get("jql"))
    if isinstance(matches, web.Response):
        return matches
    try:
        limit = int(params.get("maxResults", 50))
        start = _decode_token(params.get("nextPageToken"))
    except (TypeError, ValueError):
        return error(400, ["maxResults or nextPageToken is invalid."])
    # Unlike the old search, only the id comes back unless fields are asked for.
    wanted = _wanted_fields(params.get("fields"), default="id")
    page = matches[start : start + limit]
    is_last = start + limit >= len(matches)
    result: dict[str, Any] = {
        "issues": [_issue_json(request, i, wanted) for i in page],
        "isLast": is_last,
    }
    if not is_last:
        result["nextPageToken"] = f"page-{start + limit}"
    return web.json_response(result)


# Search helpers


async def _search_params(request: web.Request) -> dict[str, Any] | web.Response:
    if request.method == "GET":
        return dict(request.query)
    body = await _json_object(request)
    return (
        error(400, ["The request body is not a JSON object."]) if body is None else body
    )


def _run_jql(request: web.Request, text: object) -> list[JiraIssue] | web.Response:
    try:
        query = jql.parse(text if isinstance(text, str) else "")
    except jql.JqlError as exc:
        return error(400, [str(exc)])
    known = request.app[SETTINGS].jira_projects
    for project in query.projects:
        if project not in known:
            return error(
                400, [f"The value '{project}' does not exist for the field 'project'."]
            )
    store = request.app[STORE]
    issues = sorted(store.jira.values(), key=lambda i: int(i.id))
    # Jira's search index lags behind writes; GET by id does not.
    return [
        i
        for i in issues
        if query.matches(i.project, i.labels) and store.searchable(i.created)
    ]


def _decode_token(token: object) -> int:
    if token is None or token == "":
        return 0
    if not isinstance(token, str) or not token.startswith("page-"):
        raise ValueError(token)
    return int(token.removeprefix("page-"))


# Rendering


def _issue_json(
    request: web.Request, issue: JiraIssue, wanted: set[str] | None
) -> dict[str, Any]:
    """An IssueBean; `wanted` None means every field, an empty set only the id."""
    if wanted is not None and not wanted:
        return {"id": issue.id}
    status = STATUSES[issue.status]
    project_id = rules.project_ids(request.app[SETTINGS].jira_projects).get(
        issue.project
    )
    fields: dict[str, Any] = {
        "summary": issue.summary,
        "labels": list(issue.labels),
        "status": _status_json(status),
        "description": _render_text(request, issue.description),
        "comment": _comments_json(request, issue),
        "resolution": {"name": issue.resolution} if issue.resolution else None,
        "project": {"key": issue.project, "id": project_id},
        "issuetype": {"name": issue.issuetype},
        "created": _jira_time(issue.created),
        "updated": _jira_time(issue.updated),
    }
    if wanted is not None:
        fields = {k: v for k, v in fields.items() if k in wanted}
    return {
        "id": issue.id,
        "key": issue.key,
        "self": f"{_base(request)}/issue/{issue.id}",
        "fields": fields,
    }


def _wanted_fields(value: object, *, default: str) -> set[str] | None:
    if value is None or value == "" or value == []:
        value = default
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list):
        return None
    cleaned = {str(n).strip() for n in names}
    if cleaned & {"*all", "*navigable"}:
        return None
    return cleaned - {"id", "key"}


def _status_json(status: Status) -> dict[str, Any]:
    category = {"key": status.category, "name": rules.CATEGORY_NAMES[status.category]}
    return {"id": status.id, "name": status.name, "statusCategory": category}


def _transition_json(transition: Transition) -> dict[str, Any]:
    return {
        "id": transition.id,
        "name": transition.name,
        "to": _status_json(STATUSES[transition.target]),
        "hasScreen": False,
        "isGlobal": False,
        "isInitial": False,
        "isAvailable": True,
        "isConditional": False,
    }


def _comments_json(request: web.Request, issue: JiraIssue) -> dict[str, Any]:
    comments = [_comment_json(request, issue, c) for c in issue.comments]
    return {
        "comments": comments,
        "maxResults": len(comments),
        "total": len(comments),
        "startAt": 0,
    }


def _comment_json(
    request: web.Request, issue: JiraIssue, comment: Comment
) -> dict[str, Any]:
    created = _jira_time(comment.created)
    return {
        "id": comment.id,
        "self": f"{_base(request)}/issue/{issue.id}/comment/{comment.id}",
        "author": {"displayName": "Sandbox User", "active": True},
        "body": _render_text(request, comment.text),
        "created": created,
        "updated": created,
    }


def _render_text(request: web.Request, text: str | None) -> object:
    if text is None or not _is_v3(request):
        return text
    return adf.from_text(text)


# Helpers


def _find(request: web.Request) -> JiraIssue | None:
    store: Store = request.app[STORE]
    return store.find_jira(request.match_info["key"])


def _append_comment(store: Store, issue: JiraIssue, body: object) -> Comment:
    comment = Comment(store.next_comment_id(), adf.to_text(body) or "", now())
    issue.comments.append(comment)
    issue.updated = comment.created
    return comment


def _is_v3(request: web.Request) -> bool:
    return request.match_info["version"] == "3"


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/rest/api/{request.match_info['version']}"


def _jira_time(moment: datetime) -> str:
    return (
        moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    )
