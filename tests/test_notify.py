"""`ticketbridge notify` turns Nagios notification macros into one spool file."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ticketbridge.events import EventKind, event_from_mapping
from ticketbridge.sources.notify import main

SERVICE_PROBLEM = {
    "NAGIOS_NOTIFICATIONTYPE": "PROBLEM",
    "NAGIOS_HOSTNAME": "web01",
    "NAGIOS_SERVICEDESC": "HTTP",
    "NAGIOS_SERVICESTATE": "CRITICAL",
    "NAGIOS_SERVICEOUTPUT": "HTTP CRITICAL - 503 Service Unavailable",
    "NAGIOS_LONGSERVICEOUTPUT": "upstream timed out",
    "NAGIOS_SERVICEPROBLEMID": "17",
    "NAGIOS_LASTSERVICEPROBLEMID": "9",
    "NAGIOS_SERVICENOTIFICATIONID": "41",
    "NAGIOS_SERVICESTATETYPE": "HARD",
    "NAGIOS_TIMET": "1764855000",
}


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without notification macros from the outside."""
    for name in list(os.environ):
        if name.startswith(("NAGIOS_", "ICINGA_")):
            monkeypatch.delenv(name)


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def notify(spool: Path, *options: str) -> int:
    return main(["--spool", str(spool), *options])


def spooled(spool: Path) -> list[dict[str, Any]]:
    files = sorted(spool.iterdir())
    return [json.loads(path.read_text(encoding="utf-8")) for path in files]


def test_service_problem_becomes_one_event_file(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)

    assert notify(spool) == 0

    [data] = spooled(spool)
    event = event_from_mapping("nagios", data)
    assert event.kind is EventKind.PROBLEM
    assert (event.host, event.check, event.severity) == ("web01", "HTTP", "CRITICAL")
    assert event.summary == "HTTP CRITICAL - 503 Service Unavailable"
    assert event.details == "upstream timed out"
    assert event.problem_id == "17"
    assert event.occurred_at.isoformat() == "2025-12-04T13:30:00+00:00"
    assert data["notification_type"] == "PROBLEM"
    assert data["notification_id"] == "41"


