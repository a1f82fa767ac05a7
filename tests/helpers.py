"""Builders shared by the tests: configs, events, spool files."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import yaml

from ticketbridge.events import Event, event_from_mapping


def make_event(**fields: Any) -> Event:
    data: dict[str, Any] = {
        "id": "e1",
        "kind": "problem",
        "host": "web01",
        "check": "HTTP",
        "severity": "CRITICAL",
        "summary": "HTTP 503",
        "occurred_at": "2026-12-01T10:00:00Z",
    }
    data.update(fields)
    source = data.pop("source", "nagios")
    return event_from_mapping(source, data)


def base_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "poll_interval": 0.2,
        "ledger": {"path": str(tmp_path / "ledger.sqlite3")},
        "health": {"host": "127.0.0.1", "port": 0},
        "sources": {"nagios": {"type": "spool", "path": str(tmp_path / "spool")}},
        "destinations": {
            "jira_new": {
                "type": "jira",
                "url": "http://127.0.0.1:9",
                "project": "OPS",
                "email": "bridge@example.invalid",
                "token": "jira-secret-token",
            }
        },
        "routes": [{"name": "all", "destinations": ["jira_new"]}],
    }
    config.update(overrides)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


def write_spool_event(spool: Path, name: str, **fields: Any) -> Path:
    data: dict[str, Any] = {
        "id": name,
        "kind": "problem",
        "host": "web01",
        "check": "HTTP",
        "severity": "CRITICAL",
        "summary": "HTTP 503",
    }
    data.update(fields)
    path = spool / f"{name}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def free_port() -> int:
    """A loopback port nobody listens on now; a server bound later may race."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def last_json_line(output: str) -> dict[str, Any] | None:
    """The last line of `output` that is a JSON object, e.g. a set-up's facts."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            facts: dict[str, Any] = json.loads(line)
            return facts
    return None
