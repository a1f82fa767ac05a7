"""The alert rules pass promtool's checks and unit tests, and each has a runbook."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.realsystems.prometheus import RULES, run_promtool

HERE = Path(__file__).parent
UNIT_TESTS = HERE / "ticketbridge-alerts.test.yml"
RUNBOOK = RULES.parent / "RUNBOOK.md"
RUNBOOK_LINK = re.compile(r"^config/prometheus/RUNBOOK\.md#([a-z0-9-]+)$")


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the runbook's headings."""
    anchors = set()
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def test_rules_file_passes_promtool_check() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_promtool_unit_tests() -> None:
    result = run_promtool("test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_summary_description_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    for rule in rules():
        notes = rule["annotations"]
        assert notes.get("summary"), rule["alert"]
        assert "{{" in notes.get("description", ""), rule["alert"]
        link = RUNBOOK_LINK.match(notes.get("runbook", ""))
        assert link, f"{rule['alert']}: runbook {notes.get('runbook')!r}"
        assert link.group(1) == rule["alert"].lower()
        assert link.group(1) in anchors, f"{rule['alert']}: no section in RUNBOOK.md"


def test_every_alert_is_tested_both_firing_and_silent() -> None:
    data = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    cases = [case for test in data["tests"] for case in test["alert_rule_test"]]
    for rule in rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']} never fires"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']} never silent"