def test_recovery_carries_the_problem_id_of_the_problem_it_ends(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On RECOVERY Nagios zeroes the current id; the last one names the problem."""
    set_env(monkeypatch, SERVICE_PROBLEM)
    monkeypatch.setenv("NAGIOS_NOTIFICATIONTYPE", "RECOVERY")
    monkeypatch.setenv("NAGIOS_SERVICESTATE", "OK")
    monkeypatch.setenv("NAGIOS_SERVICEPROBLEMID", "0")
    monkeypatch.setenv("NAGIOS_LASTSERVICEPROBLEMID", "17")

    assert notify(spool) == 0

    [data] = spooled(spool)
    assert data["kind"] == "recovery"
    assert data["problem_id"] == "17"
    assert data["severity"] == "OK"


def test_host_notification_without_service_uses_host_macros(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(
        monkeypatch,
        {
            "NAGIOS_NOTIFICATIONTYPE": "PROBLEM",
            "NAGIOS_HOSTNAME": "db01",
            "NAGIOS_HOSTSTATE": "DOWN",
            "NAGIOS_HOSTOUTPUT": "PING CRITICAL - 100% packet loss",
            "NAGIOS_HOSTPROBLEMID": "5",
            "NAGIOS_HOSTNOTIFICATIONID": "8",
            "NAGIOS_SERVICEPROBLEMID": "99",
            "NAGIOS_TIMET": "1764855000",
        },
    )

    assert notify(spool) == 0

    [data] = spooled(spool)
    event = event_from_mapping("nagios", data)
    assert (event.host, event.check, event.severity) == ("db01", "", "DOWN")
    assert event.summary == "PING CRITICAL - 100% packet loss"
    assert event.problem_id == "5"
    assert data["object_type"] == "host"
    assert data["notification_id"] == "8"


def test_acknowledgement_keeps_author_and_comment(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)
    monkeypatch.setenv("NAGIOS_NOTIFICATIONTYPE", "ACKNOWLEDGEMENT")
    monkeypatch.setenv("NAGIOS_NOTIFICATIONAUTHOR", "alice")
    monkeypatch.setenv("NAGIOS_NOTIFICATIONCOMMENT", "looking into it")

    assert notify(spool) == 0

    [data] = spooled(spool)
    assert data["kind"] == "acknowledgement"
    assert data["author"] == "alice"
    assert data["comment"] == "looking into it"
    assert data["details"] == "upstream timed out\nalice: looking into it"
    assert data["problem_id"] == "17"


@pytest.mark.parametrize(
    ("notification_type", "kind"),
    [
        ("FLAPPINGSTART", "flapping"),
        ("FLAPPINGSTOP", "flapping"),
        ("DOWNTIMESTART", "downtime"),
        ("DOWNTIMEEND", "downtime"),
        ("DOWNTIMECANCELLED", "downtime"),
        ("CUSTOM", "update"),
    ],
)
def test_other_notification_types_keep_a_comment_kind(
    notification_type: str, kind: str, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)
    monkeypatch.setenv("NAGIOS_NOTIFICATIONTYPE", notification_type)

    assert notify(spool) == 0

    [data] = spooled(spool)
    assert data["kind"] == kind
    assert data["notification_type"] == notification_type


def test_options_override_the_environment(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)

    code = notify(
        spool,
        *("--host", "web02", "--check", "HTTPS", "--severity", "WARNING"),
        *("--summary", "slow", "--details", "p99 2s", "--kind", "UPDATE"),
        *("--id", "given-1", "--problem-id", "77"),
    )

    assert code == 0
    [data] = spooled(spool)
    assert data["host"] == "web02"
    assert data["check"] == "HTTPS"
    assert data["severity"] == "WARNING"
    assert (data["summary"], data["details"]) == ("slow", "p99 2s")
    assert data["kind"] == "update"
    assert data["id"] == "given-1"
    assert data["problem_id"] == "77"


def test_run_by_hand_without_macros(spool: Path) -> None:
    """The demo's way: options only, no Nagios environment at all."""
    code = notify(spool, "--kind", "problem", "--host", "web01", "--check", "HTTP")

    assert code == 0
    [data] = spooled(spool)
    event = event_from_mapping("spool", data)
    assert event.kind is EventKind.PROBLEM
    assert event.source_event_id.startswith("nagios-")
    assert "notification_type" not in data
    assert data["object_type"] == "service"


def test_same_notification_twice_gives_the_same_event_id(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried notify is two files but one event: the ledger keeps one."""
    set_env(monkeypatch, SERVICE_PROBLEM)

    assert notify(spool) == 0
    assert notify(spool) == 0
    monkeypatch.setenv("NAGIOS_SERVICENOTIFICATIONID", "42")
    assert notify(spool) == 0

    first, retried, next_one = (data["id"] for data in spooled(spool))
    assert first == retried
    assert next_one != first


def test_one_notification_to_several_contacts_gives_one_event_id(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BC-06: Nagios runs notify once per contact; the copies are one event."""
    set_env(monkeypatch, SERVICE_PROBLEM)
    for second, contact in (("1764855000", "admins"), ("1764855001", "oncall")):
        monkeypatch.setenv("NAGIOS_CONTACTNAME", contact)
        monkeypatch.setenv("NAGIOS_TIMET", second)
        assert notify(spool) == 0

    first, second_copy = (data["id"] for data in spooled(spool))
    assert first == second_copy


def test_file_names_sort_in_the_order_they_were_written(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recovery in the same second as its problem is still read after it."""
    set_env(monkeypatch, SERVICE_PROBLEM)
    assert notify(spool) == 0
    monkeypatch.setenv("NAGIOS_NOTIFICATIONTYPE", "RECOVERY")
    monkeypatch.setenv("NAGIOS_SERVICEPROBLEMID", "0")
    assert notify(spool) == 0

    kinds = [data["kind"] for data in spooled(spool)]
    assert kinds == ["problem", "recovery"]


def test_file_is_complete_json_with_no_temporary_left(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)

    assert notify(spool) == 0

    [path] = spool.iterdir()
    assert not path.name.startswith(".")
    assert path.name.endswith(".json")
    assert path.read_bytes().endswith(b"}\n")


def test_file_mode_is_0640_under_the_usual_umask(
    spool: Path, monkeypatch: pytest.MonkeyPatch, umask: None
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)

    assert notify(spool) == 0

    [path] = spool.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_stricter_umask_makes_the_file_stricter(
    spool: Path, monkeypatch: pytest.MonkeyPatch, umask: None
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)
    os.umask(0o077)

    assert notify(spool) == 0

    [path] = spool.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_unexpanded_macro_is_refused_naming_the_variable(
    spool: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)
    monkeypatch.setenv("NAGIOS_HOSTNAME", "$HOSTNAME$")

    assert notify(spool) == 2

    assert "NAGIOS_HOSTNAME" in capsys.readouterr().err
    assert list(spool.iterdir()) == []


def test_unexpanded_macro_in_an_option_is_refused(
    spool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = notify(spool, "--kind", "problem", "--host", "web01", "--check", "$X$")

    assert code == 2
    assert "--check" in capsys.readouterr().err
    assert list(spool.iterdir()) == []


def test_missing_spool_directory_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)
    missing = tmp_path / "no-such-spool"

    assert notify(missing) == 2

    assert str(missing) in capsys.readouterr().err
    assert not missing.exists()


def test_event_without_host_is_refused_before_writing(
    spool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert notify(spool, "--kind", "problem", "--check", "HTTP") == 2

    assert "host" in capsys.readouterr().err
    assert list(spool.iterdir()) == []


def test_event_without_kind_is_refused(
    spool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert notify(spool, "--host", "web01") == 2

    assert "NAGIOS_NOTIFICATIONTYPE" in capsys.readouterr().err
    assert list(spool.iterdir()) == []


def test_unknown_notification_type_is_refused(
    spool: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)
    monkeypatch.setenv("NAGIOS_NOTIFICATIONTYPE", "SOMETHING")

    assert notify(spool) == 2

    assert "SOMETHING" in capsys.readouterr().err
    assert list(spool.iterdir()) == []


def test_unknown_kind_option_is_refused(
    spool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert notify(spool, "--kind", "explosion", "--host", "web01") == 2

    assert "--kind" in capsys.readouterr().err


def test_bad_timet_is_refused(
    spool: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(monkeypatch, SERVICE_PROBLEM)
    monkeypatch.setenv("NAGIOS_TIMET", "yesterday")

    assert notify(spool) == 2

    assert "NAGIOS_TIMET" in capsys.readouterr().err
