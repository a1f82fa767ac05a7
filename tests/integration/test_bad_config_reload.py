"""BC-30 with a real process: invalid configs on SIGHUP leave the daemon
running on its old config, and delivering."""

from __future__ import annotations

import signal

from tests.badinput.configs import BROKEN_FILES, bad_configs
from tests.integration.processes import Daemon, wait_until

FAILURES = "ticketbridge_config_reload_failures_total"


def test_sighup_with_invalid_configs_keeps_the_old_one(daemon: Daemon) -> None:
    cases = bad_configs()
    sample = cases[:: len(cases) // 8][:8]
    valid = daemon.config
    daemon.start()

    refused = 0
    for case in sample:
        config, field = case.apply(valid)
        daemon.write_config(config)
        daemon.signal(signal.SIGHUP)
        refused += 1
        wait_until(lambda n=refused: daemon.metric(FAILURES) == n, what=case.name)
        assert field in daemon.log()
    for text, _ in BROKEN_FILES[:2]:
        daemon.config_path.write_text(text, encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        refused += 1
        wait_until(lambda n=refused: daemon.metric(FAILURES) == n, what=text)

    assert daemon.metric("ticketbridge_config_last_reload_successful") == 0
    daemon.notify("p1")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")
    assert daemon.process is not None and daemon.process.poll() is None

    daemon.write_config(valid)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.metric("ticketbridge_config_last_reload_successful"))
