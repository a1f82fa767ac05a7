"""No secret leaves the process: not in output, logs, metrics or the ledger.

One full run against the sandbox with known credentials (a Jira token from
the environment, a ServiceNow password from the credentials directory, a
webhook URL with a user and password in it),
through failures, a refused
reload and every operator command; then every text the run produced is
searched for the secrets and their basic-auth forms.
"""

import base64
import signal
import sqlite3
import subprocess
from pathlib import Path

from tests.integration.processes import SECRETS, Daemon, Sandbox, wait_until

JIRA_TOKEN = SECRETS["TICKETBRIDGE_DESTINATIONS__JIRA_NEW__TOKEN"]
SNOW_PASSWORD = "snow-pw-7Qx9v"
HOOK_PASSWORD = "hook-pw-3Kf8z"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


SECRET_VALUES = [
    JIRA_TOKEN,
    basic("bridge@example.invalid", JIRA_TOKEN),
    SNOW_PASSWORD,
    basic("bridge", SNOW_PASSWORD),
    HOOK_PASSWORD,
    basic("hookuser", HOOK_PASSWORD),
]


def configure(daemon: Daemon, sandbox: Sandbox, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "snow_old.password").write_text(SNOW_PASSWORD + "\n")
    daemon.env["CREDENTIALS_DIRECTORY"] = str(credentials)
    daemon.env["TICKETBRIDGE_DESTINATIONS__SNOW_OLD__PASSWORD"] = None

    hook = f"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:{sandbox.port}/webhook/ops"
    destinations = daemon.config["destinations"]
    destinations["hook"] = {
        "type": "webhook",
        "url": hook,
        "timeout": 3,
        "backoff_initial": 0.2,
        "backoff_max": 1,
    }
    daemon.config["failure_threshold"] = 2
    daemon.config["routes"] = [
        {"name": "all", "destinations": ["jira_new", "snow_old", "hook"]}
    ]
    daemon.write_config(daemon.config)


def script_failures(sandbox: Sandbox) -> None:
    sandbox.script_faults(
        {"method": "POST", "path_regex": "/rest/api/3/issue$"},
        [{"status": 500}, {"status": 401}],
    )
    sandbox.script_faults(
        {"method": "POST", "path_regex": "/api/now/table/incident$"},
        [{"status": 500}],
    )
    sandbox.script_faults(
        {"method": "POST", "path_regex": "/webhook/ops$"}, [{"status": 500}]
    )


def refuse_a_reload(daemon: Daemon) -> None:
    """A config with the token inline in a file others can read is refused."""
    bad = dict(daemon.config)
    bad["destinations"] = {
        **daemon.config["destinations"],
        "jira_new": {**daemon.config["destinations"]["jira_new"], "token": JIRA_TOKEN},
    }
    daemon.write_config(bad)
    daemon.config_path.chmod(0o644)
    daemon.signal(signal.SIGHUP)
    wait_until(
        lambda: daemon.metric("ticketbridge_config_last_reload_successful") == 0,
        what="reload refused",
    )


def settled(daemon: Daemon) -> bool:
    states = daemon.states()
    return len(states) == 6 and all(
        s in ("verified", "skipped", "dead") for s in states.values()
    )


def ledger_text(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def test_no_secret_appears_in_output_logs_metrics_or_ledger(
    daemon: Daemon, sandbox: Sandbox, tmp_path: Path
) -> None:
    configure(daemon, sandbox, tmp_path)
    script_failures(sandbox)
    daemon.start()
    daemon.notify("p1")
    daemon.notify("r1", kind="recovery")
    wait_until(lambda: settled(daemon), timeout=40, what="deliveries settled")

    outputs: list[subprocess.CompletedProcess[str]] = []
    refuse_a_reload(daemon)
    outputs.append(daemon.command("check-config"))
    daemon.write_config(daemon.config)
    outputs.append(daemon.command("check-config"))
    for argv in (
        ["status"],
        ["status", "--json"],
        ["events", "list"],
        ["events", "list", "--json"],
        ["events", "show", "nagios:p1"],
        ["events", "show", "nagios:p1", "--json"],
        ["route", str(next(daemon.spool.glob("processed/*p1.json")))],
        ["route", str(next(daemon.spool.glob("processed/*p1.json"))), "--json"],
    ):
        outputs.append(daemon.command(*argv))
    metrics = daemon.metrics()
    assert daemon.stop() == 0

    # The run did what it should, so the texts below are worth searching.
    states = daemon.states()
    assert states[("p1", "jira_new")] == "dead"
    assert states[("p1", "hook")] == states[("p1", "snow_old")] == "verified"
    assert "HTTP 401" in daemon.log() and "config reload refused" in daemon.log()
    assert [p.returncode for p in outputs[:3]] == [2, 0, 1]

    texts = {
        "daemon log": daemon.log(),
        "metrics": metrics,
        "ledger": ledger_text(daemon.ledger),
    }
    for process in outputs:
        name = " ".join(process.args[4:])
        texts[f"{name} stdout"] = process.stdout
        texts[f"{name} stderr"] = process.stderr
    leaks = [
        f"{secret!r} in {where}"
        for where, text in texts.items()
        for secret in SECRET_VALUES
        if secret in text
    ]
    assert leaks == []
