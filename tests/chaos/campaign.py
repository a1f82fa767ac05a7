"""The crash campaign: many events, a misbehaving sandbox, a daemon killed often.

    python -m tests.chaos.campaign [--events N] [--incidents M] [--kills K] ...

It writes N events of M incidents (problems, repeats, acknowledgements,
recoveries, problems again after a recovery) as spool files in batches over
the run, the way Nagios drops notifications, while `ticketbridge run` works
against a sandbox that fails a share of requests (`--fault-rate`) and whose
searches lag behind creates (`--search-lag`). The daemon is killed again and
again: SIGKILL at random moments, a burst of quick kills right after start,
and crashes at the named crash points of `ticketbridge.crashpoints`. Then it
runs undisturbed until no delivery is active, and the figures are compared
with what the rules say should exist. Exit status 1 on any lost, duplicate or
stuck item; 0 otherwise. See README "Proving the guarantees".
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.processes import Daemon, Sandbox, http_json
from ticketbridge.crashpoints import ENV as CRASH_ENV
from ticketbridge.crashpoints import EXIT_CODE as CRASH_EXIT
from ticketbridge.routing import correlation_marker

SOURCE = "nagios"
ACTIVE = ("pending", "retrying", "sent")
# Probability per pass through each crash point; kept low for the points
# passed once per request so a run gets some work done before it crashes.
CRASH_POINTS = {
    "after_ingest": 0.5,
    "request_sent": 0.03,
    "before_ledger_write": 0.03,
    "during_verify": 0.03,
    "during_reload": 1.0,
}
MIX = {
    "500": 1,
    "503": 1,
    "429": 1,
    "reset_before": 1,
    "reset_after": 1,
    "timeout_after_create": 1,
    "slow": 1,
    "html200": 1,
}


@dataclass
class Figures:
    """What the campaign counts; printed at the end."""

    kills: Counter[str] = field(default_factory=Counter)
    lives: int = 0
    reloads: int = 0


# -- the events ----------------------------------------------------------------


def generate(events: int, incidents: int, rng: random.Random) -> list[dict[str, Any]]:
    """`events` events over `incidents` incidents, each incident in event order.

    An incident is a run of episodes: a problem, repeats of it, maybe an
    acknowledgement, a recovery; its last episode may stay open. Now and
    then a recovery comes with no problem before it (it must be skipped).
    """
    per_incident: list[list[str]] = [[] for _ in range(incidents)]
    share, extra = divmod(events, incidents)
    budget = [share + (1 if i < extra else 0) for i in range(incidents)]
    for number, kinds in enumerate(per_incident):
        while len(kinds) < budget[number]:
            kinds.extend(_episode(rng, stray=not kinds and rng.random() < 0.05))
        del kinds[budget[number] :]

    # Interleave the incidents at random, keeping each one's order.
    order = [i for i, kinds in enumerate(per_incident) for _ in kinds]
    rng.shuffle(order)
    position = [0] * incidents
    result = []
    for seq, incident in enumerate(order):
        kind = per_incident[incident][position[incident]]
        position[incident] += 1
        result.append(
            {
                "id": f"e{seq:06d}",
                "kind": kind,
                "host": f"host{incident:04d}",
                "check": "svc",
                "severity": "OK" if kind == "recovery" else "CRITICAL",
                "summary": f"{kind} {seq}",
            }
        )
    return result


def _episode(rng: random.Random, stray: bool) -> list[str]:
    if stray:
        return ["recovery"]
    kinds = ["problem"] + ["problem"] * rng.randint(0, 4)
    if rng.random() < 0.3:
        kinds.insert(rng.randint(1, len(kinds)), "acknowledgement")
    return kinds + ["recovery"]


def write_batch(spool: Path, batch: list[dict[str, Any]], first: int) -> None:
    """Atomically, as `ticketbridge notify` does: dot-name, then rename.

    Names sort in event order, so the spool source reads them in order."""
    for offset, event in enumerate(batch):
        name = f"{first + offset:07d}-{event['id']}.json"
        temp = spool / f".{name}.tmp"
        temp.write_text(json.dumps(event), encoding="utf-8")
        temp.rename(spool / name)


@dataclass
class Expected:
    """One destination's tickets by the rules: marker -> resolved or open."""

    tickets: dict[str, bool] = field(default_factory=dict)
    comments: dict[str, int] = field(default_factory=dict)
    skips: int = 0


