"""What a reload reports as changed."""

from pathlib import Path

from tests.helpers import base_config
from ticketbridge.config import Config
from ticketbridge.config.diff import config_changes


def config(tmp_path: Path, **overrides: object) -> Config:
    return Config(**base_config(tmp_path, **overrides))


def test_an_identical_config_changes_nothing(tmp_path: Path) -> None:
    assert config_changes(config(tmp_path), config(tmp_path)) == {}


def test_routes_added_removed_and_changed_are_named(tmp_path: Path) -> None:
    old = config(
        tmp_path,
        routes=[
            {"name": "gone", "match": {"host": "x"}, "drop": True},
            {"name": "all", "destinations": ["jira_new"]},
        ],
    )
    new = config(
        tmp_path,
        routes=[
            {"name": "fresh", "match": {"host": "y"}, "drop": True},
            {"name": "all", "match": {"host": "web*"}, "destinations": ["jira_new"]},
        ],
    )

    assert config_changes(old, new) == {
        "routes_added": "fresh",
        "routes_removed": "gone",
        "routes_changed": "all",
    }


def test_a_destination_added_is_named_without_its_settings(tmp_path: Path) -> None:
    old = config(tmp_path)
    destinations = dict(base_config(tmp_path)["destinations"])
    destinations["hook"] = {
        "type": "webhook",
        "url": "http://user:hook-secret@127.0.0.1:9/x",
    }
    new = config(tmp_path, destinations=destinations)

    assert config_changes(old, new) == {"destinations_added": "hook"}
