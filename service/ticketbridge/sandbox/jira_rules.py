"""What the imitated Jira accepts: its workflow and its field checks.

Each check returns the ErrorCollection `errors` entries Jira would send, so
the handlers only decide between 400 and going ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ticketbridge.sandbox import adf

SUMMARY_MAX = 254
LABEL_MAX = 255
NOT_STRING = "Operation value must be a string"
NOT_ADF = (
    "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
)


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    sources: tuple[str, ...]
    target: str


STATUSES = {
    s.name: s
    for s in (
        Status("1", "Open", "new"),
        Status("3", "In Progress", "indeterminate"),
        Status("10001", "Done", "done"),
    )
}
TRANSITIONS = (
    Transition("11", "Start Progress", ("Open",), "In Progress"),
    Transition("21", "Stop Progress", ("In Progress",), "Open"),
    Transition("31", "Done", ("Open", "In Progress"), "Done"),
    Transition("41", "Reopen", ("Done",), "Open"),
)
CATEGORY_NAMES = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}


def available(status: str) -> list[Transition]:
    """The transitions offered from `status`; Jira lists no others."""
    return [t for t in TRANSITIONS if status in t.sources]


def is_done(status: str) -> bool:
    return STATUSES[status].category == "done"


def project_ids(known: tuple[str, ...]) -> dict[str, str]:
    """Project ids as Jira would number them: in the order they were made."""
    return {key: str(10000 + n) for n, key in enumerate(known)}


def check_create(
    fields: dict[str, Any], known: tuple[str, ...], *, v3: bool
) -> tuple[dict[str, str], str]:
    """Field errors of a create request, and the project key it names."""
    problems: dict[str, str] = {}
    project = _project_key(fields.get("project"), known)
    if project is None:
        problems["project"] = "Specify a valid project ID or key"
    issuetype = fields.get("issuetype")
    if not isinstance(issuetype, dict) or not (
        issuetype.get("name") or issuetype.get("id")
    ):
        problems["issuetype"] = "Specify an issue type"
    summary = fields.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        problems["summary"] = "You must specify a summary of the issue."
    elif len(summary) > SUMMARY_MAX:
        problems["summary"] = "Summary must be less than 255 characters."
    label_problem = _check_labels(fields.get("labels"))
    if label_problem:
        problems["labels"] = label_problem
    description_problem = check_text(fields.get("description"), v3=v3)
    if description_problem:
        problems["description"] = description_problem
    return problems, project or ""


def check_text(value: object, *, v3: bool, required: bool = False) -> str | None:
    """Why a description or comment body has the wrong form for this version."""
    if value is None or value == "":
        return "Comment body can not be empty!" if required else None
    if v3:
        return None if adf.is_document(value) else NOT_ADF
    return None if isinstance(value, str) else NOT_STRING


def check_transition(
    transition: Transition, body: dict[str, Any], *, v3: bool
) -> tuple[dict[str, str], str | None, list[object]]:
    """Field errors of a transition request, its resolution and comments."""
    problems: dict[str, str] = {}
    resolution: str | None = None
    fields = body.get("fields") or {}
    for name, value in fields.items() if isinstance(fields, dict) else ():
        if name == "resolution" and is_done(transition.target):
            resolution = value.get("name") if isinstance(value, dict) else None
        else:
            problems[name] = _off_screen(name)
    comments: list[object] = []
    update = body.get("update") or {}
    for name, operations in update.items() if isinstance(update, dict) else ():
        if name != "comment" or not isinstance(operations, list):
            problems[name] = _off_screen(name)
            continue
        for operation in operations:
            added = operation.get("add") if isinstance(operation, dict) else None
            text = added.get("body") if isinstance(added, dict) else None
            problem = check_text(text, v3=v3, required=True)
            if problem:
                problems["comment"] = problem
            comments.append(text)
    return problems, resolution, comments


def _project_key(project: object, known: tuple[str, ...]) -> str | None:
    if not isinstance(project, dict):
        return None
    key = project.get("key")
    if isinstance(key, str) and key in known:
        return key
    by_id = {v: k for k, v in project_ids(known).items()}
    return by_id.get(str(project.get("id")))


def _check_labels(labels: object) -> str | None:
    if labels is None:
        return None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return "Labels must be a list of strings."
    for label in labels:
        if not label or any(c.isspace() for c in label):
            return f"The label '{label}' contains spaces which is invalid."
        if len(label) > LABEL_MAX:
            return (
                f"The label '{label}' exceeds the maximum length for a single "
                f"label of {LABEL_MAX} characters"
            )
    return None


def _off_screen(name: str) -> str:
    return (
        f"Field '{name}' cannot be set. "
        "It is not on the appropriate screen, or unknown."
    )
