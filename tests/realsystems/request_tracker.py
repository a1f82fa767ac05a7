"""A private Request Tracker 5 for tests, from Debian's packages, on loopback.

The harness runs the packaged RT (/usr/share/request-tracker5) as plain
processes with a configuration and a SQLite database of its own: RT reads
its site configuration from `RT_SITE_CONFIG` and its drop-in folder from
`RT_SITE_CONFIG_DIR`, so the package's own configuration (and the database
its postinst made) is never read. That configuration also moves RT's
variable, Mason cache and session folders into the work folder, sends mail
to mbox files there and logs to the server's stderr.

`prepare()` creates the database with `rt-setup-database` and adds what the
tests need with a small Perl script run against RT's libraries: a queue, a
ticket custom field applied to it, an auth token for `root`, and one for a
user who may create, see and comment on tickets but not change them.
`start()` serves RT with its own `rt-server` (Starlet, two workers) on a
free loopback port.

Usage::

    with rt_workdir() as workdir:
        rt = RequestTrackerHarness(workdir)
        facts = rt.prepare()
        with rt:
            ...  # REST2 calls to rt.url with `Authorization: token facts.token`

The processes run as the calling user, who must be able to write the work
folder; RT needs no other file outside the package.
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

RT_ROOT = Path("/usr/share/request-tracker5")
RT_SERVER = RT_ROOT / "libexec" / "rt-server"
RT_SETUP_DATABASE = Path("/usr/sbin/rt-setup-database-5")
STARLET = Path("/usr/share/perl5/Plack/Handler/Starlet.pm")
INSTALL_HINT = "run `make test` (scripts/install-test-packages.sh installs it)"


class RequestTrackerError(RuntimeError):
    """RT could not be set up, started or stopped."""


@dataclass(frozen=True)
class RequestTrackerFacts:
    """What `prepare()` made."""

    token: str
    queue: str
    custom_field: str
    # A user who may create, see and comment on tickets but not modify them.
    limited_token: str


def require_request_tracker() -> None:
    """Raise RequestTrackerError, saying how to install it, if RT is missing."""
    for needed, package in (
        (RT_SERVER, "request-tracker5"),
        (RT_SETUP_DATABASE, "request-tracker5"),
        (STARLET, "rt5-standalone"),
    ):
        if not needed.exists():
            raise RequestTrackerError(
                f"{needed} is missing (package {package}): {INSTALL_HINT}"
            )
    found = subprocess.run(
        ["perl", "-MDBD::SQLite", "-e", "1"], capture_output=True, check=False
    )
    if found.returncode != 0:
        raise RequestTrackerError(
            f"Perl's DBD::SQLite is missing (package rt5-db-sqlite): {INSTALL_HINT}"
        )


@contextlib.contextmanager
def rt_workdir() -> Iterator[Path]:
    """A fresh folder for configuration, database, caches and logs; removed after."""
    path = Path(tempfile.mkdtemp(prefix="ticketbridge-rt-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class RequestTrackerHarness:
    """One private RT: its configuration, its database file, its server."""

    def __init__(
        self,
        workdir: Path,
        *,
        queue: str = "Operations",
        custom_field: str = "Correlation key",
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.queue = queue
        self.custom_field = custom_field
        self.database = self.workdir / "rt.sqlite3"
        self.site_config = self.workdir / "RT_SiteConfig.pm"
        self.log_file = self.workdir / "rt-server.log"
        self.mail_folder = self.workdir / "var"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}

    @property
    def url(self) -> str:
        if self.port is None:
            raise RequestTrackerError("RT is not started")
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RequestTrackerHarness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def prepare(self) -> RequestTrackerFacts:
        """Create the database and the queue, custom field and token in it."""
        require_request_tracker()
        self._write_config(port=None)

        started = time.monotonic()
        self._run(
            [str(RT_SETUP_DATABASE), "--action", "init", "--skip-create"],
            "create RT's database",
        )
        self.timings["database"] = time.monotonic() - started

        started = time.monotonic()
        script = self.workdir / "setup.pl"
        script.write_text(SETUP_SCRIPT, encoding="utf-8")
        output = self._run(
            ["perl", str(script), self.queue, self.custom_field],
            "set up the queue, custom field and token",
        )
        self.timings["setup"] = time.monotonic() - started

        facts = last_json_line(output)
        if facts is None:
            raise RequestTrackerError(
                f"the set-up script printed no facts:\n{output[-2000:]}"
            )
        return RequestTrackerFacts(
            token=str(facts["token"]),
            queue=str(facts["queue"]),
            custom_field=str(facts["custom_field"]),
            limited_token=str(facts["limited_token"]),
        )

    def start(self) -> RequestTrackerHarness:
        """Serve with rt-server on a free loopback port; wait until it answers."""
        require_request_tracker()
        self.port = free_port()
        self._write_config(port=self.port)
        command = [
            str(RT_SERVER),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            # Starlet's default is ten workers of ~200 MB each.
            "--max-workers",
            "2",
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
                cwd=self.workdir,
            )

        try:
            self._wait_until_serving()
        except RequestTrackerError as exc:
            self.stop()
            raise RequestTrackerError(f"{exc}\n{self.diagnostics()}") from exc
        self.timings["start"] = time.monotonic() - started
        return self

    def stop(self) -> None:
        """TERM the server by its PID; KILL its process group after the bound.

        Starlet's master ends its workers on TERM; only when it does not stop
        in time are the workers (same group, our own session) killed too.
        """
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=self.stop_timeout)
        self.process = None

    def resident_mb(self) -> float:
        """Resident memory of the server and its workers, in MB."""
        if self.process is None:
            return 0.0
        pids = [self.process.pid, *_children(self.process.pid)]
        return sum(_rss_kb(pid) for pid in pids) / 1024

    def diagnostics(self, lines: int = 40) -> str:
        """The end of RT's log, for a failure message."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no RT log)"
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self, port: int | None) -> None:
        (self.workdir / "RT_SiteConfig.d").mkdir(exist_ok=True)
        for folder in ("var", "mason", "sessions"):
            (self.workdir / folder).mkdir(exist_ok=True)
        web = ""
        if port is not None:
            web = (
                f"Set($WebPort, {port});\n"
                f"Set($WebBaseURL, 'http://127.0.0.1:{port}');\n"
            )
        self.site_config.write_text(
            SITE_CONFIG.format(
                database=_perl_string(str(self.database)),
                var=_perl_string(str(self.workdir / "var")),
                mason=_perl_string(str(self.workdir / "mason")),
                sessions=_perl_string(str(self.workdir / "sessions")),
                web=web,
            ),
            encoding="utf-8",
        )

    def _run(self, command: list[str], what: str) -> str:
        result = subprocess.run(
            command,
            cwd=self.workdir,
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise RequestTrackerError(
                f"could not {what} (exit {result.returncode}):\n{tail}"
            )
        return result.stdout

    def _environment(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
        env = {k: v for k, v in os.environ.items() if k in keep}
        # Without both, RT would read the package's configuration and write
        # into the package's own database.
        env["RT_SITE_CONFIG"] = str(self.site_config)
        env["RT_SITE_CONFIG_DIR"] = str(self.workdir / "RT_SiteConfig.d")
        return env

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise RequestTrackerError(f"rt-server exited with {code}")
            try:
                with urllib.request.urlopen(f"{self.url}/REST/2.0/rt", timeout=5):
                    return
            except urllib.error.HTTPError:
                return  # it answers (401 without a token): that is all we wait for
            except OSError:
                time.sleep(0.2)
        raise RequestTrackerError(f"RT did not answer within {self.start_timeout:g} s")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name is in parentheses and may hold spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _perl_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


SITE_CONFIG = """\
# Written by the test harness: a private RT on loopback.
Set($rtname, 'ticketbridge-test');
Set($Organization, 'ticketbridge.test');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, {database});
Set($WebDomain, '127.0.0.1');
Set($WebPath, '');
{web}Set($LogToSyslog, undef);
Set($LogToFile, undef);
Set($LogToSTDERR, 'warning');
# Mail goes to mbox files in the variable folder, never to a mailer.
Set($MailCommand, 'mbox');
# Folders the package puts under /var: ours instead.
$RT::VarPath = {var};
$RT::MasonDataDir = {mason};
$RT::MasonSessionDir = {sessions};
1;
"""

SETUP_SCRIPT = """\
# Written by the test harness; runs with RT's libraries against the private
# configuration named by RT_SITE_CONFIG. Arguments: queue, custom field.
use strict;
use warnings;
use lib '/usr/share/request-tracker5/lib';
use JSON::PP;
use RT;

RT::LoadConfig();
RT::Init();
my ($queue_name, $field_name) = @ARGV;
my $system = RT->SystemUser;

my $queue = RT::Queue->new($system);
my ($queue_id, $queue_msg) = $queue->Create(Name => $queue_name);
die "queue: $queue_msg\\n" unless $queue_id;

my $field = RT::CustomField->new($system);
my ($field_id, $field_msg) = $field->Create(
    Name => $field_name,
    Type => 'FreeformSingle',
    LookupType => 'RT::Queue-RT::Ticket',
);
die "custom field: $field_msg\\n" unless $field_id;
my ($applied, $apply_msg) = $field->AddToObject($queue);
die "custom field on queue: $apply_msg\\n" unless $applied;

my $root = RT::User->new($system);
$root->Load('root');
my $as_root = RT::CurrentUser->new($root);

sub token_for {
    my ($user) = @_;
    my $token = RT::AuthToken->new($as_root);
    my ($id, $msg, $secret) = $token->Create(
        Owner => $user->id, Description => 'ticketbridge tests');
    die "token for " . $user->Name . ": $msg\\n" unless $id;
    return $secret;
}

my $limited = RT::User->new($system);
my ($user_id, $user_msg) = $limited->Create(
    Name => 'limited', EmailAddress => 'limited@example.invalid', Privileged => 1);
die "user: $user_msg\\n" unless $user_id;
for my $right (qw(SeeQueue CreateTicket ShowTicket CommentOnTicket
                  ShowTicketComments SeeCustomField SetInitialCustomField)) {
    my ($granted, $grant_msg) = $limited->PrincipalObj->GrantRight(
        Right => $right, Object => $queue);
    die "right $right: $grant_msg\\n" unless $granted;
}

print encode_json({
    token => token_for($root),
    limited_token => token_for($limited),
    queue => $queue->Name,
    custom_field => $field->Name,
}), "\\n";
"""
