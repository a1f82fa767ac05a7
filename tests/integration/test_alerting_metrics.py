"""What the alert rules read, from a running daemon over a real scrape."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.processes import Daemon, Sandbox, all_settled, wait_until
from tests.realsystems.prometheus import run_promtool

PUSH_SECRET = "push-it-s3cret"


def test_promtool_finds_nothing_to_complain_about_in_a_real_scrape(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """A scrape with every family populated: delivered, rejected, dead."""
    sandbox.script_faults(
        {"method": "POST", "path_regex": "/rest/api/3/issue$"}, [{"status": 403}]
    )
    daemon.start()
    daemon.notify("p1")
    daemon.notify("p2", host="web02")
    wait_until(lambda: all_settled(daemon, 2), timeout=30)
    scrape = daemon.metrics()

    result = run_promtool("check", "metrics", stdin=scrape)

    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert "ticketbridge_destination_rejections_total" in scrape


def test_sources_publish_their_poll_interval(daemon: Daemon) -> None:
    daemon.start()

    interval = daemon.metric(
        "ticketbridge_source_poll_interval_seconds", source="nagios"
    )

    assert interval == daemon.config["poll_interval"]


def test_forbidden_create_is_counted_as_a_rejection_by_status(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    sandbox.script_faults(
        {"method": "POST", "path_regex": "/rest/api/3/issue$"}, [{"status": 403}]
    )
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: all_settled(daemon, 1), timeout=30)

    def rejected(status: str) -> float:
        return daemon.metric(
            "ticketbridge_destination_rejections_total",
            destination="jira_new",
            status=status,
        )

    assert daemon.states()[("p1", "jira_new")] == "dead"
    assert (rejected("403"), rejected("401")) == (1, 0)


class PushReceiver:
    """A loopback HTTP server that records the requests it gets."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                receiver.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    server = PushReceiver()
    yield server
    server.close()


def test_daemon_pushes_its_heartbeat_after_healthy_cycles(
    daemon: Daemon, receiver: PushReceiver
) -> None:
    url = receiver.url.replace("http://", f"http://bridge:{PUSH_SECRET}@")
    daemon.config["health"]["push_url"] = f"{url}/ping?key={PUSH_SECRET}"
    daemon.write_config(daemon.config)
    daemon.start()

    wait_until(lambda: len(receiver.paths) >= 3, what="three pushes")

    assert receiver.paths[0] == f"/ping?key={PUSH_SECRET}"
    assert daemon.metric("ticketbridge_push_heartbeat_failures_total") == 0


def test_failing_push_is_counted_and_never_disturbs_the_daemon(
    daemon: Daemon, receiver: PushReceiver
) -> None:
    receiver.close()  # nothing listens there any more
    url = receiver.url.replace("http://", f"http://bridge:{PUSH_SECRET}@")
    daemon.config["health"]["push_url"] = f"{url}/ping?key={PUSH_SECRET}"
    daemon.write_config(daemon.config)
    daemon.start()
    daemon.notify("p1")

    wait_until(lambda: all_settled(daemon, 1), timeout=30)
    wait_until(
        lambda: daemon.metric("ticketbridge_push_heartbeat_failures_total") >= 2,
        what="two failed pushes",
    )

    assert daemon.states()[("p1", "jira_new")] == "verified"
    assert daemon.ready()
    assert "heartbeat push failed" in daemon.log()
    assert PUSH_SECRET not in daemon.log()


def test_reload_can_turn_the_heartbeat_push_on(
    daemon: Daemon, receiver: PushReceiver
) -> None:
    daemon.start()
    daemon.config["health"]["push_url"] = f"{receiver.url}/ping"
    daemon.write_config(daemon.config)

    daemon.signal(signal.SIGHUP)

    wait_until(lambda: receiver.paths, what="a push after the reload")
    assert daemon.metric("ticketbridge_config_last_reload_successful") == 1


def test_reload_that_moves_the_metrics_port_is_refused(daemon: Daemon) -> None:
    daemon.start()
    daemon.config["health"]["port"] = daemon.metrics_port + 1
    daemon.write_config(daemon.config)

    daemon.signal(signal.SIGHUP)

    wait_until(
        lambda: daemon.metric("ticketbridge_config_last_reload_successful") == 0,
        what="reload refused",
    )
    assert "health.port: changing it needs a restart" in daemon.log()
