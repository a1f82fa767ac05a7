"""`ticketbridge ... | head` ends quietly when the reader goes away."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import base_config, write_config
from tests.operator_ledger import build_ledger


def run_into_closed_pipe(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run the command with stdout a pipe whose reader has already closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "ticketbridge", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


def test_check_config_into_a_closed_pipe_prints_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    config = write_config(tmp_path / "c.yaml", base_config(tmp_path))

    done = run_into_closed_pipe("check-config", str(config))

    assert done.stderr.decode() == ""
    assert done.returncode == 0


def test_an_operator_command_into_a_closed_pipe_prints_no_traceback(
    tmp_path: Path,
) -> None:
    ledger = build_ledger(tmp_path)

    done = run_into_closed_pipe("events", "list", "--ledger", str(ledger))

    assert done.stderr.decode() == ""
    assert done.returncode == 0
