"""Lifecycle decisions: what one event does to its incident's ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.helpers import make_event
from ticketbridge.config.model import Lifecycle, Route
from ticketbridge.lifecycle import History, Step, Ticket, decide, follow_owners

T0 = datetime.fromisoformat("2026-12-01T10:00:00+00:00")
OPEN = Ticket("1", "OPS-1", "tb-1", open=True)


def resolved(seconds_before: float = 60, **changes: Any) -> Ticket:
    fields: dict[str, Any] = {
        "ticket_id": "1",
        "ticket_key": "OPS-1",
        "marker": "tb-1",
        "open": False,
        "resolved_at": T0.timestamp() - seconds_before,
        "resolution": "Done",
        "closed_by": "bridge",
    }
    fields.update(changes)
    return Ticket(**fields)


def at(minute: int) -> datetime:
    return T0.replace(minute=minute)


def event(kind: str = "problem", minute: int = 0) -> Any:
    return make_event(kind=kind, occurred_at=at(minute).isoformat())


def rules(**changes: Any) -> Lifecycle:
    return Lifecycle.model_validate(changes)


SEEN_PROBLEM = History(last_problem_at=at(0))


def test_first_problem_creates_a_ticket() -> None:
    assert decide(event(), None, History(), rules()) == Step("create")


def test_repeat_problem_comments_by_default() -> None:
    assert decide(event(minute=5), OPEN, SEEN_PROBLEM, rules()).operation == "comment"


def test_repeat_problem_is_skipped_when_on_repeat_is_ignore() -> None:
    step = decide(event(minute=5), OPEN, SEEN_PROBLEM, rules(on_repeat="ignore"))
    assert step == Step("skip", "repeat problem ignored (on_repeat: ignore)")


def test_recovery_resolves_the_open_ticket() -> None:
    step = decide(event("recovery", 5), OPEN, SEEN_PROBLEM, rules())
    assert step.operation == "resolve"


def test_recovery_only_comments_when_resolve_on_recovery_is_false() -> None:
    step = decide(
        event("recovery", 5), OPEN, SEEN_PROBLEM, rules(resolve_on_recovery=False)
    )
    assert step.operation == "comment"


def test_problem_within_the_reopen_window_reopens() -> None:
    step = decide(event(), resolved(60), SEEN_PROBLEM, rules(reopen_window="1h"))
    assert step.operation == "reopen"


def test_problem_after_the_reopen_window_opens_a_new_ticket() -> None:
    step = decide(event(), resolved(7200), SEEN_PROBLEM, rules(reopen_window="1h"))
    assert step.operation == "create"
    assert "past reopen_window" in step.reason


def test_default_reopen_window_never_reopens() -> None:
    step = decide(event(), resolved(1), SEEN_PROBLEM, rules())
    assert step.operation == "create"
    assert "reopen_window is 0" in step.reason


def test_wont_fix_resolution_is_never_reopened() -> None:
    ticket = resolved(60, resolution="won't fix")
    step = decide(event(), ticket, SEEN_PROBLEM, rules(reopen_window="1h"))
    assert step.operation == "create"
    assert "wont_fix" in step.reason


def test_ticket_closed_by_a_person_is_not_reopened() -> None:
    ticket = resolved(60, closed_by="person")
    step = decide(event(), ticket, SEEN_PROBLEM, rules(reopen_window="1h"))
    assert step.operation == "create"


def test_destination_without_reopen_gets_a_new_ticket() -> None:
    step = decide(
        event(), resolved(60), SEEN_PROBLEM, rules(reopen_window="1h"), can_reopen=False
    )
    assert step.operation == "create"


def test_recovery_without_a_known_problem_is_skipped() -> None:
    """BC-21 sequence A: no ticket, no write, no retry."""
    step = decide(event("recovery"), None, History(), rules())
    assert step == Step("skip", "recovery without a known problem")


def test_recovery_older_than_the_last_recovery_is_skipped() -> None:
    history = History(last_problem_at=at(0), last_recovery_at=at(10))
    step = decide(event("recovery", 5), OPEN, history, rules())
    assert step.operation == "skip"
    assert "older than the recovery" in step.reason


def test_recovery_older_than_the_last_problem_does_not_resolve() -> None:
    history = History(last_problem_at=at(10))
    step = decide(event("recovery", 5), OPEN, history, rules())
    assert step.operation == "skip"
    assert "older than the problem" in step.reason


def test_late_problem_older_than_a_seen_recovery_is_skipped() -> None:
    """BC-21 sequence B: the late problem must not leave an open ticket."""
    history = History(last_recovery_at=at(5))
    step = decide(event("problem", 0), None, history, rules())
    assert step.operation == "skip"
    assert step.reason.startswith("late problem")


def test_acknowledgement_comments_on_the_open_ticket() -> None:
    step = decide(event("acknowledgement", 5), OPEN, SEEN_PROBLEM, rules())
    assert step.operation == "comment"


def test_flapping_is_skipped_when_on_flapping_is_ignore() -> None:
    step = decide(
        event("flappingstart", 5), OPEN, SEEN_PROBLEM, rules(on_flapping="ignore")
    )
    assert step == Step("skip", "flapping ignored (on_flapping: ignore)")


def test_downtime_is_skipped_when_on_downtime_is_ignore() -> None:
    step = decide(
        event("downtimestart", 5), OPEN, SEEN_PROBLEM, rules(on_downtime="ignore")
    )
    assert step.operation == "skip"


def test_acknowledgement_without_an_open_ticket_is_skipped() -> None:
    step = decide(event("acknowledgement"), resolved(), SEEN_PROBLEM, rules())
    assert step == Step("skip", "no open ticket")


def test_copy_of_a_notification_is_skipped_as_duplicate() -> None:
    """BC-06: one notification per contact is still one event."""
    history = History(duplicate_of="2001")
    step = decide(event(), None, history, rules())
    assert step == Step("skip", "duplicate of event 2001")


def test_reopen_window_accepts_units() -> None:
    assert rules(reopen_window="15m").reopen_window == 900
    assert rules(reopen_window=90).reopen_window == 90


def test_reopen_window_refuses_text_that_is_no_duration() -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        rules(reopen_window="soon")


# -- who gets an event at ingest ----------------------------------------------


def test_follow_up_goes_to_the_owner_not_the_new_route() -> None:
    """Route switched old -> new while the ticket is open in old."""
    targets = follow_owners(
        event("recovery"), ["jira_new"], (), {}, {"snow_old": OPEN}, rules()
    )
    assert [t.destination for t in targets] == ["snow_old"]


def test_problem_without_owner_goes_where_the_route_says() -> None:
    owners = {"snow_old": resolved(7200)}
    targets = follow_owners(event(), ["jira_new"], (), {}, owners, rules())
    assert [t.destination for t in targets] == ["jira_new"]


def test_problem_that_will_reopen_stays_with_the_owner() -> None:
    owners = {"snow_old": resolved(60)}
    targets = follow_owners(
        event(), ["jira_new"], (), {}, owners, rules(reopen_window="1h")
    )
    assert [t.destination for t in targets] == ["snow_old"]


def test_problem_reaches_every_routed_destination_when_only_some_hold_it() -> None:
    """One destination still holds the last ticket, another resolved its own.

    Found by the crash campaign: the second destination lost the new problem.
    """
    owners = {"jira_new": OPEN, "hook": resolved(5)}
    targets = follow_owners(event(), ["jira_new", "hook"], (), {}, owners, rules())
    assert [t.destination for t in targets] == ["jira_new", "hook"]


def test_recovery_reaches_routed_destinations_without_a_ticket_too() -> None:
    """They record "no open ticket"; the history shows where the event went."""
    targets = follow_owners(
        event("recovery"), ["jira_new", "hook"], (), {}, {"jira_new": OPEN}, rules()
    )
    assert [t.destination for t in targets] == ["jira_new", "hook"]


def test_create_in_flight_makes_an_owner() -> None:
    targets = follow_owners(
        event("recovery"), ["jira_new"], (), {}, {"snow_old": None}, rules()
    )
    assert [t.destination for t in targets] == ["snow_old"]


def test_shadow_destination_without_a_ticket_is_added_as_shadow() -> None:
    targets = follow_owners(event(), ["snow_old"], ["jira_new"], {}, {}, rules())
    assert [(t.destination, t.role) for t in targets] == [
        ("snow_old", ""),
        ("jira_new", "shadow"),
    ]


def test_shadow_destination_holding_a_real_ticket_gets_its_follow_ups() -> None:
    """The route went back to shadow while the new system held the incident."""
    targets = follow_owners(
        event("recovery"), ["snow_old"], ["jira_new"], {}, {"jira_new": OPEN}, rules()
    )
    assert [(t.destination, t.role) for t in targets] == [("jira_new", "")]


def test_mirror_targets_name_their_twin() -> None:
    twins = {"snow_old": "jira_new", "jira_new": "snow_old"}
    targets = follow_owners(event(), ["snow_old", "jira_new"], (), twins, {}, rules())
    assert [(t.destination, t.twin) for t in targets] == [
        ("snow_old", "jira_new"),
        ("jira_new", "snow_old"),
    ]


def test_route_mode_requires_old_and_new() -> None:
    with pytest.raises(ValueError, match="needs both old and new"):
        Route.model_validate({"name": "m", "mode": "mirror", "old": "a"})
