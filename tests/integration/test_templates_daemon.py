"""Ticket templates through the real daemon process and the sandbox."""

import signal
import subprocess
import sys

from tests.integration.processes import SECRETS, Daemon, Sandbox, wait_until

CUSTOM = "{{ extra.env | upper }}: {{ host }} {{ check }} is {{ state }}"
TYPO = "[{{ state }}] {{ hostnme }}"
TYPO_PROBLEM = "destinations.jira_new.templates.summary: line 1: 'hostnme' is undefined"


def use_summary_template(daemon: Daemon, source: str) -> None:
    daemon.config["destinations"]["jira_new"]["templates"] = {"summary": source}
    daemon.write_config(daemon.config)


def jira_summaries(sandbox: Sandbox) -> list[str]:
    return [t["summary"] for t in sandbox.tickets() if t["system"] == "jira"]


def test_custom_template_renders_into_the_ticket(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    use_summary_template(daemon, CUSTOM)
    daemon.start()
    daemon.notify("p1", env="stage")

    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")

    assert jira_summaries(sandbox) == ["STAGE: web01 HTTP is CRITICAL"]


def test_check_config_refuses_a_template_typo_naming_template_and_line(
    daemon: Daemon,
) -> None:
    """BC-29: the typo is found before the daemon runs, with exit status 2."""
    use_summary_template(daemon, TYPO)
    result = subprocess.run(
        [sys.executable, "-m", "ticketbridge", "check-config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        env={**SECRETS, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 2
    assert TYPO_PROBLEM in result.stderr


def test_reload_with_a_template_typo_keeps_the_old_templates(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """BC-29: SIGHUP refuses the typo; tickets keep using the old template."""
    use_summary_template(daemon, CUSTOM)
    daemon.start()
    use_summary_template(daemon, TYPO)
    daemon.signal(signal.SIGHUP)
    wait_until(
        lambda: daemon.metric("ticketbridge_config_last_reload_successful") == 0,
        what="reload refused",
    )

    daemon.notify("p1", env="prod")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")

    assert jira_summaries(sandbox) == ["PROD: web01 HTTP is CRITICAL"]
    assert TYPO_PROBLEM in daemon.log()


def test_event_its_template_cannot_render_fails_alone(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """BC-29: nothing is sent for it, and the next event is delivered."""
    use_summary_template(daemon, "{{ extra.team }}: {{ host }}")
    daemon.start()
    daemon.notify("p1", host="web01")
    daemon.notify("p2", host="web02", team="dba")

    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "dead")
    wait_until(lambda: daemon.states().get(("p2", "jira_new")) == "verified")

    [dead] = [d for d in daemon.deliveries() if d["source_event_id"] == "p1"]
    assert "template error" in dead["last_error"]
    assert "templates.summary: line 1:" in dead["last_error"]
    assert jira_summaries(sandbox) == ["dba: web02"]
    assert daemon.process is not None and daemon.process.poll() is None
