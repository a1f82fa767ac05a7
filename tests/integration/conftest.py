from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Daemon, Sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    server = Sandbox(tmp_path / "sandbox.log")
    yield server
    server.stop()


@pytest.fixture
def daemon(tmp_path: Path, sandbox: Sandbox) -> Iterator[Daemon]:
    process = Daemon(tmp_path / "daemon", sandbox.url)
    yield process
    process.stop()
