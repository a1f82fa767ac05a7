"""The operator's view of a running daemon: its log lines and its repairs."""

import signal
import sqlite3

from tests.integration.processes import Daemon, Sandbox, wait_until


def test_reload_logs_what_changed_in_routing(daemon: Daemon) -> None:
    daemon.start()
    daemon.config["routes"] = [
        {"name": "quiet", "match": {"check": "NTP*"}, "drop": True},
        {"name": "all", "destinations": ["jira_new", "snow_old"]},
    ]
    daemon.write_config(daemon.config)
    daemon.signal(signal.SIGHUP)

    line = wait_until(
        lambda: next((x for x in daemon.log().splitlines() if "reloaded" in x), None),
        what="config reloaded",
    )
    assert "routes_added=quiet" in line and "routes_changed=all" in line


def test_shutdown_logs_one_summary_of_the_run(daemon: Daemon) -> None:
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")
    assert daemon.stop() == 0

    (line,) = [x for x in daemon.log().splitlines() if "ticketbridge stopped" in x]
    assert "events_ingested=1" in line
    assert "deliveries=sent=1,verified=1" in line and "uptime=" in line


def test_status_sees_the_running_daemon_poll(daemon: Daemon) -> None:
    daemon.start()
    wait_until(lambda: daemon.command("status").returncode == 0, what="status 0")
    assert "nagios" in daemon.command("status").stdout


def test_a_dead_delivery_retried_by_the_operator_is_delivered(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    sandbox.script_faults(
        {"method": "POST", "path_regex": "/rest/api/3/issue$"}, [{"status": 401}]
    )
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "dead")
    assert daemon.command("status").returncode == 1

    retried = daemon.command("events", "retry", "nagios:p1")

    assert retried.returncode == 0, retried.stderr
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")
    assert daemon.command("status").returncode == 0


def test_a_restart_shows_the_fresh_circuit_closed_in_status(daemon: Daemon) -> None:
    """The circuit an earlier run left open is not reported open forever."""
    daemon.start()
    assert daemon.stop() == 0
    db = sqlite3.connect(daemon.ledger)
    db.execute(
        "INSERT INTO destination_status (destination, circuit_state, updated_at) "
        "VALUES ('jira_new', 'open', 0) ON CONFLICT (destination) "
        "DO UPDATE SET circuit_state = 'open'"
    )
    db.commit()
    db.close()

    daemon.start()

    wait_until(lambda: daemon.command("status").returncode == 0, what="status 0")
    assert "circuit open" not in daemon.command("status").stdout


def test_removing_a_destination_with_open_tickets_is_warned(daemon: Daemon) -> None:
    daemon.config["routes"] = [
        {"name": "all", "destinations": ["jira_new", "snow_old"]}
    ]
    daemon.write_config(daemon.config)
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: daemon.states().get(("p1", "snow_old")) == "verified")

    del daemon.config["destinations"]["snow_old"]
    daemon.config["routes"] = [{"name": "all", "destinations": ["jira_new"]}]
    daemon.write_config(daemon.config)
    daemon.signal(signal.SIGHUP)

    line = wait_until(
        lambda: next(
            (x for x in daemon.log().splitlines() if "holds open tickets" in x), None
        ),
        what="the warning",
    )
    assert "destination=snow_old" in line and "open_tickets=1" in line
