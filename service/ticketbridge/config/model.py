"""The configuration's shape. Every field an operator may write is declared here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ticketbridge.config.environment import FileScopedEnvironment

T = TypeVar("T")

NAME = r"^[a-z][a-z0-9_]{0,62}$"

# Severities as monitoring sources send them (Nagios service and host states),
# compared case-insensitively, to the priority names of Jira's default scheme.
JIRA_PRIORITIES = {
    "critical": "Highest",
    "down": "Highest",
    "unreachable": "High",
    "warning": "Medium",
    "unknown": "Medium",
    "ok": "Low",
    "up": "Low",
}
# The same severities as ServiceNow (impact, urgency).
SERVICENOW_PRIORITIES = {
    "critical": (1, 1),
    "down": (1, 1),
    "unreachable": (2, 1),
    "warning": (2, 2),
    "unknown": (2, 2),
    "ok": (3, 3),
    "up": (3, 3),
}
# Zendesk's four priorities.
ZendeskPriority = Literal["urgent", "high", "normal", "low"]
ZENDESK_PRIORITIES: dict[str, ZendeskPriority] = {
    "critical": "urgent",
    "down": "urgent",
    "unreachable": "high",
    "warning": "normal",
    "unknown": "normal",
    "ok": "low",
    "up": "low",
}
# RT stores a number; RT 5's default %PriorityAsString names 0 Low, 50 Medium
# and 100 High.
RT_PRIORITIES = {
    "critical": 100,
    "down": 100,
    "unreachable": 50,
    "warning": 50,
    "unknown": 50,
    "ok": 0,
    "up": 0,
}


def _lower_keys(value: dict[str, T]) -> dict[str, T]:
    lowered: dict[str, T] = {}
    for key, item in value.items():
        if key.lower() in lowered:
            raise ValueError(f"severity {key!r} given twice (case does not count)")
        lowered[key.lower()] = item
    return lowered


EventKindName = Literal[
    "problem", "recovery", "acknowledgement", "flapping", "downtime", "update"
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TemplateSettings(Strict):
    """Jinja2 templates of a destination's ticket text; None = the built-in text."""

    summary: str | None = None
    description: str | None = None
    fields: dict[str, str] = Field(
        default_factory=dict, description="extra ticket field -> template"
    )


class HttpSettings(Strict):
    """What every HTTP destination shares."""

    url: HttpUrl
    timeout: float = Field(10.0, gt=0, le=300, description="total seconds per request")
    concurrency: int = Field(4, ge=1, le=64)
    max_attempts: int = Field(
        4, ge=1, le=20, description="tries of one request before the failure counts"
    )
    backoff_initial: float = Field(1.0, gt=0, le=60)
    backoff_max: float = Field(300.0, gt=0, le=3600)
    search_lag: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="seconds a new ticket may stay out of lookups by marker",
    )
    ca_bundle: Path | None = None
    verify_tls: bool = True
    templates: TemplateSettings = TemplateSettings()