def expected(events: list[dict[str, Any]]) -> Expected:
    """Apply the sender's rules (sender.Sender._plan) to the events in order."""
    result = Expected()
    open_marker: dict[str, str] = {}
    for event in events:
        incident = event["host"]
        marker = open_marker.get(incident)
        if event["kind"] == "problem" and marker is None:
            marker = correlation_marker_of(event)
            open_marker[incident] = marker
            result.tickets[marker] = False
            result.comments[marker] = 0
        elif marker is None:
            result.skips += 1
        elif event["kind"] == "recovery":
            result.tickets[marker] = True
            del open_marker[incident]
        else:
            result.comments[marker] += 1
    return result


def correlation_marker_of(event: dict[str, Any]) -> str:
    from ticketbridge.events import event_from_mapping

    return correlation_marker(event_from_mapping(SOURCE, event))


# -- the processes -------------------------------------------------------------


def faults_profile(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "seed": args.seed,
        "rates": {"*": {"rate": args.fault_rate, "mix": MIX}},
        # Mostly short; now and then a long one that pauses a destination.
        "retry_after": {"0": 5, "1": 5, "8": 0.02},
        "slow_seconds": 0.4,
        "hang_seconds": 3,
        "search_lag": args.search_lag,
    }


def daemon_config(daemon: Daemon, sandbox: Sandbox, args: argparse.Namespace) -> None:
    common = {
        "url": sandbox.url,
        "timeout": 2,
        "concurrency": 16,
        "backoff_initial": 0.2,
        "backoff_max": 2,
        # The lag bound of the sandbox's searches, as an operator would set it.
        "search_lag": args.search_lag,
    }
    every = {
        "jira": {
            "type": "jira",
            "api_version": 3,
            "project": "OPS",
            "email": "bridge@example.invalid",
            **common,
        },
        "snow": {"type": "servicenow", "username": "bridge", **common},
        "hook": {
            "type": "webhook",
            **common,
            "url": f"{sandbox.url}/webhook/chaos",
            "verify_url": f"{sandbox.url}/webhook/chaos",
        },
    }
    chosen = {NAMES[name]: every[name] for name in args.destinations}
    daemon.config.update(
        {
            "poll_interval": 0.2,
            # 30 % transient faults never fail 100 times in a row (0.3^100).
            "failure_threshold": 100,
            # Five transient failures in a row are common at 30 %: the circuit
            # opens often, and its production cool-down (60 s) would only
            # stretch the run. It still opens and closes under the campaign.
            "breaker_cooldown": 2,
            "shutdown_timeout": 2,
            "sources": {
                SOURCE: {"type": "spool", "path": str(daemon.spool), "batch_size": 200}
            },
            "destinations": chosen,
            "routes": [{"name": "all", "destinations": list(chosen)}],
        }
    )
    daemon.write_config(daemon.config)


SYSTEMS = {"jira": "jira", "snow": "servicenow", "hook": "webhook"}
# Destination names: the integration helpers pass these two their secrets.
NAMES = {"jira": "jira_new", "snow": "snow_old", "hook": "hook"}
SECRETS: dict[str, str] = {}


