"""Routing: ordered rules, first match wins, drop and dual-write."""

from tests.helpers import make_event
from ticketbridge.config.model import Route
from ticketbridge.routing import Router, correlation_marker, incident_key


def router(*routes: dict) -> Router:
    return Router([Route.model_validate(r) for r in routes])


def test_first_matching_rule_wins() -> None:
    r = router(
        {"name": "db", "match": {"host": "db*"}, "destinations": ["a"]},
        {"name": "rest", "destinations": ["b"]},
    )
    assert r.route(make_event(host="db01")).route == "db"
    assert r.route(make_event(host="web01")).route == "rest"


def test_route_can_send_to_old_and_new_system() -> None:
    r = router({"name": "both", "destinations": ["snow_old", "jira_new"]})
    assert r.route(make_event()).destinations == ("snow_old", "jira_new")


def test_drop_route_sends_nowhere() -> None:
    r = router(
        {"name": "noise", "match": {"check": "NTP*"}, "drop": True},
        {"name": "rest", "destinations": ["b"]},
    )
    decision = r.route(make_event(check="NTP offset"))
    assert decision.dropped and decision.route == "noise"


def test_glob_is_case_insensitive() -> None:
    r = router({"name": "web", "match": {"host": "WEB*"}, "destinations": ["a"]})
    assert r.route(make_event(host="web01")).route == "web"


def test_kind_list_matches() -> None:
    r = router({"name": "p", "match": {"kind": ["recovery"]}, "destinations": ["a"]})
    assert r.route(make_event(kind="problem")).dropped
    assert r.route(make_event(kind="recovery")).route == "p"


def test_field_tests_on_raw_fields() -> None:
    r = router(
        {
            "name": "team",
            "match": {
                "fields": {
                    "team": {"one_of": ["dba", "ops"]},
                    "summary": {"regex": "50[0-9]"},
                }
            },
            "destinations": ["a"],
        }
    )
    assert r.route(make_event(team="dba", summary="HTTP 503")).route == "team"
    assert r.route(make_event(team="web", summary="HTTP 503")).dropped


def test_no_matching_rule_drops_with_a_named_route() -> None:
    r = router({"name": "db", "match": {"host": "db*"}, "destinations": ["a"]})
    assert r.route(make_event(host="web01")).route == "(no route)"


def test_incident_key_defaults_to_source_host_check() -> None:
    key = incident_key(make_event(), ["source", "host", "check"])
    assert key == "nagios|web01|HTTP"


def test_marker_is_safe_for_every_ticketing_query_language() -> None:
    marker = correlation_marker(make_event(id='x" OR labels = "y ^ | ~'))
    assert marker.startswith("tb-")
    assert all(c.isalnum() or c in "._-" for c in marker)