class JiraSettings(HttpSettings):
    type: Literal["jira"]
    api_version: Literal[2, 3] = 3
    project: str = Field(min_length=1)
    issue_type: str = "Incident"
    # Cloud (v3): email + API token (basic). Data Center (v2): bearer token.
    email: str | None = None
    token: SecretStr | None = None
    resolve_transition: str = "Done"
    reopen_transition: str = Field(
        "Reopen", description="transition (or target status) that reopens an issue"
    )
    label_prefix: str = "tb"
    priority_map: dict[str, str] = Field(
        default_factory=lambda: dict(JIRA_PRIORITIES),
        description="severity -> Jira priority name; {} sends no priority",
    )

    @field_validator("priority_map")
    @classmethod
    def _lower_severities(cls, value: dict[str, str]) -> dict[str, str]:
        return _lower_keys(value)

    # Jira Cloud knows users only by accountId (GDPR strict mode); a user name
    # is for Data Center only.
    assignee_account_id: str | None = Field(None, min_length=1)
    assignee: str | None = Field(None, min_length=1, description="Data Center only")
    # Jira Cloud's search is eventually consistent: a new issue can be missing
    # from JQL results for a few seconds.
    search_lag: float = Field(5.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _auth_matches_version(self) -> JiraSettings:
        if self.api_version == 3 and not self.email:
            raise ValueError("email is required for api_version 3 (Jira Cloud)")
        if self.api_version == 3 and self.assignee:
            raise ValueError(
                "assignee: Jira Cloud (api_version 3) accepts only an accountId; "
                "set assignee_account_id instead"
            )
        if self.assignee and self.assignee_account_id:
            raise ValueError("give assignee or assignee_account_id, not both")
        _refuse_url_credentials(self.url, "the token (and email)")
        return self


class ImpactUrgency(Strict):
    """ServiceNow derives an incident's priority from these two (1 is highest)."""

    impact: int = Field(ge=1, le=3)
    urgency: int = Field(ge=1, le=3)


class ServiceNowSettings(HttpSettings):
    type: Literal["servicenow"]
    table: str = "incident"
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    close_code: str = "Solved (Permanently)"
    resolved_state: str = "6"
    reopened_state: str = Field("2", description="state a reopened incident gets")
    caller_id: str | None = None
    assignment_group: str | None = None
    priority_map: dict[str, ImpactUrgency] = Field(
        default_factory=lambda: {
            k: ImpactUrgency(impact=i, urgency=u)
            for k, (i, u) in SERVICENOW_PRIORITIES.items()
        },
        description="severity -> impact and urgency; {} sends neither",
    )

    @field_validator("priority_map")
    @classmethod
    def _lower_severities(
        cls, value: dict[str, ImpactUrgency]
    ) -> dict[str, ImpactUrgency]:
        return _lower_keys(value)

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> ServiceNowSettings:
        _refuse_url_credentials(self.url, "username and password")
        return self


class WebhookSettings(HttpSettings):
    type: Literal["webhook"]
    verify_url: HttpUrl | None = Field(
        None, description="GET {verify_url}/{marker} must answer the ticket's state"
    )
    probe_url: HttpUrl | None = Field(
        None, description="GET target of the preflight probe; any 2xx passes"
    )
    token: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> WebhookSettings:
        # The HTTP client cannot send both; it fails every request instead.
        header = any(name.lower() == "authorization" for name in self.headers)
        if self.token is not None or header:
            _refuse_url_credentials(self.url, "the token")
            if self.verify_url is not None:
                _refuse_url_credentials(self.verify_url, "the token")
        return self


def _refuse_url_credentials(url: HttpUrl, instead: str) -> None:
    """A user or password in the URL cannot go with an Authorization header."""
    if url.username or url.password:
        raise ValueError(
            f"url: remove the user and password from the URL; this destination "
            f"logs in with {instead}"
        )


class ZendeskSettings(HttpSettings):
    type: Literal["zendesk"]
    # With an email: an API token (basic "email/token:TOKEN"); without: OAuth.
    email: str | None = None
    token: SecretStr | None = None
    ticket_type: Literal["problem", "incident", "question", "task"] = "incident"
    priority_map: dict[str, ZendeskPriority] = Field(
        default_factory=lambda: dict(ZENDESK_PRIORITIES),
        description="severity -> urgent, high, normal or low; {} sends none",
    )
    priority: ZendeskPriority | None = Field(
        None, description="sent for a severity that priority_map does not name"
    )
    group_id: int | None = Field(None, ge=1)
    tags: list[str] = Field(default_factory=lambda: ["ticketbridge"])

    @model_validator(mode="before")
    @classmethod
    def _one_priority_for_all(cls, data: object) -> object:
        # A config from before priority_map, with one `priority` for every
        # ticket, keeps meaning exactly that.
        if isinstance(data, dict) and data.get("priority") is not None:
            return {"priority_map": {}, **data}
        return data

    @field_validator("priority_map")
    @classmethod
    def _lower_severities(
        cls, value: dict[str, ZendeskPriority]
    ) -> dict[str, ZendeskPriority]:
        return _lower_keys(value)


class RedmineSettings(HttpSettings):
    type: Literal["redmine"]
    api_key: SecretStr | None = None
    project: str = Field(min_length=1, description="project id or identifier")
    tracker_id: int | None = Field(None, ge=1)
    # Priority ids differ between installations (GET
    # /enumerations/issue_priorities.json lists them), so there is no default.
    priority_map: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="severity -> Redmine priority id; {} sends none",
    )
    priority_id: int | None = Field(
        None, ge=1, description="sent for a severity that priority_map does not name"
    )
    custom_field_id: int = Field(
        ge=1, description="string custom field, 'used as a filter', for the marker"
    )
    resolved_status: str = Field("Resolved", min_length=1)
    reopened_status: str = Field("New", min_length=1)

    @field_validator("priority_map")
    @classmethod
    def _lower_severities(cls, value: dict[str, int]) -> dict[str, int]:
        return _lower_keys(value)


