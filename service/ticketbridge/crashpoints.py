"""A test hook: crash the process on purpose at named points of the flow.

Off unless the environment variable TICKETBRIDGE_CRASH_AT is set, e.g.
`TICKETBRIDGE_CRASH_AT=after_ingest:0.05,request_sent:0.01`: at each listed
point the process ends at once (os._exit, as abrupt as SIGKILL: no cleanup,
no ledger close) with the given probability. The crash campaign
(`make chaos`) uses it to hit the moments where a crash is most dangerous;
never set it in production.

Points:
- after_ingest: events committed to the ledger, the source not yet acknowledged.
- request_sent: a write's request has gone out, its answer not yet read.
- before_ledger_write: a write's answer arrived, the ledger not yet told.
- during_verify: the follow-up read answered, the delivery not yet verified.
- during_reload: a SIGHUP reload has swapped routing but not yet the senders.
"""

from __future__ import annotations

import os
import random
import sys

ENV = "TICKETBRIDGE_CRASH_AT"
EXIT_CODE = 86
POINTS = (
    "after_ingest",
    "request_sent",
    "before_ledger_write",
    "during_verify",
    "during_reload",
)


def parse(text: str) -> dict[str, float]:
    """`point:probability` pairs joined by commas; ValueError names a bad one."""
    chances: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, _, probability = item.partition(":")
        if point not in POINTS:
            raise ValueError(f"{ENV}: unknown crash point {point!r} (known: {POINTS})")
        try:
            chance = float(probability or "1")
        except ValueError:
            raise ValueError(f"{ENV}: {item!r}: probability is not a number") from None
        if not 0 <= chance <= 1:
            raise ValueError(f"{ENV}: {item!r}: probability must be in 0..1")
        chances[point] = chance
    return chances


_CHANCES = parse(os.environ.get(ENV, ""))


def reach(point: str) -> None:
    """End the process here with the configured probability (usually never)."""
    chance = _CHANCES.get(point)
    if chance and random.random() < chance:
        sys.stderr.write(f"ticketbridge: crash point {point} reached, exiting\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
