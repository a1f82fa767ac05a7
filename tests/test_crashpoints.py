"""The crash-point test hook: off unless asked, exact about what it accepts."""

from __future__ import annotations

import pytest

from ticketbridge.crashpoints import parse


def test_points_and_probabilities_are_read() -> None:
    assert parse("after_ingest:0.05, during_verify:1") == {
        "after_ingest": 0.05,
        "during_verify": 1.0,
    }


def test_empty_setting_crashes_nowhere() -> None:
    assert parse("") == {}


def test_a_point_without_probability_always_crashes() -> None:
    assert parse("during_reload") == {"during_reload": 1.0}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("after_lunch:0.5", "unknown crash point 'after_lunch'"),
        ("after_ingest:often", "not a number"),
        ("after_ingest:2", "must be in 0..1"),
    ],
)
def test_bad_setting_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse(text)
