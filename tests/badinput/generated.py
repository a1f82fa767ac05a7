"""Corpus cases generated with Hypothesis, derandomized so the corpus is stable.

Hypothesis is used here as a generator, not as a test runner: a `@given`
function collects what it is handed, and the same seed gives the same cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T = TypeVar("T")

FIELDS = ("id", "kind", "host", "check", "severity", "summary", "details")

_SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def collect(strategy: st.SearchStrategy[T], count: int = 60) -> list[T]:
    """`count` values drawn from `strategy`, the same ones on every run."""
    found: list[T] = []

    @settings(_SETTINGS, max_examples=count)
    @given(strategy)
    def draw(value: T) -> None:
        found.append(value)

    draw()
    return found[:count]


def non_object_documents() -> list[Any]:
    """JSON documents whose top level is anything but an object."""
    not_object = json_scalars | st.lists(json_values, max_size=4)
    return collect(not_object, 50)


def wrong_type_events() -> list[dict[str, Any]]:
    """Event objects whose fields hold arbitrary JSON values."""
    event = st.fixed_dictionaries(
        {},
        optional={name: json_values for name in FIELDS},
    )
    return collect(event, 60)


def hostile_events() -> list[dict[str, Any]]:
    """Valid-looking events with arbitrary Unicode in every field."""
    any_text = st.text(
        st.characters(codec="utf-8", exclude_categories=()), min_size=0, max_size=200
    )
    event = st.fixed_dictionaries(
        {
            "id": any_text,
            "kind": st.sampled_from(["problem", "recovery", "ack", "update"]),
            "host": any_text,
            "check": any_text,
            "severity": any_text,
            "summary": any_text,
            "details": any_text,
        }
    )
    return collect(event, 60)


def random_blobs() -> list[bytes]:
    return collect(st.binary(min_size=0, max_size=300), 40)


def truncations() -> list[bytes]:
    """A valid event file cut at an arbitrary byte."""
    full = json.dumps(
        {
            "id": "cut",
            "kind": "problem",
            "host": "web01",
            "summary": "né à Zürich 🔥",
        },
        ensure_ascii=False,
    ).encode("utf-8")
    cut: Callable[[int], bytes] = lambda n: full[:n]  # noqa: E731
    return [cut(n) for n in collect(st.integers(0, len(full) - 1), 30)]
