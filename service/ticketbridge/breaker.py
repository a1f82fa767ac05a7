"""A circuit breaker per destination: stop sending to a system that is down.

    closed ──threshold transient failures in a row──▶ open
    open ──cooldown over──▶ half-open: run the probe
    half-open ──probe reached the system──▶ closed
    half-open ──probe failed transiently──▶ open (a new cooldown)

While the circuit is not closed the sender takes no deliveries of the
destination: they stay in the ledger as they are, pending or retrying, and
their failure counts do not grow, so a long outage does not make them dead.
Only transient failures count (5xx, timeouts, resets); a 4xx means the system
answered, and a 429 is the Retry-After pause's business, not ours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from enum import IntEnum

log = logging.getLogger(__name__)


class CircuitState(IntEnum):
    """The value is the metric's: 0 closed, 1 open, 2 half-open."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


OnChange = Callable[[str, CircuitState, str], Awaitable[None]]
"""Observer of each transition: (destination, new state, reason)."""

Probe = Callable[[], Awaitable[bool]]
"""True when the destination answered (whatever its configuration problems)."""


class Breaker:
    """One destination's circuit. Not thread-safe; one event loop owns it."""

    def __init__(
        self,
        destination: str,
        threshold: int,
        cooldown: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: OnChange | None = None,
    ) -> None:
        self.destination = destination
        self.threshold = threshold
        self.cooldown = cooldown
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._clock = clock
        self._on_change = on_change
        self._opened_at = 0.0

    def allows(self) -> bool:
        """Whether deliveries may be sent now."""
        return self.state is CircuitState.CLOSED

    def cooldown_left(self) -> float:
        """Seconds until an open circuit may be probed; 0 when not open."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    async def success(self) -> None:
        """The destination answered a request: the failure streak ends."""
        self.failures = 0

    async def failure(self, reason: str) -> None:
        """A transient failure; the threshold-th in a row opens the circuit.

        A failure while not closed comes from a request sent before the
        circuit opened; it neither extends nor restarts the cool-down.
        """
        if self.state is not CircuitState.CLOSED:
            return
        self.failures += 1
        if self.failures >= self.threshold:
            await self._open(f"{self.failures} transient failures in a row: {reason}")

    async def try_close(self, probe: Probe) -> bool:
        """After the cool-down, probe (half-open) and close or open again.

        Returns whether the circuit is closed afterwards. Does nothing while
        the cool-down runs.
        """
        if self.state is CircuitState.CLOSED:
            return True
        if self.cooldown_left() > 0:
            return False

        await self._move(CircuitState.HALF_OPEN, "cool-down over, probing")
        try:
            reached = await probe()
        except Exception as exc:
            # A broken probe must not leave the circuit half-open for ever.
            log.exception("circuit probe failed", extra=self._fields())
            reached, reason = False, f"probe error: {exc}"
        else:
            reason = "probe could not reach the destination"
        if reached:
            self.failures = 0
            await self._move(CircuitState.CLOSED, "probe reached the destination")
            return True
        await self._open(reason)
        return False

    async def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        await self._move(CircuitState.OPEN, reason)

    async def _move(self, state: CircuitState, reason: str) -> None:
        self.state = state
        level = logging.INFO if state is CircuitState.CLOSED else logging.WARNING
        log.log(level, "circuit %s: %s", state.label, reason, extra=self._fields(state))
        if self._on_change is None:
            return
        try:
            await self._on_change(self.destination, state, reason)
        except Exception:
            # An observer (metrics, ledger status) must not stop the sender.
            log.exception("circuit observer failed", extra=self._fields(state))

    def _fields(self, state: CircuitState | None = None) -> dict[str, object]:
        fields: dict[str, object] = {"destination": self.destination}
        if state is not None:
            fields["circuit"] = state.label
        return fields