class Campaign:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = workdir
        self.figures = Figures()
        self.events = generate(args.events, args.incidents, self.rng)
        self.batches = _split(self.events, args.batches)
        self.written = 0
        faults = workdir / "faults.json"
        faults.write_text(json.dumps(faults_profile(args)), encoding="utf-8")
        self.sandbox = Sandbox(workdir / "sandbox.log", faults=faults)
        self.daemon = Daemon(workdir / "daemon", self.sandbox.url)
        daemon_config(self.daemon, self.sandbox, args)
        self.started = time.monotonic()
        self.next_batch_at = self.started

    # -- the kill phase

    def run_kills(self) -> None:
        plan = self._kill_plan()
        for mode in plan:
            self._feed()
            if mode == "burst":
                self._burst()
            else:
                self._life(mode)
        # Whatever is left of the spool comes in while the daemon runs in peace.
        while self.batches:
            self._write_next_batch()

    def _kill_plan(self) -> list[str]:
        """Each crash point `--each-point` times, one burst, random kills."""
        kills = self.args.kills
        plan = [point for point in CRASH_POINTS for _ in range(self.args.each_point)]
        plan.append("burst")
        burst = self.args.burst
        while len(plan) + burst - 1 < kills:
            plan.append("sigkill")
        self.rng.shuffle(plan)
        return plan

    def _life(self, mode: str) -> None:
        """One run of the daemon, ended by a crash point or a SIGKILL."""
        env = dict(SECRETS)
        if mode in CRASH_POINTS:
            env[CRASH_ENV] = f"{mode}:{CRASH_POINTS[mode]}"
        mark = self._log_size()
        self._start(env)
        deadline = time.monotonic() + (
            self.rng.uniform(0.5, 4.0) if mode == "sigkill" else self.args.crash_wait
        )
        reload_at = time.monotonic() + self.rng.uniform(0.2, 1.0)
        reload_due = mode == "during_reload" or self.rng.random() < 0.2
        while time.monotonic() < deadline and self._alive():
            self._feed()
            # systemd sends no SIGHUP before the daemon is ready, nor do we.
            if reload_due and time.monotonic() >= reload_at and self._ready():
                self._reload()
                reload_due = False
            time.sleep(0.05)
        self._end_life(mark)

    def _burst(self) -> None:
        """Kills in quick succession: each run dies within a second of starting."""
        for _ in range(self.args.burst):
            mark = self._log_size()
            self._start(dict(SECRETS))
            time.sleep(self.rng.uniform(0.05, 0.6))
            self._end_life(mark, kind="sigkill_burst")

    def _start(self, env: dict[str, str]) -> None:
        self.figures.lives += 1
        self.daemon.start(env=env, wait=False)

    def _ready(self) -> bool:
        try:
            return self.daemon.ready()
        except (OSError, ValueError, AssertionError):
            return False

    def _alive(self) -> bool:
        process = self.daemon.process
        return process is not None and process.poll() is None

    def _end_life(self, mark: int, kind: str = "sigkill") -> None:
        process = self.daemon.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            self.figures.kills[kind] += 1
            return
        if process.returncode == CRASH_EXIT:
            self.figures.kills[f"crash_{self._crash_point(mark)}"] += 1
        else:
            self.figures.kills[f"exit_{process.returncode}"] += 1

    def _reload(self) -> None:
        """Change every destination (concurrency 16 <-> 15) so its sender is swapped."""
        config = self.daemon.config
        for settings in config["destinations"].values():
            settings["concurrency"] = 31 - settings["concurrency"]
        self.daemon.write_config(config)
        if self._alive():
            self.daemon.signal(signal.SIGHUP)
            self.figures.reloads += 1

    def _log_size(self) -> int:
        path = self.daemon.log_path
        return path.stat().st_size if path.exists() else 0

    def _crash_point(self, mark: int) -> str:
        with self.daemon.log_path.open("rb") as log:
            log.seek(mark)
            text = log.read().decode("utf-8", errors="replace")
        for point in CRASH_POINTS:
            if f"crash point {point} reached" in text:
                return point
        return "unknown"

    def _feed(self) -> None:
        if self.batches and time.monotonic() >= self.next_batch_at:
            self._write_next_batch()
            self.next_batch_at = time.monotonic() + self.args.batch_interval

    def _write_next_batch(self) -> None:
        batch = self.batches.pop(0)
        write_batch(self.daemon.spool, batch, self.written)
        self.written += len(batch)

    # -- the quiet phase

    def settle(self) -> bool:
        """Run undisturbed until nothing is active twice in a row, or time out."""
        self._start(dict(SECRETS))
        deadline = time.monotonic() + self.args.settle_timeout
        quiet = 0
        while time.monotonic() < deadline:
            if not self._alive():
                raise SystemExit(f"the daemon died in the quiet phase: {self._tail()}")
            quiet = quiet + 1 if self._quiet() else 0
            if quiet >= 2:
                return True
            time.sleep(1)
        return False

    def _quiet(self) -> bool:
        if any(self.daemon.spool.glob("*.json")):
            return False
        rows = _query(
            self.daemon.ledger,
            "SELECT COUNT(*) FROM deliveries "
            "WHERE state IN ('pending', 'retrying', 'sent')",
        )
        return rows[0][0] == 0

    def _tail(self) -> str:
        return "\n".join(self.daemon.log().splitlines()[-20:])

    def stop(self) -> None:
        self.daemon.stop()
        self.sandbox.stop()

    # -- the figures

    def report(self, settled: bool) -> int:
        ledger = self.daemon.ledger
        ingested = {r[0] for r in _query(ledger, "SELECT source_event_id FROM events")}
        states = _query(
            ledger, "SELECT destination, state, COUNT(*) FROM deliveries GROUP BY 1, 2"
        )
        by_state: dict[str, Counter[str]] = defaultdict(Counter)
        for destination, state, count in states:
            by_state[destination][state] += count
        tickets = self.sandbox.tickets()
        rates = http_json(f"{self.sandbox.url}/_sandbox/faults/rates")
        rule = expected(self.events)

        lost_events = len({e["id"] for e in self.events} - ingested)
        lines = [
            f"events written        {len(self.events)}",
            f"events ingested       {len(ingested)}",
            f"events lost           {lost_events}",
            f"incidents             {self.args.incidents}",
        ]
        failures = lost_events
        per_destination: dict[str, dict[str, int]] = {}
        for name in self.args.destinations:
            system = SYSTEMS[name]
            result = _compare(rule, _seen(tickets, system), system)
            counts = by_state[NAMES[name]]
            stuck = sum(counts[s] for s in ACTIVE)
            failures += result["duplicates"] + result["lost"] + result["unexpected"]
            failures += result["wrong_state"] + stuck
            per_destination[NAMES[name]] = {
                **result,
                "tickets_expected": len(rule.tickets),
                "tickets_created": result["created"],
                "dead": counts["dead"],
                "stuck": stuck,
            }
            lines += [
                f"[{NAMES[name]}]",
                f"  tickets expected    {len(rule.tickets)}",
                f"  tickets created     {result['created']}",
                f"  duplicates          {result['duplicates']}",
                f"  unexpected tickets  {result['unexpected']}",
                f"  lost                {result['lost']}",
                f"  wrong state         {result['wrong_state']}",
                f"  comments expected   {result['comments_expected']}",
                f"  comments missing    {result['comments_missing']}",
                f"  comments repeated   {result['comments_repeated']}",
                f"  deliveries          {dict(sorted(counts.items()))}",
                f"  skipped expected    {rule.skips}",
                f"  dead                {counts['dead']}",
                f"  stuck               {stuck}",
            ]
        kills = sum(self.figures.kills.values())
        injected = sum(rates["injected"].values())
        if self.args.fault_rate > 0 and injected == 0:
            # A campaign whose faults never fired proves nothing.
            failures += 1
            lines.append("NO FAULTS INJECTED: the sandbox did not take the profile")
        lines += [
            f"kills                 {kills} {dict(sorted(self.figures.kills.items()))}",
            f"daemon runs           {self.figures.lives}",
            f"reloads (SIGHUP)      {self.figures.reloads}",
            f"requests to sandbox   {rates['requests']}",
            f"faults injected       {injected}",
            f"settled               {'yes' if settled else 'NO (timed out)'}",
            f"wall time             {time.monotonic() - self.started:.0f} s",
            f"verdict               {'PASS' if failures == 0 else 'FAIL'}",
        ]
        print("\n".join(lines), flush=True)
        if self.args.json:
            summary = {
                "events_written": len(self.events),
                "events_ingested": len(ingested),
                "events_lost": lost_events,
                "destinations": per_destination,
                "kills": kills,
                "kills_by_kind": dict(self.figures.kills),
                "settled": settled,
                "wall_seconds": round(time.monotonic() - self.started, 1),
                "faults_injected": rates["injected"],
            }
            self.args.json.write_text(json.dumps(summary, indent=1), encoding="utf-8")
        return 0 if failures == 0 and settled else 1


