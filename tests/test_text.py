"""Cleaning, grapheme-safe cutting and query quoting of ticket text."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketbridge.text import (
    UnsafeQueryValue,
    clean,
    encoded_query_value,
    quote_jql,
    quote_ticketsql,
    redmine_filter_value,
    truncate,
    utf16_len,
)

# Letters, combining marks, emoji with ZWJ, skin tones, flags, CJK, spaces.
PIECES = ["a", "é", "e\u0301", "中", "👍🏽", "👨‍👩‍👧", "🇩🇪", "❤️", " ", "\n", "x"]
clusters = st.lists(st.sampled_from(PIECES), max_size=80).map("".join)
any_text = st.one_of(clusters, st.text(max_size=80))


@given(text=any_text, limit=st.integers(min_value=1, max_value=60))
def test_cut_text_fits_the_limit_in_utf16_units(text: str, limit: int) -> None:
    assert utf16_len(truncate(text, limit)) <= limit


@given(text=any_text, limit=st.integers(min_value=1, max_value=60))
def test_cut_text_is_a_prefix_marked_with_an_ellipsis(text: str, limit: int) -> None:
    cut = truncate(text, limit)
    if utf16_len(text) <= limit:
        assert cut == text
    else:
        assert cut.endswith("…")
        assert text.startswith(cut[:-1])


@given(text=clusters, limit=st.integers(min_value=1, max_value=60))
def test_cut_never_splits_a_character_from_its_marks_or_joined_emoji(
    text: str, limit: int
) -> None:
    kept = truncate(text, limit).removesuffix("…")
    if not kept or kept == text:
        return
    following = text[len(kept)]
    assert unicodedata.category(following) not in ("Mn", "Mc", "Me")
    assert following not in "\u200d\ufe0f" and kept[-1] != "\u200d"
    assert not 0x1F3FB <= ord(following) <= 0x1F3FF
    regional = sum(1 for c in kept if 0x1F1E6 <= ord(c) <= 0x1F1FF)
    assert regional % 2 == 0


def test_cut_keeps_a_family_emoji_whole() -> None:
    assert truncate("ab👨‍👩‍👧", 8) == "ab…"


def test_cut_keeps_e_with_its_accent() -> None:
    assert truncate("abe\u0301cdef", 4) == "ab…"


@given(st.text())
def test_clean_leaves_no_control_but_newline_and_tab(text: str) -> None:
    cleaned = clean(text)
    assert all(c in "\n\t" or unicodedata.category(c) != "Cc" for c in cleaned)
    cleaned.encode("utf-8")  # no lone surrogates left


def test_clean_keeps_non_latin1_text() -> None:
    """BC-18: only the NUL and BEL of the reported output go."""
    text = "Latency – p99 2.3 s ≥ 2 s (Zürich DC) 🚨 中文 \u0000 bell\u0007 end"
    assert clean(text) == "Latency – p99 2.3 s ≥ 2 s (Zürich DC) 🚨 中文  bell end"


def test_clean_turns_windows_line_ends_into_newlines() -> None:
    assert clean("a\r\nb\rc") == "a\nb\nc"


def test_jql_literal_escapes_quotes_and_backslashes() -> None:
    assert quote_jql('a"b\\c') == '"a\\"b\\\\c"'


def test_jql_refuses_a_newline() -> None:
    with pytest.raises(UnsafeQueryValue):
        quote_jql("a\nb")


def test_encoded_query_refuses_the_condition_separator() -> None:
    with pytest.raises(UnsafeQueryValue):
        encoded_query_value("abc^active=false")
    assert encoded_query_value("tb-1.2_3") == "tb-1.2_3"


@pytest.mark.parametrize("value", ["a|b", "~abc", "!abc", "*", "", "a\tb"])
def test_redmine_filter_refuses_operators_and_alternatives(value: str) -> None:
    with pytest.raises(UnsafeQueryValue):
        redmine_filter_value(value)


def test_ticketsql_literal_escapes_quotes_and_backslashes() -> None:
    assert quote_ticketsql("it's \\ here") == "'it\\'s \\\\ here'"
