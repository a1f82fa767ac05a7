"""The main job on real input: a real Nagios 4, the daemon, the sandbox.

Nagios raises a PROBLEM and a RECOVERY through `ticketbridge notify`; exactly
one Jira ticket is opened, verified, then resolved and verified again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Daemon, Sandbox, all_settled, wait_until

from .nagios import NagiosHarness, nagios_workdir, notify_command, shared_dir
from .test_nagios_notify import nagios_or_fail

pytestmark = pytest.mark.realsystem


@pytest.fixture
def nagios_dir() -> Iterator[Path]:
    with nagios_workdir() as path:
        yield path


def test_nagios_problem_and_recovery_make_one_ticket_opened_then_resolved(
    nagios_dir: Path, tmp_path: Path
) -> None:
    nagios_or_fail()
    spool = shared_dir(nagios_dir / "spool")
    sandbox = Sandbox(tmp_path / "sandbox.log")
    daemon = Daemon(tmp_path / "daemon", sandbox.url, spool=spool)
    daemon.config["sources"]["nagios"]["incident_key"] = [
        "source",
        "host",
        "problem_id",
    ]
    daemon.write_config(daemon.config)
    try:
        daemon.start()
        with NagiosHarness(nagios_dir, notify_command(spool)) as nagios:
            nagios.set_state("CRITICAL", "CRITICAL - disk full")
            nagios.force_check()
            wait_until(lambda: all_settled(daemon, 1), timeout=30, what="problem")
            opened = sandbox.tickets()

            nagios.set_state("OK", "OK - disk 40%")
            nagios.force_check()
            wait_until(lambda: all_settled(daemon, 2), timeout=30, what="recovery")
            resolved = sandbox.tickets()
    finally:
        daemon.stop()
        sandbox.stop()

    assert len(opened) == 1 and opened[0]["open"]
    [ticket] = resolved
    assert ticket["key"] == opened[0]["key"] and not ticket["open"]
    assert [d["state"] for d in daemon.deliveries()] == ["verified", "verified"]
    assert [d["operation"] for d in daemon.deliveries()] == ["create", "resolve"]
