"""The ledger's status tables and operator repairs."""

from pathlib import Path

from tests.helpers import make_event
from ticketbridge.ledger import Ledger, Routed
from ticketbridge.routing import correlation_marker


def routed(event_id: str) -> Routed:
    event = make_event(id=event_id)
    return Routed(
        event, "nagios|web01|HTTP", "all", ["jira"], correlation_marker(event)
    )


async def status_of(ledger: Ledger, table: str) -> dict:
    rows = await ledger.rows(f"SELECT * FROM {table}")
    assert len(rows) == 1
    return rows[0]


async def test_a_failed_poll_counts_and_a_good_one_resets_the_streak(
    tmp_path: Path,
) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.record_source_poll("nagios", False, "disk gone")
    await ledger.record_source_poll("nagios", False, "disk gone again")
    await ledger.record_source_poll("nagios", True, None)
    row = await status_of(ledger, "source_status")
    await ledger.close()

    assert row["consecutive_errors"] == 0 and row["total_errors"] == 2
    assert row["last_error"] == "disk gone again"
    assert row["last_success_at"] >= row["last_error_at"]


async def test_destination_status_keeps_fields_not_given(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.record_destination_status("jira", last_error="HTTP 500")
    await ledger.record_destination_status(
        "jira", circuit_state="open", probes={"auth": "ok"}
    )
    row = await status_of(ledger, "destination_status")
    await ledger.close()

    assert row["last_error"] == "HTTP 500" and row["circuit_state"] == "open"
    assert row["probes"] == '{"auth": "ok"}'


async def test_operator_retry_revives_a_dead_delivery_now(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest("nagios", [routed("a")], None)
    delivery = await ledger.delivery(1)
    await ledger.mark_failed(
        delivery, "create", "HTTP 401", status=401, duration=0.1, retry_at=None
    )

    changed = await ledger.operator_retry([1])
    after = await ledger.delivery(1)
    attempts = await ledger.rows("SELECT outcome FROM attempts ORDER BY id")
    await ledger.close()

    assert changed == [1]
    assert (after.state, after.consecutive_failures) == ("pending", 0)
    assert [a["outcome"] for a in attempts] == ["dead", "operator-retry"]


async def test_operator_retry_leaves_verified_deliveries_alone(
    tmp_path: Path,
) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest("nagios", [routed("a")], None)
    await ledger.mark_verified(await ledger.delivery(1), "create")

    changed = await ledger.operator_retry([1])
    state = (await ledger.delivery(1)).state
    await ledger.close()

    assert changed == [] and state == "verified"


async def test_operator_skip_records_the_reason(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest("nagios", [routed("a")], None)

    await ledger.operator_skip([1], "ticket made by hand")
    after = await ledger.delivery(1)
    await ledger.close()

    assert after.state == "skipped"
    assert after.last_error == "operator: ticket made by hand"


async def test_the_route_of_an_event_is_stored_with_it(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest("nagios", [routed("a")], None)
    rows = await ledger.rows("SELECT route FROM events")
    await ledger.close()
    assert rows == [{"route": "all"}]
