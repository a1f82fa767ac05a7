"""Run the bad-input corpora through the daemon's own poll path.

A real `Daemon` (without its senders) polls a real spool directory and a real
legacy SQLite table into a real ledger until nothing is left. Then each case
is looked up: delivered (its event is in the ledger), rejected (with the
reason from its `.reason` file or quarantine row), or still waiting.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.badinput.spool_corpus import (
    ANY,
    DELIVERED,
    IGNORED,
    SpoolCase,
    spool_cases,
)
from tests.badinput.sql_corpus import MAPPING, SqlCase, sql_cases, write_table
from ticketbridge.config import Config
from ticketbridge.daemon import Daemon
from ticketbridge.events import event_from_mapping
from ticketbridge.ledger import Ledger
from ticketbridge.sources import build_source

MAX_POLLS = 200


@dataclass
class Outcome:
    category: str
    item: str
    expect: str
    got: str  # "delivered", "rejected:<reason>", "ignored" or "lost"
    detail: str = ""

    @property
    def as_expected(self) -> bool:
        if self.got == "lost":
            return False
        if self.expect == ANY:
            return self.got == DELIVERED or self.got.startswith("rejected:")
        return self.got == self.expect


@dataclass
class Results:
    outcomes: list[Outcome] = field(default_factory=list)
    polls: int = 0
    errors: int = 0  # polls that failed (a crash of the source or ledger)

    def unexpected(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.as_expected]

    def table(self) -> dict[str, Counter[str]]:
        rows: dict[str, Counter[str]] = {}
        for o in self.outcomes:
            rows.setdefault(o.category, Counter())[o.got] += 1
        return rows


def _config(workdir: Path, database: Path) -> Config:
    return Config(
        poll_interval=1,
        ledger={"path": str(workdir / "ledger.sqlite3")},
        health={"host": "127.0.0.1", "port": 0},
        sources={
            "spool": {
                "type": "spool",
                "path": str(workdir / "spool"),
                "settle_seconds": 0,
            },
            "legacy": {
                "type": "sql",
                "database": str(database),
                "table": "alerts",
                "cursor_column": "ts",
                "columns": MAPPING,
                "batch_size": 50,
            },
        },
        destinations={
            # Never contacted: the corpus run starts no senders.
            "hook": {"type": "webhook", "url": "http://127.0.0.1:9/tickets"},
        },
        routes=[{"name": "all", "destinations": ["hook"]}],
    )


async def run_corpora(workdir: Path) -> Results:
    """Lay out both corpora under `workdir`, poll them dry, and judge each case."""
    spool = workdir / "spool"
    spool.mkdir(parents=True)
    outside = workdir / "outside"
    outside.mkdir()
    cases = spool_cases(outside)
    for case in cases:
        case.make(spool / case.name)
    rows = sql_cases()
    database = workdir / "legacy.sqlite3"
    write_table(database, rows)

    config = _config(workdir, database)
    daemon = Daemon(workdir / "config.yaml", config)
    daemon.ledger = await Ledger.open(config.ledger.path)
    daemon.sources = {
        name: build_source(name, settings) for name, settings in config.sources.items()
    }
    results = Results()
    try:
        while results.polls < MAX_POLLS:
            results.polls += 1
            errors_before = _errors(daemon)
            _, more = await daemon.poll_once()
            results.errors += _errors(daemon) - errors_before
            if not more and _errors(daemon) == errors_before:
                break
        events = await daemon.ledger.rows("SELECT source, source_event_id FROM events")
        quarantine = await daemon.ledger.rows(
            "SELECT source, item, reason FROM quarantine"
        )
    finally:
        await daemon.ledger.close()

    stored = {(r["source"], r["source_event_id"]) for r in events}
    quarantined = {(r["source"], r["item"]): r["reason"] for r in quarantine}
    results.outcomes += [_judge_file(spool, case, stored) for case in cases]
    results.outcomes += _judge_rows(database, rows, stored, quarantined)
    return results


def _errors(daemon: Daemon) -> float:
    total = 0.0
    for metric in daemon.metrics.source_errors.collect():
        total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def _judge_file(spool: Path, case: SpoolCase, stored: set[tuple[str, str]]) -> Outcome:
    name = case.name
    outcome = Outcome(f"spool: {case.category}", name, case.expect, "lost")
    if case.expect == IGNORED:
        if os.path.lexists(spool / name):
            outcome.got = IGNORED
        return outcome

    reason_file = spool / "rejected" / f"{name}.reason"
    if os.path.lexists(spool / "rejected" / name) and reason_file.exists():
        text = reason_file.read_text(encoding="utf-8")
        outcome.got = "rejected:" + text.split(":", 1)[0]
        outcome.detail = text.strip()[:120]
        return outcome

    processed = spool / "processed" / name
    if processed.exists() and not os.path.lexists(spool / name):
        event = event_from_mapping("spool", json.loads(processed.read_bytes()))
        if ("spool", event.source_event_id) in stored:
            outcome.got = DELIVERED
    return outcome


def _judge_rows(
    database: Path,
    cases: list[SqlCase],
    stored: set[tuple[str, str]],
    quarantined: dict[tuple[str, str], str],
) -> list[Outcome]:
    db = sqlite3.connect(database)
    db.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
    try:
        rowids = [r[0] for r in db.execute("SELECT rowid FROM alerts ORDER BY rowid")]
    finally:
        db.close()
    outcomes = []
    for rowid, case in zip(rowids, cases, strict=True):
        item = f"rowid {rowid}"
        outcome = Outcome(f"sql: {case.category}", item, case.expect, "lost")
        reason = quarantined.get(("legacy", item))
        if reason is not None:
            outcome.got = "rejected:" + reason.split(":", 1)[0]
            outcome.detail = reason[:120]
        elif ("legacy", _id_text(case.row[1])) in stored:
            outcome.got = DELIVERED
        outcomes.append(outcome)
    return outcomes


def _id_text(value: Any) -> str:
    return str(value)


def format_table(results: Results) -> str:
    """Counts per category: delivered and rejected by reason."""
    lines = [f"{'category':44} {'total':>5} {'delivered':>9}  rejected (by reason)"]
    totals: Counter[str] = Counter()
    for category, counts in results.table().items():
        total = sum(counts.values())
        totals.update(counts)
        rejected = ", ".join(
            f"{k.removeprefix('rejected:')} {v}"
            for k, v in sorted(counts.items())
            if k.startswith("rejected:")
        )
        other = ", ".join(
            f"{k} {v}" for k, v in sorted(counts.items()) if k in (IGNORED, "lost")
        )
        extra = f"  [{other}]" if other else ""
        lines.append(
            f"{category[:44]:44} {total:>5} {counts[DELIVERED]:>9}  {rejected}{extra}"
        )
    all_rejected = sum(v for k, v in totals.items() if k.startswith("rejected:"))
    lines.append(
        f"{'ALL':44} {sum(totals.values()):>5} {totals[DELIVERED]:>9}  "
        f"{all_rejected} rejected, {totals[IGNORED]} ignored, {totals['lost']} lost"
    )
    lines.append(
        f"polls: {results.polls}, failed polls: {results.errors}, "
        f"unexpected outcomes: {len(results.unexpected())}"
    )
    return "\n".join(lines)
