"""Invalid configurations: mutations of a valid one, each naming the field at fault.

A mutation edits a copy of a config (as loaded from YAML) in place and returns
the field path the refusal must name. The mutations only assume what every
config has: at least one source, destination and route; so the same set runs
against config/demo.yaml and against an integration test's config.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Mutation = Callable[[dict[str, Any]], str]

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"


@dataclass(frozen=True)
class BadConfig:
    name: str
    mutate: Mutation

    def apply(self, base: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A mutated copy of `base` and the path its refusal must name."""
        config = copy.deepcopy(base)
        return config, self.mutate(config)


def demo_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    return data


def _first(config: dict[str, Any], section: str) -> tuple[str, dict[str, Any]]:
    name = next(iter(config[section]))
    return name, config[section][name]


def _of_type(config: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    for name, settings in config["destinations"].items():
        if settings["type"] == kind:
            return name, settings
    raise LookupError(kind)


def _set(section: str, key: str, value: Any) -> Mutation:
    def mutate(config: dict[str, Any]) -> str:
        name, settings = _first(config, section)
        settings[key] = value
        return f"{section}.{name}.{key}"

    return mutate


def _set_top(key: str, value: Any) -> Mutation:
    def mutate(config: dict[str, Any]) -> str:
        config[key] = value
        return key

    return mutate


def _set_nested(section: str, key: str, value: Any) -> Mutation:
    def mutate(config: dict[str, Any]) -> str:
        config.setdefault(section, {})[key] = value
        return f"{section}.{key}"

    return mutate


def _drop(section: str, key: str) -> Mutation:
    def mutate(config: dict[str, Any]) -> str:
        name, settings = _first(config, section)
        settings.pop(key)
        return f"{section}.{name}.{key}"

    return mutate


def _drop_top(key: str) -> Mutation:
    def mutate(config: dict[str, Any]) -> str:
        config.pop(key)
        return key

    return mutate


def _last_route(edit: Callable[[dict[str, Any]], str]) -> Mutation:
    def mutate(config: dict[str, Any]) -> str:
        index = len(config["routes"]) - 1
        return f"routes.{index}" + edit(config["routes"][index])

    return mutate


def _destination(kind: str, key: str, value: Any) -> Mutation:
    def mutate(config: dict[str, Any]) -> str:
        try:
            name, settings = _of_type(config, kind)
        except LookupError:
            name, settings = _first(config, "destinations")
        settings[key] = value
        return f"destinations.{name}.{key}"

    return mutate


def _route_regex(pattern: str) -> Callable[[dict[str, Any]], str]:
    def edit(route: dict[str, Any]) -> str:
        route.setdefault("match", {})["fields"] = {"check": {"regex": pattern}}
        return ".match.fields.check"

    return edit


def _duplicate_route(config: dict[str, Any]) -> str:
    config["routes"].append(copy.deepcopy(config["routes"][-1]))
    return "routes"


def _unknown_destination(config: dict[str, Any]) -> str:
    route = config["routes"][-1]
    route.pop("drop", None)
    route["destinations"] = ["nowhere"]
    return f"routes.{route['name']}"


def _rename(section: str, new: str) -> Mutation:
    def mutate(config: dict[str, Any]) -> str:
        name, settings = _first(config, section)
        config[section] = {new: settings, **config[section]}
        del config[section][name]
        for route in config["routes"]:
            route["destinations"] = [
                new if d == name else d for d in route.get("destinations", [])
            ]
        return f"{section}.{new}"

    return mutate


def bad_configs() -> list[BadConfig]:
    """Every invalid config; at least 100."""
    found: list[BadConfig] = []

    def add(name: str, mutation: Mutation) -> None:
        found.append(BadConfig(name, mutation))

    numbers = ["ten", "10 minutes", "1h", "PT10S", -1, 0, 1e9, [], {"s": 1}, None]
    for key in ("poll_interval", "failure_threshold", "shutdown_timeout"):
        for value in numbers:
            add(f"{key}={value!r}", _set_top(key, value))

    for key, value in [
        ("jira_oops", {"x": 1}),
        ("poll_intervall", 5),
        ("sourcez", {}),
        ("metrics", {"port": 1}),
    ]:
        add(f"unknown top-level key {key}", _set_top(key, value))
    add("unknown ledger key", _set_nested("ledger", "pth", "x"))
    add("unknown health key", _set_nested("health", "hots", "x"))
    add("unknown source key", _set("sources", "paht", "x"))
    add("unknown destination key", _set("destinations", "projct", "x"))
    add(
        "unknown route key",
        _last_route(lambda r: (r.update(destination="x"), ".destination")[1]),
    )
    add(
        "unknown match key",
        _last_route(
            lambda r: (r.setdefault("match", {}).update(hostname="x"), ".match")[1]
        ),
    )

    for key in ("sources", "destinations", "routes"):
        add(f"missing {key}", _drop_top(key))
        add(f"empty {key}", _set_top(key, [] if key == "routes" else {}))
    add("source without type", _drop("sources", "type"))
    add("spool without path", _drop("sources", "path"))
    add("destination without url", _drop("destinations", "url"))
    add("jira without project", _destination("jira", "project", ""))
    add("servicenow without username", _destination("servicenow", "username", ""))
    add("route without name", _last_route(lambda r: (r.pop("name"), ".name")[1]))

    urls = ["not a url", "ftp://127.0.0.1/", "http://", "", 42, "127.0.0.1:8765"]
    for kind in ("jira", "servicenow"):
        for url in urls:
            add(f"{kind} url {url!r}", _destination(kind, "url", url))

    for key, value in [
        ("timeout", 0),
        ("timeout", -5),
        ("timeout", "3s"),
        ("timeout", 1000),
        ("backoff_initial", -1),
        ("backoff_max", 0),
        ("backoff_max", "5 min"),
        ("concurrency", 0),
        ("concurrency", 100),
        ("concurrency", "four"),
        ("max_attempts", 0),
        ("verify_tls", "maybe"),
        ("api_version", 4),
        ("ca_bundle", ["a"]),
    ]:
        add(f"destination {key}={value!r}", _destination("jira", key, value))

    for value in (-1, 70000, "http"):
        add(f"health port {value!r}", _set_nested("health", "port", value))
    add("ledger path not text", _set_nested("ledger", "path", ["a"]))

    for key, value in [
        ("batch_size", 0),
        ("batch_size", 20000),
        ("incident_key", "host"),
        ("settle_seconds", -1),
        ("type", "kafka"),
        ("path", None),
    ]:
        add(f"source {key}={value!r}", _set("sources", key, value))
    add("destination type bugzilla", _set("destinations", "type", "bugzilla"))

    add("duplicate route names", _duplicate_route)
    add("route to an unknown destination", _unknown_destination)
    for pattern in ["([", "[a-", "*x", "(?P<x", "a{2,1}", "(?<=a+)b"]:
        add(f"bad regex {pattern!r}", _last_route(_route_regex(pattern)))

    def two_tests(route: dict[str, Any]) -> str:
        route.setdefault("match", {})["fields"] = {"host": {"equals": "a", "glob": "b"}}
        return ".match.fields.host"

    def no_test(route: dict[str, Any]) -> str:
        route.setdefault("match", {})["fields"] = {"host": {}}
        return ".match.fields.host"

    def drop_and_send(route: dict[str, Any]) -> str:
        route["drop"] = True
        route["destinations"] = ["x"]
        return ""

    def neither(route: dict[str, Any]) -> str:
        route.pop("drop", None)
        route["destinations"] = []
        return ""

    def unknown_kind(route: dict[str, Any]) -> str:
        route.setdefault("match", {})["kind"] = ["critical"]
        return ".match.kind.0"

    def bad_name(route: dict[str, Any]) -> str:
        route["name"] = "Bad Name"
        return ".name"

    def host_list(route: dict[str, Any]) -> str:
        route.setdefault("match", {})["host"] = ["web*"]
        return ".match.host"

    for edit in (two_tests, no_test, drop_and_send, neither, unknown_kind, bad_name):
        add(f"route: {edit.__name__}", _last_route(edit))
    add("route: host_list", _last_route(host_list))
    add("source name in capitals", _rename("sources", "Nagios"))
    add("destination name with a dash", _rename("destinations", "jira-new"))
    add("routes not a list", _set_top("routes", {"all": {}}))
    add("sources a list", _set_top("sources", ["nagios"]))
    return found


# Whole files that are not a mapping of settings at all, and the phrase the
# refusal must carry.
BROKEN_FILES: list[tuple[str, str]] = [
    ("poll_interval: 0\njira_oops: {\n", "YAML syntax"),
    ("sources: [unclosed\n", "YAML syntax"),
    ("- a list\n- of things\n", "mapping of settings"),
    ("just text\n", "mapping of settings"),
    ("", "mapping of settings"),
    ("\tpoll_interval: 1\n", "YAML syntax"),
]
