"""What a reload changes, named for the log: routes, destinations, sources.

Only names are reported, never settings, so no secret reaches the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ticketbridge.config.model import Config

SETTINGS = ("poll_interval", "failure_threshold", "shutdown_timeout")


def config_changes(old: Config, new: Config) -> dict[str, str]:
    """Non-empty entries such as routes_added="db,web"; empty when nothing changed.

    Route order matters (first match wins), so a new order of the same routes
    is a change of its own.
    """
    old_routes = {route.name: route for route in old.routes}
    new_routes = {route.name: route for route in new.routes}
    changes = {
        **_named("routes", old_routes, new_routes),
        **_named("destinations", old.destinations, new.destinations),
        **_named("sources", old.sources, new.sources),
    }

    kept = [name for name in old_routes if name in new_routes]
    if kept != [name for name in new_routes if name in old_routes]:
        changes["routes_reordered"] = ",".join(
            name for name in new_routes if name in old_routes
        )
    settings = [name for name in SETTINGS if getattr(old, name) != getattr(new, name)]
    if settings:
        changes["settings_changed"] = ",".join(settings)
    return changes


def _named(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, str]:
    found = {
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
        "changed": [name for name in new if name in old and old[name] != new[name]],
    }
    return {f"{kind}_{what}": ",".join(names) for what, names in found.items() if names}
