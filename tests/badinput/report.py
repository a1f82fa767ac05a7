"""Print what becomes of every bad input: `python -m tests.badinput.report`."""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

from tests.badinput.run import format_table, run_corpora


def main() -> int:
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="badinput-") as workdir:
        started = time.monotonic()
        results = asyncio.run(run_corpora(Path(workdir)))
        elapsed = time.monotonic() - started
    print(format_table(results))
    print(f"elapsed: {elapsed:.1f} s")
    for outcome in results.unexpected():
        print(
            f"UNEXPECTED {outcome.category}: {outcome.item!r} expected "
            f"{outcome.expect}, got {outcome.got} {outcome.detail}"
        )
    return 1 if results.unexpected() or results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
