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


def test_same_alert_from_two_sources_has_two_incident_keys() -> None:
    """BC-08: a test and a stage Nagios never share a ticket."""
    fields = ["host", "check"]  # even when the source is left out
    test = make_event(source="icinga-test", host="app-1", check="restart-pods")
    stage = make_event(source="icinga-stage", host="app-1", check="restart-pods")
    assert incident_key(test, fields) == "icinga-test|app-1|restart-pods"
    assert incident_key(test, fields) != incident_key(stage, fields)


def test_environment_field_separates_incidents_of_one_source() -> None:
    """BC-08: an `env` field in the incident key tells environments apart."""
    fields = ["source", "env", "host", "check"]
    test = make_event(env="test")
    stage = make_event(env="stage")
    assert incident_key(test, fields) != incident_key(stage, fields)


def test_separator_inside_a_value_cannot_merge_two_incidents() -> None:
    fields = ["source", "host", "check"]
    one = make_event(host="a|b", check="c")
    two = make_event(host="a", check="b|c")
    assert incident_key(one, fields) != incident_key(two, fields)


def test_markers_of_the_same_event_id_from_two_sources_differ() -> None:
    """BC-08: the marker hashes the source with the event id."""
    test = make_event(source="icinga-test", id="2201")
    stage = make_event(source="icinga-stage", id="2201")
    assert correlation_marker(test) != correlation_marker(stage)
