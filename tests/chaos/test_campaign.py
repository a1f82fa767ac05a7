"""A small crash campaign as a behaviour test: no event lost, none doubled.

It runs the same script as `make chaos`, scaled down (300 events, at least
10 kills), and checks its verdict and figures; the timing is not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_campaign_loses_and_doubles_nothing(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    command = [sys.executable, "-m", "tests.chaos.campaign", "--small"]
    command += ["--workdir", str(tmp_path / "run"), "--json", str(figures)]

    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(figures.read_text(encoding="utf-8"))
    assert result["events_ingested"] == result["events_written"] == 300
    assert result["kills"] >= 10
    for name, counts in result["destinations"].items():
        assert counts["tickets_created"] == counts["tickets_expected"] > 0, name
        for figure in ("duplicates", "lost", "stuck", "dead", "wrong_state"):
            assert counts[figure] == 0, (name, figure)
