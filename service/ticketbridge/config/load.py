"""Reading the configuration: YAML file, environment overrides, credential files."""

from __future__ import annotations

import logging
import os
import ssl
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import HttpUrl, ValidationError

from ticketbridge.config.environment import EnvironmentLeftover
from ticketbridge.config.model import SECRET_FIELDS, Config
from ticketbridge.config.web import (
    WebConfig,
    WebConfigError,
    read_web_config,
    server_ssl_context,
)
from ticketbridge.templates import TemplateError, reserved_field_problems, templates_for

log = logging.getLogger(__name__)

DEST_TYPES = frozenset(SECRET_FIELDS)


class ConfigError(Exception):
    """A config that cannot be used. `problems` are lines of `path: message`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate one config file; raise ConfigError naming each field."""
    environ = os.environ if environ is None else environ
    data = read_yaml(path)

    problems = inline_secret_problems(path, data)
    if problems:
        raise ConfigError(str(path), problems)

    add_credential_files(data, environ.get("CREDENTIALS_DIRECTORY"))
    try:
        config = Config(**data)
    except ValidationError as exc:
        raise ConfigError(str(path), describe(exc)) from None
    except EnvironmentLeftover as exc:
        raise ConfigError(str(path), exc.problems) from None

    problems = template_problems(config)
    if problems:
        raise ConfigError(str(path), problems)

    load_web_config(path, config)
    return config


def load_web_config(
    path: Path, config: Config
) -> tuple[WebConfig, ssl.SSLContext | None]:
    """Read `health.web_config_file` and build its TLS context, if it has one.

    Problems are reported against the main config `path`, each prefixed with
    the field and the web config file so the operator knows which file to fix.
    No file means plain HTTP without auth.
    """
    web_path = config.health.web_config_file
    if web_path is None:
        return WebConfig(), None
    try:
        web = read_web_config(web_path)
        tls = web.tls_server_config
        context = None if tls is None else server_ssl_context(tls)
    except WebConfigError as exc:
        where = f"health.web_config_file: {web_path}"
        raise ConfigError(str(path), [f"{where}: {p}" for p in exc.problems]) from None
    return web, context


def template_problems(config: Config) -> list[str]:
    """Compile every destination's templates and render them against samples."""
    problems: list[str] = []
    for name, settings in config.destinations.items():
        where = f"destinations.{name}.templates"
        problems += reserved_field_problems(where, settings.type, settings.templates)
        try:
            templates = templates_for(where, settings.templates)
        except TemplateError as exc:
            problems.append(str(exc))
            continue
        problems += templates.check()
    return problems


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["not UTF-8 text"]) from None

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f"line {where.line + 1} column {where.column + 1}: " if where else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{line}YAML syntax: {problem}"]) from None

    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the file must be a mapping of settings"])
    return data


def inline_secret_problems(path: Path, data: Mapping[str, Any]) -> list[str]:
    """Inline secrets are allowed only in a file that others cannot read."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return []

    problems = []
    for dest, settings in secret_bearing(data):
        for name in SECRET_FIELDS[settings["type"]]:
            if settings.get(name):
                problems.append(
                    f"destinations.{dest}.{name}: secret written inline in a file "
                    "readable by other users; move it to the environment or the "
                    "credentials directory, or chmod 600 the file"
                )
    return problems


def add_credential_files(data: dict[str, Any], directory: str | None) -> None:
    """Fill missing secrets from `<directory>/<destination>.<field>` files."""
    if not directory:
        return
    for dest, settings in secret_bearing(data):
        for name in SECRET_FIELDS[settings["type"]]:
            candidate = Path(directory) / f"{dest}.{name}"
            if settings.get(name) or not candidate.is_file():
                continue
            settings[name] = candidate.read_text(encoding="utf-8").strip()


def secret_bearing(data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    destinations = data.get("destinations")
    if not isinstance(destinations, dict):
        return []
    return [
        (name, settings)
        for name, settings in destinations.items()
        if isinstance(settings, dict) and settings.get("type") in DEST_TYPES
    ]


def describe(exc: ValidationError) -> list[str]:
    """Each pydantic error as `dotted.path: message`, as the operator wrote it."""
    lines = []
    for error in exc.errors(include_url=False):
        parts = strip_union_tags(error["loc"])
        message = error["msg"]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # The entry as a whole fails on its `type`: name that field.
            parts.append("type")
            message = "missing or unknown type: " + message
        path = ".".join(str(part) for part in parts)
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif error["type"] == "missing":
            message = "required, not given"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def strip_union_tags(loc: tuple[int | str, ...]) -> list[int | str]:
    """Drop the discriminator tag pydantic puts in paths: sources.x.spool.path."""
    parts = list(loc)
    tagged = len(parts) >= 3 and parts[0] in ("sources", "destinations")
    if tagged and parts[2] in (*DEST_TYPES, "spool", "sql"):
        del parts[2]
    return parts


def summarise(config: Config) -> str:
    """The human summary `check-config` prints."""
    lines = [f"poll_interval: {config.poll_interval}s, ledger: {config.ledger.path}"]
    lines.append("sources:")
    for name, source in config.sources.items():
        where = getattr(source, "path", None) or getattr(source, "database", "")
        lines.append(f"  {name}: {source.type} {where}")
    lines.append("destinations:")
    for name, dest in config.destinations.items():
        lines.append(f"  {name}: {dest.type} {shown_url(dest.url)}")
    lines.append("routes (first match wins):")
    for route in config.routes:
        target = "drop" if route.drop else ", ".join(route.destinations)
        if route.mode is not None:
            target = f"{route.mode} (old: {route.old}, new: {route.new})"
        lines.append(f"  {route.name}: -> {target}")
    return "\n".join(lines)


def shown_url(url: HttpUrl) -> str:
    """A destination URL safe to print: scheme, host and port only.

    A URL may carry a user and password, and a webhook's path is often its
    secret (hooks.example/T0/B0/<token>), so neither is ever shown.
    """
    port = f":{url.port}" if url.port and url.port != _DEFAULT_PORTS[url.scheme] else ""
    path = "/..." if url.path not in (None, "", "/") else ""
    return f"{url.scheme}://{url.host}{port}{path}"


_DEFAULT_PORTS = {"http": 80, "https": 443}
