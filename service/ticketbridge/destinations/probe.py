"""What the clients' preflight probes share: one GET, and its outcome as a check.

A probe only reads. Each check is one `ProbeResult`; a check that could not
run because an earlier one failed is reported failed with the reason, so a
metric never shows a stale 1 for something nobody looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ticketbridge.destinations.base import (
    DestinationError,
    ProbeResult,
    TransientError,
)
from ticketbridge.destinations.http import HttpClient, Reply

OPERATION = "probe"


async def fetch(
    http: HttpClient, url: str, params: Mapping[str, str] | None = None
) -> Reply:
    """GET a JSON document once: a probe reports, it does not insist."""
    return await http.request(OPERATION, "GET", url, params=params)


class Checks:
    """The results of one probe run, in the order they were made."""

    def __init__(self, http: HttpClient) -> None:
        self._prefix = f"{http.destination} {OPERATION}: "
        self.results: list[ProbeResult] = []

    def passed(self, check: str, detail: str) -> None:
        self.results.append(ProbeResult(check, True, detail))

    def failed(self, check: str, detail: str) -> None:
        self.results.append(ProbeResult(check, False, detail))

    def error(self, check: str, exc: DestinationError, hint: str = "") -> None:
        """A failed request; `hint` tells the operator what to change."""
        detail = str(exc).removeprefix(self._prefix)
        if hint:
            detail = f"{detail} ({hint})"
        # A 429 is an answer: the destination is up, only busy.
        transient = isinstance(exc, TransientError) and exc.status != 429
        self.results.append(ProbeResult(check, False, detail, transient))

    def skipped(self, checks: Iterable[str], because: str) -> list[ProbeResult]:
        """Report `checks` as not run; returns every result so far."""
        for check in checks:
            self.failed(check, f"not checked: {because}")
        return self.results


async def probe_reads(
    http: HttpClient, reads: Iterable[tuple[str, str]]
) -> list[ProbeResult]:
    """Run `(check, url)` reads in order; a check passes when its GET answers.

    The first read is the credentials check: when it fails, the others are
    reported as not checked rather than as failures of their own.
    """
    checks = Checks(http)
    reads = list(reads)
    for index, (check, url) in enumerate(reads):
        try:
            await fetch(http, url)
        except DestinationError as exc:
            checks.error(check, exc)
            if index == 0:
                return checks.skipped((c for c, _ in reads[1:]), f"{check} failed")
            continue
        checks.passed(check, f"GET {url.rsplit('/', 1)[-1]} answers")
    return checks.results
