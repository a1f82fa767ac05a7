"""The sliver of JQL the sandbox understands: `labels` and `project` equality.

Clauses are joined by AND, e.g. `project = OPS AND labels = "corr-1"`.
Anything else is refused loudly rather than half-understood, so a client that
builds richer queries learns it here instead of getting wrong results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_CLAUSE = re.compile(
    r"""\s*(?P<field>labels|project)\s*=\s*
        (?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[A-Za-z0-9._-]+))\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)


class JqlError(ValueError):
    """A query outside the supported subset; the message is shown to the client."""


@dataclass(frozen=True)
class Query:
    labels: tuple[str, ...]
    projects: tuple[str, ...]

    def matches(self, project: str, labels: Sequence[str]) -> bool:
        return all(p == project for p in self.projects) and all(
            label in labels for label in self.labels
        )


def parse(text: str) -> Query:
    """Parse `text`, or raise JqlError naming what is supported."""
    if not text.strip():
        raise JqlError(
            "Unbounded JQL queries are not allowed here. "
            'Use labels = "value", optionally AND project = KEY.'
        )
    labels: list[str] = []
    projects: list[str] = []
    for part in _AND.split(text.strip()):
        clause = _CLAUSE.fullmatch(part)
        if clause is None:
            raise JqlError(
                f"Error in the JQL Query: cannot parse '{part.strip()}'. "
                'Supported: labels = "value" and project = KEY joined by AND.'
            )
        quoted = clause["quoted"]
        value = (
            re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else clause["bare"]
        )
        if clause["field"].lower() == "labels":
            labels.append(value)
        else:
            projects.append(value.upper())  # project keys ignore case in JQL
    return Query(tuple(labels), tuple(projects))
