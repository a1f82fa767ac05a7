"""The environment's part of the config, kept to what the file defines.

`TICKETBRIDGE_<PATH>` variables override settings of the sources and
destinations the file defines; they never add one. A variable left behind
for an entry the file no longer has would otherwise make a half-defined
entry, so removing or renaming a destination could not be done by editing
the file alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from pydantic_settings import PydanticBaseSettingsSource

log = logging.getLogger(__name__)

# The sections whose entries only the file may create.
NAMED_SECTIONS = ("sources", "destinations")


class EnvironmentLeftover(Exception):
    """Variables that name an entry the file does not define.

    `problems` are lines of `path: message`, each naming a variable to unset.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class FileScopedEnvironment(PydanticBaseSettingsSource):
    """Wraps the environment source: drops or refuses entries not in the file.

    A variable that only supplies a secret for a destination the file does not
    define is ignored with a warning; any other such variable is an error.
    """

    def __init__(
        self,
        environment: PydanticBaseSettingsSource,
        file: Mapping[str, Any],
        env_prefix: str,
        secret_fields: frozenset[str],
    ) -> None:
        super().__init__(environment.settings_cls)
        self._environment = environment
        self._file = file
        self._prefix = env_prefix.lower()
        self._secret_fields = secret_fields

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        # Never called: __call__ returns the wrapped source's whole result.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data = self._environment()
        problems: list[str] = []
        for section in NAMED_SECTIONS:
            entries = data.get(section)
            if not isinstance(entries, dict):
                continue
            defined = self._file.get(section)
            defined = defined if isinstance(defined, dict) else {}
            for name in [n for n in entries if n not in defined]:
                problems += self._leftover(section, name, entries.pop(name))
            if not entries:
                del data[section]
        if problems:
            raise EnvironmentLeftover(problems)
        return data

    def _leftover(self, section: str, name: str, value: object) -> list[str]:
        variables = self._variables(section, name)
        shown = ", ".join(variables) or f"{self._prefix.upper()}{section.upper()}"
        secret_only = (
            section == "destinations"
            and isinstance(value, dict)
            and set(value) <= self._secret_fields
        )
        if secret_only:
            log.warning(
                "secret for a destination the file does not define ignored",
                extra={"destination": name, "variable": shown},
            )
            return []
        return [
            f"{section}.{name}: set only by the environment ({shown}) but the "
            f"file defines no {section[:-1]} {name!r}; unset {shown} or define "
            f"{name} in the file"
        ]

    def _variables(self, section: str, name: str) -> list[str]:
        """The environment variables, as spelled, that set `section.name`."""
        stem = f"{self._prefix}{section}__{name}".lower()
        return sorted(
            key
            for key in os.environ
            if key.lower() == stem or key.lower().startswith(stem + "__")
        )
