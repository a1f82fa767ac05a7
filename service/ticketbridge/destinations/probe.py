"""What the clients' preflight probes share: one GET, and its outcome as a check.

A probe only reads. Each check is one `ProbeResult`; a check that could not
run because an earlier one failed is reported failed with the reason, so a
metric never shows a stale 1 for something nobody looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ticketbridge.destinations.base import (
    DestinationError,
    ProbeResult,
    TransientError,
)
from ticketbridge.destinations.http import HttpClient, Reply

OPERATION = "probe"

# A judgement of what a read answered: passed, and the detail to report.
Judge = Callable[[Any], tuple[bool, str]]


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


@dataclass(frozen=True, slots=True)
class Read:
    """One read of a probe: GET `url`, whose answer carries the key `expect`.

    `judge(answer)` says whether the answer is what the config
    needs, and why (e.g. that a configured status exists); without it, an
    answer passes. `hints` tell the operator, by HTTP status, what to change:
    Redmine answers 401, 403 and 404 with an empty body.
    """

    check: str
    url: str
    expect: str
    judge: Judge | None = None
    hints: Mapping[int, str] = field(default_factory=dict)


async def probe_reads(http: HttpClient, reads: Iterable[Read]) -> list[ProbeResult]:
    """Run `reads` in order; see `Read` for when one passes.

    The first read is the credentials check: when it fails, the others are
    reported as not checked rather than as failures of their own.
    """
    checks = Checks(http)
    reads = list(reads)
    for index, read in enumerate(reads):
        if not await _run(http, read, checks) and index == 0:
            return checks.skipped((r.check for r in reads[1:]), f"{read.check} failed")
    return checks.results


async def _run(http: HttpClient, read: Read, checks: Checks) -> bool:
    """One read as one check; whether it passed."""
    path = urlsplit(read.url).path
    try:
        reply = await fetch(http, read.url)
    except DestinationError as exc:
        checks.error(read.check, exc, read.hints.get(exc.status or 0, ""))
        return False

    # Any JSON answers a GET on a wrong address too (another system, a
    # proxy's page): only the key this API always sends proves the answer.
    if not isinstance(reply.body, dict) or read.expect not in reply.body:
        checks.failed(
            read.check,
            f"GET {path} answered without {read.expect!r}: is url the address "
            "of this system's API?",
        )
        return False
    if read.judge is None:
        checks.passed(read.check, f"GET {path} answers")
        return True

    ok, detail = read.judge(reply.body)
    if ok:
        checks.passed(read.check, detail)
    else:
        checks.failed(read.check, detail)
    return ok