def _seen(tickets: list[dict[str, Any]], system: str) -> dict[str, list[Any]]:
    """marker -> each ticket carrying it: resolved? and its comment count.

    A webhook keeps one record per operation; its creates are its tickets,
    and state and comments are not compared for it."""
    seen: dict[str, list[Any]] = defaultdict(list)
    for ticket in tickets:
        if ticket["system"] != system:
            continue
        if system == "webhook":
            marker, _, rest = ticket["marker"].partition(":")
            if rest.startswith("create:"):
                seen[marker].append(None)
            continue
        marker = ticket["labels"][0] if system == "jira" else ticket["marker"]
        seen[marker].append((not ticket["open"], ticket["comments"]))
    return seen


def _compare(rule: Expected, seen: dict[str, list[Any]], system: str) -> dict[str, int]:
    created = sum(len(v) for v in seen.values())
    duplicates = sum(len(v) - 1 for m, v in seen.items() if m in rule.tickets)
    unexpected = sum(len(v) for m, v in seen.items() if m not in rule.tickets)
    lost = sum(1 for m in rule.tickets if m not in seen)
    wrong = missing = repeated = 0
    for marker, resolved in rule.tickets.items():
        copies = seen.get(marker) or [None]
        if copies[0] is None:
            continue
        done, comments = copies[0]
        wrong += done != resolved
        # Jira gets the resolve note as one more comment.
        want = rule.comments[marker] + (1 if resolved and system == "jira" else 0)
        missing += max(0, want - comments)
        repeated += max(0, comments - want)
    return {
        "created": created,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "lost": lost,
        "wrong_state": wrong,
        "comments_expected": sum(rule.comments.values()),
        "comments_missing": missing,
        "comments_repeated": repeated,
    }


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    size = max(1, -(-len(items) // max(1, parts)))
    return [items[i : i + size] for i in range(0, len(items), size)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make chaos ARGS=...", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--kills", type=int, default=60, help="at least this many")
    parser.add_argument(
        "--burst", type=int, default=5, help="kills in quick succession"
    )
    parser.add_argument("--batches", type=int, default=40, help="spool batches")
    parser.add_argument(
        "--batch-interval", type=float, default=2.0, help="seconds between batches"
    )
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--search-lag", type=float, default=2.0)
    parser.add_argument(
        "--destinations",
        type=lambda text: text.split(","),
        default=["jira", "snow", "hook"],
        help="comma-separated subset of jira,snow,hook",
    )
    parser.add_argument(
        "--crash-wait",
        type=float,
        default=8.0,
        help="seconds a run with a crash point is given before a plain SIGKILL",
    )
    parser.add_argument("--settle-timeout", type=float, default=3600.0)
    parser.add_argument(
        "--each-point", type=int, default=2, help="runs that use each crash point"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep files here (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--small",
        action="store_true",
        help="the quick version `make test` runs: 300 events, 30 incidents, "
        "10 kills (each crash point once), 1 s search lag",
    )
    args = parser.parse_args(argv)
    if args.small:
        args.events, args.incidents, args.kills, args.each_point = 300, 30, 10, 1
        args.batches, args.batch_interval, args.search_lag = 6, 0.5, 1.0
        args.crash_wait, args.settle_timeout = 4.0, 120.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tb-chaos-") as temp:
        workdir = args.workdir or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        campaign = Campaign(args, workdir)
        try:
            campaign.run_kills()
            settled = campaign.settle()
            campaign.daemon.stop()
            return campaign.report(settled)
        finally:
            campaign.stop()


if __name__ == "__main__":
    sys.exit(main())
