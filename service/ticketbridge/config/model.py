"""The configuration's shape. Every field an operator may write is declared here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

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
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

NAME = r"^[a-z][a-z0-9_]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class JiraSettings(HttpSettings):
    type: Literal["jira"]
    api_version: Literal[2, 3] = 3
    project: str = Field(min_length=1)
    issue_type: str = "Incident"
    # Cloud (v3): email + API token (basic). Data Center (v2): bearer token.
    email: str | None = None
    token: SecretStr | None = None
    resolve_transition: str = "Done"
    label_prefix: str = "tb"
    # Jira Cloud's search is eventually consistent: a new issue can be missing
    # from JQL results for a few seconds.
    search_lag: float = Field(5.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _auth_matches_version(self) -> JiraSettings:
        if self.api_version == 3 and not self.email:
            raise ValueError("email is required for api_version 3 (Jira Cloud)")
        return self


class ServiceNowSettings(HttpSettings):
    type: Literal["servicenow"]
    table: str = "incident"
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    close_code: str = "Solved (Permanently)"
    resolved_state: str = "6"
    caller_id: str | None = None
    assignment_group: str | None = None


class WebhookSettings(HttpSettings):
    type: Literal["webhook"]
    verify_url: HttpUrl | None = Field(
        None, description="GET {verify_url}/{marker} must answer the ticket's state"
    )
    token: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)


DestinationSettings = Annotated[
    JiraSettings | ServiceNowSettings | WebhookSettings, Field(discriminator="type")
]

# Secret fields per destination type, filled from the environment or the
# credentials directory when not written inline.
SECRET_FIELDS = {"jira": ("token",), "servicenow": ("password",), "webhook": ("token",)}


class SpoolSource(Strict):
    type: Literal["spool"]
    path: Path
    incident_key: list[str] = Field(default_factory=lambda: ["source", "host", "check"])
    batch_size: int = Field(500, ge=1, le=10_000)


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
    kind: list[Literal["problem", "recovery", "acknowledgement", "update"]] | None = (
        None
    )
    severity: str | None = None
    host: str | None = None
    check: str | None = None
    fields: dict[str, FieldMatch] = Field(default_factory=dict)


class Route(Strict):
    name: str = Field(pattern=NAME)
    match: Match = Field(default_factory=Match)
    destinations: list[str] = Field(default_factory=list)
    drop: bool = False

    @model_validator(mode="after")
    def _drop_or_send(self) -> Route:
        if self.drop and self.destinations:
            raise ValueError("a drop route names no destinations")
        if not self.drop and not self.destinations:
            raise ValueError("name at least one destination, or set drop: true")
        return self


class LedgerSettings(Strict):
    path: Path = Path("var/ledger.sqlite3")


class HealthSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)


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
        # The file arrives as init data; the environment wins over it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _references(self) -> Config:
        for name in [*self.sources, *self.destinations]:
            if not re.fullmatch(NAME, name):
                raise ValueError(f"{name!r}: names are lower-case letters, digits, _")
        seen: set[str] = set()
        for route in self.routes:
            if route.name in seen:
                raise ValueError(f"routes: route name {route.name!r} used twice")
            seen.add(route.name)
            for dest in route.destinations:
                if dest not in self.destinations:
                    raise ValueError(
                        f"routes.{route.name}: unknown destination {dest!r} "
                        f"(known: {', '.join(sorted(self.destinations))})"
                    )
        return self
