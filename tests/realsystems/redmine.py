"""A private Redmine 5 for tests, from Debian's package, on loopback.

The harness runs the packaged Redmine (/usr/share/redmine) as plain
processes with a database of its own: `DATABASE_URL` points Rails at a
SQLite file in the work folder, so the package's own instance is never
touched. `prepare()` migrates that database, loads Redmine's default data
(trackers, statuses, workflows, roles) and adds what the tests need through
`rails runner`: the REST API switched on, the admin's API key, a project, a
marker custom field used as a filter, one that is not, and a tracker without
any workflow. `start()` serves it with WEBrick on a free loopback port.

Usage::

    with redmine_workdir() as workdir:
        redmine = RedmineHarness(workdir)
        facts = redmine.prepare()
        with redmine:
            ...  # REST calls to redmine.url with facts.api_key

Two known limits, both from the package's layout: Rails' file cache stays in
the default instance's folder (/var/cache/redmine/default), shared with any
other Redmine started the same way; and the process runs as the calling user,
who must be able to read /etc/redmine/default (root, or group www-data).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.helpers import free_port, last_json_line

REDMINE_ROOT = Path("/usr/share/redmine")
INSTALL_HINT = "run `make test` (scripts/install-test-packages.sh installs it)"


class RedmineError(RuntimeError):
    """Redmine could not be set up, started or stopped."""


@dataclass(frozen=True)
class RedmineFacts:
    """What `prepare()` made, by id."""

    api_key: str
    project: str
    marker_field: int
    plain_field: int
    trackers: dict[str, int]
    statuses: dict[str, int]


def require_redmine() -> None:
    """Raise RedmineError, saying how to install it, if Redmine is missing."""
    if not (REDMINE_ROOT / "bin" / "rails").exists():
        raise RedmineError(f"Redmine is not installed: {INSTALL_HINT}")
    local = REDMINE_ROOT / "Gemfile.local"
    if 'gem "webrick"' not in local.read_text(encoding="utf-8", errors="replace"):
        raise RedmineError(f"WEBrick is not in Redmine's bundle: {INSTALL_HINT}")


@contextlib.contextmanager
def redmine_workdir() -> Iterator[Path]:
    """A fresh folder for the database, logs and PID file, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="ticketbridge-redmine-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class RedmineHarness:
    """One private Redmine: its database file, its server process."""

    def __init__(
        self,
        workdir: Path,
        *,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.database = self.workdir / "redmine.sqlite3"
        self.log_file = self.workdir / "redmine.log"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedmineError("Redmine is not started")
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RedmineHarness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def prepare(self) -> RedmineFacts:
        """Create the database and everything the tests need in it."""
        require_redmine()

        started = time.monotonic()
        self._run(["bin/rake", "db:migrate"], "migrate the database")
        self.timings["migrate"] = time.monotonic() - started

        started = time.monotonic()
        script = self.workdir / "setup.rb"
        script.write_text(SETUP_SCRIPT, encoding="utf-8")
        output = self._run(
            ["bin/rails", "runner", "-e", "production", str(script)],
            "load default data and set up the project",
        )
        self.timings["setup"] = time.monotonic() - started

        facts = last_json_line(output)
        if facts is None:
            raise RedmineError(f"the set-up script printed no facts:\n{output[-2000:]}")
        return RedmineFacts(
            api_key=facts["api_key"],
            project=facts["project"],
            marker_field=facts["marker_field"],
            plain_field=facts["plain_field"],
            trackers=facts["trackers"],
            statuses=facts["statuses"],
        )

    def start(self) -> RedmineHarness:
        """Serve with WEBrick on a free loopback port; wait until it answers."""
        require_redmine()
        self.port = free_port()
        command = [
            "bin/rails",
            "server",
            "-u",
            "webrick",
            "-e",
            "production",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-P",
            str(self.workdir / "server.pid"),
        ]

        # A session of its own, so a stray signal to the test's group misses it.
        started = time.monotonic()
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self._environment(),
                cwd=REDMINE_ROOT,
            )

        try:
            self._wait_until_serving()
        except RedmineError as exc:
            self.stop()
            raise RedmineError(f"{exc}\n{self.diagnostics()}") from exc
        self.timings["start"] = time.monotonic() - started
        return self

    def stop(self) -> None:
        """TERM the server by its PID; KILL it after the bound."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.stop_timeout)
        self.process = None

    def diagnostics(self, lines: int = 40) -> str:
        """The end of Redmine's log, for a failure message."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no Redmine log)"
        return "\n".join(text.splitlines()[-lines:])

    def _run(self, command: list[str], what: str) -> str:
        result = subprocess.run(
            command,
            cwd=REDMINE_ROOT,
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise RedmineError(f"could not {what} (exit {result.returncode}):\n{tail}")
        return result.stdout

    def _environment(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            RAILS_ENV="production",
            # Merged over the package's database.yml, and wins.
            DATABASE_URL=f"sqlite3:{self.database}",
            # Logs to our file instead of the package instance's log folder.
            RAILS_LOG_TO_STDOUT="1",
            REDMINE_LANG="en",
        )
        return env

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RedmineError(f"Redmine exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(
                    f"{self.url}/issue_statuses.json", timeout=5
                ):
                    return
            except urllib.error.HTTPError:
                return  # it answers: that is all we wait for
            except OSError:
                time.sleep(0.2)
        raise RedmineError(f"Redmine did not answer within {self.start_timeout:g} s")


SETUP_SCRIPT = """\
# Written by the test harness; runs inside Redmine with `rails runner`.
Redmine::DefaultData::Loader.load('en')
Setting.rest_api_enabled = '1'

admin = User.find_by_login('admin')
project = Project.create!(name: 'Operations', identifier: 'ops')
# A tracker with no workflow: Redmine ignores every status change on it.
frozen = Tracker.new(name: 'No workflow', default_status: IssueStatus.first)
frozen.core_fields = Tracker::CORE_FIELDS
frozen.save!
project.trackers = Tracker.all.to_a

marker = IssueCustomField.create!(
  name: 'Correlation key', field_format: 'string', is_filter: true,
  is_for_all: true, trackers: Tracker.all.to_a)
plain = IssueCustomField.create!(
  name: 'Not a filter', field_format: 'string', is_filter: false,
  is_for_all: true, trackers: Tracker.all.to_a)

puts({
  api_key: admin.api_key,
  project: project.identifier,
  marker_field: marker.id,
  plain_field: plain.id,
  trackers: Tracker.all.map { |t| [t.name, t.id] }.to_h,
  statuses: IssueStatus.all.map { |s| [s.name, s.id] }.to_h,
}.to_json)
"""