class RequestTrackerSettings(HttpSettings):
    type: Literal["request_tracker"]
    token: SecretStr | None = None
    queue: str = Field("General", min_length=1)
    custom_field: str = Field(
        "CorrelationKey", min_length=1, description="ticket custom field's name"
    )
    resolved_status: str = Field("resolved", min_length=1)
    reopened_status: str = Field("open", min_length=1)
    requestor: str | None = None
    priority_map: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: dict(RT_PRIORITIES),
        description="severity -> RT's numeric Priority; {} sends none",
    )

    @field_validator("priority_map")
    @classmethod
    def _lower_severities(cls, value: dict[str, int]) -> dict[str, int]:
        return _lower_keys(value)


DestinationSettings = Annotated[
    JiraSettings
    | ServiceNowSettings
    | WebhookSettings
    | ZendeskSettings
    | RedmineSettings
    | RequestTrackerSettings,
    Field(discriminator="type"),
]

# Secret fields per destination type, filled from the environment or the
# credentials directory when not written inline.
SECRET_FIELDS = {
    "jira": ("token",),
    "servicenow": ("password",),
    "webhook": ("token",),
    "zendesk": ("token",),
    "redmine": ("api_key",),
    "request_tracker": ("token",),
}


class SpoolSource(Strict):
    type: Literal["spool"]
    path: Path
    incident_key: list[str] = Field(default_factory=lambda: ["source", "host", "check"])
    batch_size: int = Field(500, ge=1, le=10_000)
    settle_seconds: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="a file that does not parse yet and changed this recently "
        "is taken as still being written and read again later",
    )


class SqlSource(Strict):
    type: Literal["sql"]
    database: Path
    table: str
    cursor_column: str
    columns: dict[str, str] = Field(
        description="event field -> column; needs id, kind and host at least"
    )
    processed_column: str | None = None
    incident_key: list[str] = Field(default_factory=lambda: ["source", "host", "check"])
    batch_size: int = Field(500, ge=1, le=10_000)

    @field_validator("table", "cursor_column", "processed_column")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not a plain SQL identifier")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        missing = {"id", "kind", "host"} - set(value)
        if missing:
            raise ValueError(f"missing mapping for {', '.join(sorted(missing))}")
        for column in value.values():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column):
                raise ValueError(f"{column!r} is not a plain SQL identifier")
        return value


SourceSettings = Annotated[SpoolSource | SqlSource, Field(discriminator="type")]


