"""The circuit breaker's state machine, on a clock the tests move by hand."""

from __future__ import annotations

import logging

import pytest

from ticketbridge.breaker import Breaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Changes:
    """Records each transition the breaker reports."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, CircuitState, str]] = []

    async def __call__(
        self, destination: str, state: CircuitState, reason: str
    ) -> None:
        self.seen.append((destination, state, reason))

    @property
    def states(self) -> list[CircuitState]:
        return [state for _, state, _ in self.seen]


class Probe:
    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        return self.answers.pop(0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def breaker(clock: Clock, changes: Changes) -> Breaker:
    return Breaker("jira", 3, 60.0, clock=clock, on_change=changes)


async def fail(breaker: Breaker, times: int) -> None:
    for n in range(times):
        await breaker.failure(f"HTTP 503 #{n}")


async def test_a_new_breaker_is_closed_and_allows_sending(breaker: Breaker) -> None:
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allows()
    assert breaker.cooldown_left() == 0


async def test_failures_below_the_threshold_keep_it_closed(
    breaker: Breaker, changes: Changes
) -> None:
    await fail(breaker, 2)
    assert breaker.allows()
    assert changes.seen == []


async def test_the_threshold_th_failure_in_a_row_opens_it(
    breaker: Breaker, changes: Changes
) -> None:
    await fail(breaker, 3)

    assert breaker.state is CircuitState.OPEN
    assert not breaker.allows()
    assert breaker.cooldown_left() == 60.0
    [(destination, state, reason)] = changes.seen
    assert (destination, state) == ("jira", CircuitState.OPEN)
    assert "3 transient failures in a row" in reason and "HTTP 503 #2" in reason


async def test_a_success_ends_the_streak(breaker: Breaker) -> None:
    await fail(breaker, 2)
    await breaker.success()
    await fail(breaker, 2)
    assert breaker.allows()


async def test_failures_of_requests_sent_before_opening_do_not_extend_the_cooldown(
    breaker: Breaker, clock: Clock, changes: Changes
) -> None:
    await fail(breaker, 3)
    clock.now += 50
    await fail(breaker, 5)

    assert breaker.cooldown_left() == 10.0
    assert changes.states == [CircuitState.OPEN]


async def test_no_probe_before_the_cooldown_is_over(
    breaker: Breaker, clock: Clock
) -> None:
    await fail(breaker, 3)
    clock.now += 59.9
    probe = Probe(True)

    assert await breaker.try_close(probe) is False
    assert probe.calls == 0
    assert breaker.state is CircuitState.OPEN


async def test_a_probe_that_reaches_the_destination_closes_it(
    breaker: Breaker, clock: Clock, changes: Changes
) -> None:
    await fail(breaker, 3)
    clock.now += 60

    assert await breaker.try_close(Probe(True)) is True

    assert breaker.allows()
    assert changes.states == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    ]


async def test_a_failed_probe_opens_it_again_for_a_new_cooldown(
    breaker: Breaker, clock: Clock, changes: Changes
) -> None:
    await fail(breaker, 3)
    clock.now += 60

    assert await breaker.try_close(Probe(False)) is False

    assert breaker.state is CircuitState.OPEN
    assert breaker.cooldown_left() == 60.0
    assert changes.states[-2:] == [CircuitState.HALF_OPEN, CircuitState.OPEN]


async def test_after_closing_it_takes_a_full_streak_to_open_again(
    breaker: Breaker, clock: Clock
) -> None:
    await fail(breaker, 3)
    clock.now += 60
    await breaker.try_close(Probe(True))

    await fail(breaker, 2)
    assert breaker.allows()
    await fail(breaker, 1)
    assert not breaker.allows()


async def test_a_crashing_probe_counts_as_failed(
    breaker: Breaker, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> bool:
        raise RuntimeError("boom")

    await fail(breaker, 3)
    clock.now += 60
    with caplog.at_level(logging.ERROR):
        assert await breaker.try_close(broken) is False
    assert breaker.state is CircuitState.OPEN
    assert "circuit probe failed" in caplog.text


async def test_a_failing_observer_does_not_stop_the_breaker(clock: Clock) -> None:
    async def broken(destination: str, state: CircuitState, reason: str) -> None:
        raise RuntimeError("ledger down")

    breaker = Breaker("jira", 1, 5.0, clock=clock, on_change=broken)
    await breaker.failure("HTTP 503")
    assert breaker.state is CircuitState.OPEN


async def test_each_transition_is_logged_with_destination_and_state(
    breaker: Breaker, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ticketbridge.breaker"):
        await fail(breaker, 3)
        clock.now += 60
        await breaker.try_close(Probe(True))

    lines = [
        (r.getMessage().split(":")[0], r.__dict__["circuit"]) for r in caplog.records
    ]
    assert lines == [
        ("circuit open", "open"),
        ("circuit half_open", "half_open"),
        ("circuit closed", "closed"),
    ]
    assert all(r.__dict__["destination"] == "jira" for r in caplog.records)


def test_states_have_the_metric_values() -> None:
    assert [int(s) for s in CircuitState] == [0, 1, 2]
