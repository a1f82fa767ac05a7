"""The shipped systemd unit passes systemd's own checks, offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "ticketbridge.service"
INSTALLED_AT = "/usr/local/bin/ticketbridge"


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: install the systemd package")
    return tool


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at an executable that exists here.

    `verify` refuses an ExecStart binary that is not installed; everything
    else stays as shipped.
    """
    text = UNIT.read_text(encoding="utf-8")
    assert f"ExecStart={INSTALLED_AT} " in text
    here = Path(sys.executable).with_name("ticketbridge")
    if not here.exists():
        here = Path(sys.executable)
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_AT, str(here)), encoding="utf-8")
    return copy


def test_unit_verifies_without_a_word(unit: Path) -> None:
    result = subprocess.run(
        [analyze(), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit.parent,
    )

    assert result.returncode == 0, result.stderr
    # verify also loads the host's other units; their complaints are not ours.
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if UNIT.name in line or not line.startswith("/")
    ]
    assert ours == []


def test_unit_security_exposure_is_at_most_2(unit: Path) -> None:
    """`make test` prints the figure itself (scripts/unit-exposure.sh)."""
    result = subprocess.run(
        [analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit.parent,
    )

    assert result.returncode == 0, result.stderr
    overall = [line for line in result.stdout.splitlines() if "Overall" in line]
    assert overall, result.stdout
    # "→ Overall exposure level for ticketbridge.service: 1.3 OK 🙂"
    score = float(overall[-1].split(":")[1].split()[0])
    assert score <= 2.0, overall[-1]