class FieldMatch(Strict):
    """One field test: exactly one of equals, one_of, glob, regex."""

    equals: str | None = None
    one_of: list[str] | None = None
    glob: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FieldMatch:
        given = [n for n in ("equals", "one_of", "glob", "regex") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, one_of, glob, regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from exc
        return self


class Match(Strict):
    """Globs on the common fields; `fields` tests any event field or raw field."""

    source: str | None = None
    kind: list[EventKindName] | None = None
    severity: str | None = None
    host: str | None = None
    check: str | None = None
    fields: dict[str, FieldMatch] = Field(default_factory=dict)


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds from a number or a text such as "90", "15m", "1h", "2d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 1h, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = DURATION.match(str(value))
        if found is None:
            text = str(value)[:40]
            raise ValueError(f"{text!r} is not a duration (e.g. 90s, 15m, 1h)")
        seconds = float(found.group(1)) * DURATION_UNITS[found.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


class Lifecycle(Strict):
    """What a route does with each event of an incident; defaults need no config."""

    on_repeat: Literal["comment", "ignore"] = "comment"
    resolve_on_recovery: bool = True
    reopen_window: float = Field(
        0.0, description="seconds after a resolve in which a problem reopens; 0 never"
    )
    wont_fix: list[str] = Field(
        default_factory=lambda: [
            "Won't Fix",
            "Won't Do",
            "Duplicate",
            "Cannot Reproduce",
        ],
        description="resolutions that are never reopened (compared case-insensitively)",
    )
    on_acknowledgement: Literal["comment", "ignore"] = "comment"
    on_flapping: Literal["comment", "ignore"] = "comment"
    on_downtime: Literal["comment", "ignore"] = "comment"

    @field_validator("reopen_window", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


DEFAULT_LIFECYCLE = Lifecycle()

Mode = Literal["old", "new", "mirror", "shadow"]


class Route(Strict):
    """Where matching events go: a `destinations` list, or a migration `mode`.

    With `mode`, `old` and `new` name the two systems: `old` or `new` sends
    to one of them, `mirror` to both (each ticket notes its twin), `shadow`
    to `old` while the `new` system's ticket is only rendered and logged.
    """

    name: str = Field(pattern=NAME)
    match: Match = Field(default_factory=Match)
    destinations: list[str] = Field(default_factory=list)
    drop: bool = False
    mode: Mode | None = None
    old: str | None = None
    new: str | None = None
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE

    @model_validator(mode="after")
    def _drop_or_send(self) -> Route:
        if self.mode is not None:
            return self._check_mode()
        if self.old or self.new:
            raise ValueError("old and new are used with mode: old|new|mirror|shadow")
        if self.drop and self.destinations:
            raise ValueError("a drop route names no destinations")
        if not self.drop and not self.destinations:
            raise ValueError("name at least one destination, or set drop: true")
        return self

    def _check_mode(self) -> Route:
        if self.drop or self.destinations:
            raise ValueError(
                f"mode {self.mode} takes old and new, not destinations or drop"
            )
        if not self.old or not self.new:
            raise ValueError(f"mode {self.mode} needs both old and new destinations")
        if self.old == self.new:
            raise ValueError("old and new must be two different destinations")
        return self

    def named_destinations(self) -> list[str]:
        """Every destination the route refers to, for reference checks."""
        return [*self.destinations, *(d for d in (self.old, self.new) if d)]


class LedgerSettings(Strict):
    path: Path = Path("var/ledger.sqlite3")


class HealthSettings(Strict):
    """The metrics/health server, and an optional heartbeat push to a watcher."""

    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)
    web_config_file: Path | None = Field(
        None, description="TLS and basic auth, exporter toolkit format"
    )
    push_url: HttpUrl | None = Field(
        None, description="requested after healthy poll cycles (dead man's switch)"
    )
    push_interval: float | None = Field(
        None, gt=0, le=86400, description="seconds between pushes; poll_interval"
    )
    push_method: Literal["GET", "POST"] = "GET"
    push_timeout: float = Field(5.0, gt=0, le=60)


class Config(BaseSettings):
    """The whole file. Environment variables TICKETBRIDGE_<PATH> override it."""

    model_config = SettingsConfigDict(
        env_prefix="TICKETBRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    poll_interval: float = Field(10.0, gt=0, le=3600)
    failure_threshold: int = Field(5, ge=1, le=1000)
    shutdown_timeout: float = Field(10.0, gt=0, le=300)
    probe_interval: float = Field(
        300.0, gt=0, le=86400, description="seconds between destination probes"
    )
    breaker_threshold: int = Field(
        5, ge=1, le=1000, description="transient failures in a row that open"
    )
    breaker_cooldown: float = Field(
        60.0, gt=0, le=3600, description="seconds a circuit stays open"
    )
    ledger: LedgerSettings = LedgerSettings()
    health: HealthSettings = HealthSettings()
    sources: dict[str, SourceSettings] = Field(min_length=1)
    destinations: dict[str, DestinationSettings] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init data; the environment wins over it, but
        # only for the sources and destinations the file defines.
        file = (
            init_settings.init_kwargs
            if isinstance(init_settings, InitSettingsSource)
            else {}
        )
        secrets = frozenset(f for fields in SECRET_FIELDS.values() for f in fields)
        prefix = cls.model_config.get("env_prefix", "")
        environment = FileScopedEnvironment(env_settings, file, prefix, secrets)
        return (environment, init_settings)

    @model_validator(mode="after")
    def _references(self) -> Config:
        for section, names in (
            ("sources", self.sources),
            ("destinations", self.destinations),
        ):
            for name in names:
                if not re.fullmatch(NAME, name):
                    raise ValueError(
                        f"{section}.{name}: names are lower-case letters, digits, _"
                    )
        seen: set[str] = set()
        for route in self.routes:
            if route.name in seen:
                raise ValueError(f"routes: route name {route.name!r} used twice")
            seen.add(route.name)
            for dest in route.named_destinations():
                if dest not in self.destinations:
                    raise ValueError(
                        f"routes.{route.name}: unknown destination {dest!r} "
                        f"(known: {', '.join(sorted(self.destinations))})"
                    )
        return self
