"""Ticket templates: strict, sandboxed, bounded in time and size."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import make_event
from ticketbridge.events import clean_text
from ticketbridge.templates import (
    OUTPUT_CAP,
    TemplateError,
    TicketTemplates,
    sample_events,
)
from ticketbridge.text import render_text

WHERE = "destinations.jira_new.templates"


def render_summary(source: str, **event: object) -> str:
    templates = TicketTemplates(WHERE, summary=source)
    return templates.render(make_event(**event)).summary


def render_description(source: str, **event: object) -> str:
    templates = TicketTemplates(WHERE, description=source)
    return templates.render(make_event(**event)).description


def error_of(source: str, **event: object) -> str:
    with pytest.raises(TemplateError) as caught:
        render_description(source, **event)
    return str(caught.value)


# Text as it reaches an event: cleaned like every source's input.
event_text = st.text(max_size=60).map(lambda t: clean_text("x", t))
one_word = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), max_size=20
).filter(lambda t: not any(c.isspace() for c in t))


@settings(max_examples=150, deadline=None)
@given(
    host=one_word.filter(bool),
    check=one_word,
    severity=one_word.filter(bool),
    summary=event_text,
    details=event_text,
)
def test_default_templates_reproduce_the_built_in_text(
    host: str, check: str, severity: str, summary: str, details: str
) -> None:
    """Configs without templates keep the ticket text they had."""
    event = replace(
        make_event(),
        host=host,
        check=check,
        severity=severity,
        summary=summary,
        details=details,
    )
    rendered = TicketTemplates(WHERE).render(event)
    legacy = render_text(event)
    assert rendered.summary == legacy.title
    assert rendered.description == legacy.body
    assert rendered.comment == legacy.comment


def test_variables_cover_the_event_and_its_extra_fields() -> None:
    source = (
        "{{ kind }}|{{ host }}|{{ check }}|{{ state }}|{{ severity }}|{{ output }}|"
        "{{ occurred_at | utc }}|{{ occurred_at.year }}|{{ source }}|{{ event_id }}|"
        "{{ problem_id }}|{{ extra.env }}|{{ extra['x-y'] }}"
    )
    text = render_description(source, env="prod", problem_id="7", **{"x-y": "z"})
    assert text == (
        "problem|web01|HTTP|CRITICAL|CRITICAL|HTTP 503|2026-12-01 10:00:00 UTC|2026|"
        "nagios|e1|7|prod|z"
    )


def test_incident_key_and_marker_are_variables() -> None:
    templates = TicketTemplates(WHERE, description="{{ incident_key }} {{ marker }}")
    event = replace(make_event(), incident_key="nagios|web01|HTTP")
    text = templates.render(event, marker="tb-1").description
    assert text == "nagios|web01|HTTP tb-1"


def test_misspelt_name_is_an_error_naming_template_and_line() -> None:
    """BC-29: strict undefined: a typo never renders as empty text."""
    message = error_of("Host: {{ host }}\nCheck: {{ hostnme }}")
    assert message == f"{WHERE}.description: line 2: 'hostnme' is undefined"


def test_syntax_error_names_template_and_line() -> None:
    with pytest.raises(TemplateError) as caught:
        TicketTemplates(WHERE, summary="ok\n{% if host %}no end")
    assert str(caught.value).startswith(f"{WHERE}.summary: line 2: ")


def test_missing_extra_field_fails_at_run_time() -> None:
    assert "'dict object' has no attribute 'team'" in error_of("{{ extra.team }}")


def test_missing_extra_field_may_have_a_default() -> None:
    assert render_description("{{ extra.team | default('ops') }}") == "ops"


def test_check_accepts_any_extra_field_but_not_unknown_names() -> None:
    """Which extra fields a source sends is unknown at load; variable names are."""
    good = TicketTemplates(WHERE, summary="{{ extra.team }} {{ host }}")
    bad = TicketTemplates(WHERE, summary="{{ hostname }}")
    assert good.check() == []
    assert bad.check() == [f"{WHERE}.summary: line 1: 'hostname' is undefined"]


def test_check_renders_one_sample_of_each_kind() -> None:
    source = "{% if kind == 'recovery' %}{{ nope }}{% endif %}{{ host }}"
    problems = TicketTemplates(WHERE, summary=source).check()
    assert problems == [f"{WHERE}.summary: line 1: 'nope' is undefined"]
    assert {e.kind.value for e in sample_events()} == {
        "problem",
        "recovery",
        "acknowledgement",
        "update",
    }


def test_summary_is_one_line() -> None:
    assert render_summary("{{ host }}\n\n  {{ check }}\t!") == "web01 HTTP !"


def test_empty_summary_is_an_error() -> None:
    with pytest.raises(TemplateError, match="summary: rendered empty"):
        render_summary("{{ check }}", check="")


def test_rendered_text_loses_control_characters_but_keeps_newline_and_tab() -> None:
    text = render_description("{{ extra.raw_text }}", raw_text="a\x00b\x07c\r\nd\te")
    assert text == "abc\nd\te"


def test_template_cannot_reach_python_internals() -> None:
    assert "unsafe" in error_of("{{ host.__class__.__mro__ }}")


def test_runaway_loop_is_stopped() -> None:
    """A template that would loop for hours fails instead of hanging a sender."""
    loop = (
        "{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% endfor %}{% endfor %}"
    )
    assert "rendering took longer than" in error_of(loop)


def test_huge_output_is_cut_at_the_render_cap() -> None:
    """A template that would render about 1 GB stops at OUTPUT_CAP characters."""
    huge = (
        "{% for i in range(100000) %}{% for j in range(1000) %}"
        "xxxxxxxxxx{% endfor %}{% endfor %}"
    )
    text = render_description(huge)
    assert len(text) == OUTPUT_CAP
    assert text.endswith("…")


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 100000000 }}",
        "{{ host.center(100000000) }}",
        "{{ host | center(100000000) }}",
        "{{ '%0100000000d' % 1 }}",
        "{{ '{:>100000000}'.format(1) }}",
        "{{ 9 ** 100000000 }}",
        "{% set a = 'x' * 900000 %}{{ a ~ a }}",
        "{% set a = 'x' * 900000 %}{{ a + a }}",
        "{% set a = 'x' * 900000 %}{{ a | replace('x', 'yy') }}",
        "{{ occurred_at | utc('%0100000000Y') }}",
    ],
)
def test_values_too_large_to_build_are_refused(source: str) -> None:
    assert "too large" in error_of(source)


def test_no_namespace_to_grow_a_value_across_a_loop() -> None:
    assert "'namespace' is undefined" in error_of("{% set ns = namespace(s='') %}")


def test_sample_events_are_fixed_in_time() -> None:
    times = {e.occurred_at for e in sample_events()}
    assert times == {datetime(2024, 5, 1, 10, 0, tzinfo=UTC)}
