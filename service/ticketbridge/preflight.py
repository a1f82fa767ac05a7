"""Destination preflight: run the clients' probes, report them, judge configs.

Probes run at start-up, on every reload (for the new config, and the old one
when the new fails), every `probe_interval`, and when a circuit breaker
half-opens. Each result becomes the gauge
`ticketbridge_destination_probe_ok{destination,check}` and a log line; an
optional status observer hears of every probe and circuit transition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from ticketbridge.breaker import CircuitState
from ticketbridge.destinations.base import Destination, ProbeResult
from ticketbridge.metrics import Metrics

log = logging.getLogger(__name__)


class StatusObserver(Protocol):
    """Hears each probe run and each circuit transition of a destination.

    The signature is that of the ledger's `record_destination_status`, so
    the daemon can hand that method over as it is. `circuit_state` is
    "closed", "open" or "half_open".
    """

    async def __call__(
        self,
        destination: str,
        *,
        circuit_state: str | None = None,
        last_error: str | None = None,
        probes: list[ProbeResult] | None = None,
    ) -> None: ...


async def run_probe(name: str, destination: Destination) -> list[ProbeResult]:
    """The destination's probe; a probe that crashes is one failed check."""
    try:
        return await destination.probe()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("probe crashed", extra={"destination": name})
        return [ProbeResult("probe", False, f"probe crashed: {exc}")]


def passed(results: Iterable[ProbeResult]) -> bool:
    """Every check passed."""
    return all(r.ok for r in results)


def reachable(results: Iterable[ProbeResult]) -> bool:
    """The destination answered: no check failed for a transient reason."""
    return not any(r.transient for r in results)


def failures(results: Mapping[str, list[ProbeResult]]) -> list[str]:
    """Each failed check as `destinations.<name>: <check>: <detail>`."""
    return [
        f"destinations.{name}: preflight {r.check} failed: {r.detail}"
        for name, checks in results.items()
        for r in checks
        if not r.ok
    ]


class Preflight:
    """Runs probes and reports their results and circuit states."""

    def __init__(
        self, metrics: Metrics, observer: StatusObserver | None = None
    ) -> None:
        self.metrics = metrics
        self.observer = observer
        self._last: dict[str, list[ProbeResult]] = {}

    async def probe(self, name: str, destination: Destination) -> list[ProbeResult]:
        """Probe one destination and report the results."""
        results = await run_probe(name, destination)
        await self.report(name, results)
        return results

    async def probe_all(
        self, destinations: Mapping[str, Destination], *, report: bool = True
    ) -> dict[str, list[ProbeResult]]:
        """Probe every destination at once; report the results if asked."""
        names = list(destinations)
        runs = await asyncio.gather(*(run_probe(n, destinations[n]) for n in names))
        results = dict(zip(names, runs, strict=True))
        if report:
            await self.report_all(results)
        return results

    async def report_all(self, results: Mapping[str, list[ProbeResult]]) -> None:
        """Report a whole config's results; forget destinations no longer in it."""
        for name in set(self._last) - set(results):
            self.metrics.forget_destination(name)
            del self._last[name]
        for name, checks in results.items():
            await self.report(name, checks)

    async def report(self, name: str, results: list[ProbeResult]) -> None:
        """Gauges, log lines (failures loudly, unchanged passes quietly), observer."""
        before = {r.check: r.ok for r in self._last.get(name, [])}
        self._last[name] = results
        self.metrics.set_probe_results(name, [(r.check, r.ok) for r in results])

        for result in results:
            level = logging.ERROR
            if result.ok:
                changed = before.get(result.check) is not True
                level = logging.INFO if changed else logging.DEBUG
            log.log(
                level,
                "destination probe %s: %s",
                "passed" if result.ok else "failed",
                result.detail,
                extra={
                    "destination": name,
                    "check": result.check,
                    "ok": result.ok,
                    "detail": result.detail,
                },
            )
        if not passed(results):
            failed = ", ".join(r.check for r in results if not r.ok)
            log.error(
                "destination preflight failed",
                extra={"destination": name, "checks": failed},
            )

        last_error = next((r.detail for r in results if not r.ok), None)
        await self._notify(name, last_error=last_error, probes=results)

    async def circuit_changed(
        self, name: str, state: CircuitState, reason: str
    ) -> None:
        """A breaker's `on_change`: the gauge and the observer."""
        self.metrics.circuit_state.labels(name).set(int(state))
        error = reason if state is CircuitState.OPEN else None
        await self._notify(name, circuit_state=state.label, last_error=error)

    async def _notify(
        self,
        name: str,
        *,
        circuit_state: str | None = None,
        last_error: str | None = None,
        probes: list[ProbeResult] | None = None,
    ) -> None:
        if self.observer is None:
            return
        try:
            await self.observer(
                name, circuit_state=circuit_state, last_error=last_error, probes=probes
            )
        except Exception:
            # Status bookkeeping must never stop probing or sending.
            log.exception("status observer failed", extra={"destination": name})
