"""What a sandbox instance accepts: its projects, credentials and choices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

# Resolution codes found on current and older ServiceNow instances.
DEFAULT_CLOSE_CODES = (
    "Solution provided",
    "Workaround provided",
    "Resolved by caller",
    "Resolved by change",
    "Resolved by problem",
    "Duplicate",
    "User error",
    "Known error",
    "Solved (Permanently)",
    "Solved (Work Around)",
    "Closed/Resolved by Caller",
    "Not Solved (Not Reproducible)",
    "Not Solved (Too Costly)",
)


@dataclass(frozen=True)
class SandboxSettings:
    """Configuration of one sandbox.

    `token`, when set, is the only secret accepted: the password of a Basic
    credential or the Bearer token. `close_codes` set to None accepts any code
    (and sys_choice then lists no close codes). `faults` is a rate profile
    (see `rates`) in force from the start.
    """

    jira_projects: tuple[str, ...] = ("OPS",)
    token: str | None = None
    close_codes: tuple[str, ...] | None = DEFAULT_CLOSE_CODES
    # Listed by GET /project/{key}; create accepts any issue type regardless.
    jira_issue_types: tuple[str, ...] = ("Incident", "Task", "Bug")
    # None: /rest/api/3 acts as Jira Cloud, /rest/api/2 as Data Center, both
    # with the old search. "Cloud": the old search is gone (410), as on Jira
    # Cloud since 2025, on both versions.
    jira_deployment: str | None = None
    faults: dict[str, Any] | None = None


SETTINGS = web.AppKey("sandbox_settings", SandboxSettings)
