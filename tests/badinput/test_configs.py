"""Every invalid config is refused with the field path: by the library, by
`check-config` and `run` as processes, and by a reload (the old config kept)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.badinput.configs import BROKEN_FILES, bad_configs, demo_config
from tests.helpers import write_config
from ticketbridge.config import ConfigError, load_config
from ticketbridge.daemon import Daemon

CASES = bad_configs()


def sample(daemon: Daemon, name: str) -> float | None:
    return daemon.metrics.registry.get_sample_value(name)


def refusal(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_there_are_at_least_100_invalid_configs() -> None:
    assert len(CASES) >= 100


def test_demo_config_itself_is_valid(tmp_path: Path) -> None:
    load_config(write_config(tmp_path / "demo.yaml", demo_config()))


def test_every_invalid_config_is_refused_naming_its_field(tmp_path: Path) -> None:
    unnamed = []
    for n, case in enumerate(CASES):
        config, field = case.apply(demo_config())
        problems = refusal(write_config(tmp_path / f"{n}.yaml", config))
        if not any(field in problem for problem in problems):
            unnamed.append((case.name, field, problems))
    assert unnamed == []


def test_every_broken_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    for n, (text, phrase) in enumerate(BROKEN_FILES):
        path = tmp_path / f"{n}.yaml"
        path.write_text(text, encoding="utf-8")
        assert phrase in "; ".join(refusal(path)), text


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETBRIDGE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "ticketbridge", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _sample(tmp_path: Path, count: int) -> list[tuple[Path, str]]:
    step = len(CASES) // count
    chosen = []
    for case in CASES[::step][:count]:
        config, field = case.apply(demo_config())
        path = write_config(tmp_path / f"{len(chosen)}.yaml", config)
        chosen.append((path, field))
    return chosen


def test_check_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    sample = _sample(tmp_path, 6)
    runs = [_cli("check-config", str(path)) for path, _ in sample]
    for (path, field), process in zip(sample, runs, strict=True):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 2, stderr
        assert field in stderr and str(path) in stderr


def test_run_with_an_invalid_config_exits_2_before_starting(tmp_path: Path) -> None:
    sample = _sample(tmp_path, 4)
    runs = [_cli("--config", str(path), "run") for path, _ in sample]
    for (_, field), process in zip(sample, runs, strict=True):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 2, stderr
        assert field in stderr and "invalid configuration" in stderr


async def test_reload_refuses_every_invalid_config_and_keeps_the_old(
    tmp_path: Path,
) -> None:
    """BC-30, in process: the reload path of the daemon, for the whole set."""
    base: dict[str, Any] = demo_config()
    path = write_config(tmp_path / "config.yaml", base)
    daemon = Daemon(path, load_config(path))
    old = daemon.config

    for case in CASES:
        config, _ = case.apply(base)
        write_config(path, config)
        await daemon.reload()
        assert daemon.config is old, case.name
        assert sample(daemon, "ticketbridge_config_last_reload_successful") == 0

    for text, _ in BROKEN_FILES:
        path.write_text(text, encoding="utf-8")
        await daemon.reload()
        assert daemon.config is old

    refused = sample(daemon, "ticketbridge_config_reload_failures_total")
    assert refused == len(CASES) + len(BROKEN_FILES)
    assert not daemon.config_ok
