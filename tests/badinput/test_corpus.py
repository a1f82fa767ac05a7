"""The whole bad-input corpus through the daemon's poll path: nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from tests.badinput.run import Results, run_corpora


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    # Run once for the module: each test below reads one property of the run.
    return asyncio.run(run_corpora(tmp_path_factory.mktemp("badinput")))


def test_corpus_holds_at_least_500_inputs(results: Results) -> None:
    assert len(results.outcomes) >= 500


def test_no_input_is_lost(results: Results) -> None:
    """Each input is in the ledger, rejected with a reason, or (not a spool
    file yet) left untouched."""
    assert [o.item for o in results.outcomes if o.got == "lost"] == []


def test_no_poll_fails_on_bad_input(results: Results) -> None:
    assert results.errors == 0


def test_each_input_meets_its_expected_fate(results: Results) -> None:
    assert [
        (o.category, o.item, o.expect, o.got, o.detail) for o in results.unexpected()
    ] == []


def test_every_rejection_names_a_reason(results: Results) -> None:
    rejected = [o for o in results.outcomes if o.got.startswith("rejected:")]
    assert rejected
    assert all(o.got != "rejected:" and o.detail for o in rejected)
