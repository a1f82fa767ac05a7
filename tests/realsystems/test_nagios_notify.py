"""A real Nagios notifies a problem and its recovery into the spool."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ticketbridge.events import Event, EventKind, event_from_mapping

from .nagios import (
    NagiosError,
    NagiosHarness,
    nagios_workdir,
    notify_command,
    require_nagios,
    shared_dir,
    wait_for_files,
)

pytestmark = pytest.mark.realsystem

WAIT = 20.0


@pytest.fixture
def nagios_dir() -> Iterator[Path]:
    with nagios_workdir() as path:
        yield path


def nagios_or_fail() -> None:
    """A missing Nagios fails the test, it is not skipped: `make test` installs it."""
    try:
        require_nagios()
    except NagiosError as exc:
        missing = str(exc)
    else:
        return
    pytest.fail(missing, pytrace=False)


def read_event(path: Path) -> Event:
    return event_from_mapping("nagios", json.loads(path.read_text(encoding="utf-8")))


def wait_or_explain(nagios: NagiosHarness, spool: Path, count: int) -> list[Path]:
    try:
        return wait_for_files(spool, count, timeout=WAIT)
    except TimeoutError as exc:
        timed_out = f"{exc}\n{nagios.diagnostics()}"
    pytest.fail(timed_out, pytrace=False)


def test_problem_and_recovery_become_two_events_of_one_incident(
    nagios_dir: Path,
) -> None:
    nagios_or_fail()
    spool = shared_dir(nagios_dir / "spool")

    with NagiosHarness(nagios_dir, notify_command(spool)) as nagios:
        nagios.set_state("CRITICAL", "CRITICAL - disk full")
        nagios.force_check()
        [problem_file] = wait_or_explain(nagios, spool, 1)

        nagios.set_state("OK", "OK - disk 40%")
        nagios.force_check()
        files = wait_or_explain(nagios, spool, 2)

        # Nothing else may follow: no re-notification, no duplicate.
        time.sleep(1.5)
        files = sorted(spool.glob("*.json"))

    assert len(files) == 2, [path.name for path in files]
    assert files[0] == problem_file
    problem, recovery = (read_event(path) for path in files)

    assert problem.kind is EventKind.PROBLEM
    assert problem.severity == "CRITICAL"
    assert problem.summary == "CRITICAL - disk full"
    assert recovery.kind is EventKind.RECOVERY
    assert recovery.severity == "OK"
    assert recovery.summary == "OK - disk 40%"

    assert (problem.host, problem.check) == (nagios.host, nagios.service)
    assert (recovery.host, recovery.check) == (problem.host, problem.check)
    assert problem.problem_id not in ("", "0")
    assert recovery.problem_id == problem.problem_id
    assert problem.source_event_id != recovery.source_event_id
    assert sorted(path.name for path in spool.iterdir()) == [p.name for p in files]
