"""A private Nagios 4 for tests: real notifications on demand, on loopback.

The harness writes a minimal main config and one host (127.0.0.1) with one
service into a folder of its own, runs `nagios4` there as a plain process and
stops it by its PID. The service's check reads a flag file, so a test decides
its state and forces a check through the command pipe; with one check attempt
and no re-notification, each state change sends exactly one notification.

Usage::

    with nagios_workdir() as workdir:
        spool = shared_dir(workdir / "spool")
        with NagiosHarness(workdir, notify_command(spool)) as nagios:
            nagios.set_state("CRITICAL")
            nagios.force_check()
            [problem] = wait_for_files(spool, 1, timeout=20)

`start()` and `stop()` can be called by hand instead of `with`. Nagios drops
to user `nagios`: the work folder must be reachable by that user (so not
under pytest's private tmp_path, see `nagios_workdir`), the spool writable
(`shared_dir`) and the notification command runnable (`notify_command`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

NAGIOS = "nagios4"
NAGIOS_USER = "nagios"
INSTALL_HINT = "run `make test` (scripts/install-test-packages.sh installs it)"

SERVICE_CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
# Nagios takes a host check's 1 as UP unless aggressive host checking is on.
HOST_CODES = {"UP": 0, "DOWN": 2, "UNREACHABLE": 3}

T = TypeVar("T")


class NagiosError(RuntimeError):
    """Nagios could not be set up, started, commanded or stopped."""


def require_nagios() -> str:
    """Path of the nagios4 binary; the error says how to install it."""
    found = shutil.which(NAGIOS) or shutil.which(NAGIOS, path="/usr/sbin:/sbin")
    if found is None:
        raise NagiosError(f"{NAGIOS} is not installed: {INSTALL_HINT}")
    if _running_as_root():
        try:
            pwd.getpwnam(NAGIOS_USER)
        except KeyError:
            raise NagiosError(
                f"user {NAGIOS_USER} is missing: {INSTALL_HINT}"
            ) from None
    return found


@contextlib.contextmanager
def nagios_workdir() -> Iterator[Path]:
    """A fresh folder that user nagios can reach, removed afterwards.

    pytest's tmp_path lives below a folder only its owner may enter, so the
    harness folder is made directly in the system temp folder instead.
    """
    path = Path(tempfile.mkdtemp(prefix="ticketbridge-nagios-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def shared_dir(path: Path) -> Path:
    """Create `path` as a folder user nagios can write and we can read."""
    path.mkdir(parents=True, exist_ok=True)
    _give_to_nagios(path)
    path.chmod(0o770 if _running_as_root() else 0o755)
    return path


def notify_command(spool: Path, *extra: str) -> str:
    """The Nagios command line running `ticketbridge notify --spool <spool>`.

    Nagios runs it as user nagios, who may not reach this interpreter (a
    Python under root's home, say). Then the system python3 of the same
    version runs it, with our packages on PYTHONPATH.
    """
    args = [*_python_for_nagios(), "-m", "ticketbridge.sources.notify"]
    args += ["--spool", str(spool), *extra]
    return _nagios_quote(args)


def wait_for_files(
    directory: Path, count: int, timeout: float = 20.0, pattern: str = "*.json"
) -> list[Path]:
    """Wait until `directory` holds at least `count` files; return them sorted."""

    def found() -> list[Path] | None:
        files = sorted(directory.glob(pattern))
        return files if len(files) >= count else None

    return wait_for(found, timeout, f"{count} file(s) {pattern} in {directory}")


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns something other than None, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class NagiosHarness:
    """One private Nagios process with one host and one service.

    All its files live in `workdir`: etc/ (config, check scripts), flags/
    (the states the checks report) and var/ (log, status, command pipe).
    """

    host = "tb-host"
    service = "tb-service"

    def __init__(
        self,
        workdir: Path,
        notify_command: str,
        *,
        check_interval: int = 3600,
        start_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.notify_command = notify_command
        self.check_interval = check_interval
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.etc = self.workdir / "etc"
        self.flags = self.workdir / "flags"
        self.var = self.workdir / "var"
        self.main_config = self.etc / "nagios.cfg"
        self.command_pipe = self.var / "nagios.cmd"
        self.log_file = self.var / "nagios.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def __enter__(self) -> NagiosHarness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> NagiosHarness:
        """Write the config, validate it, start Nagios and wait for its pipe."""
        binary = require_nagios()
        self.write_config()
        self.validate(binary)

        # A session of its own, so a stray signal to the test's group misses
        # it, and so `stop` can reach the workers it forks.
        output = (self.var / "nagios.out").open("wb")
        with output:
            self.process = subprocess.Popen(
                [binary, str(self.main_config)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_plain_environment(),
                cwd=self.workdir,
            )

        try:
            wait_for(self._pipe_ready, self.start_timeout, "the Nagios command pipe")
        except (TimeoutError, NagiosError) as exc:
            self.stop()
            detail = f"Nagios did not start: {exc}\n{self.diagnostics()}"
            raise NagiosError(detail) from exc
        return self

    def stop(self) -> None:
        """TERM Nagios by its PID, KILL it after the bound, then its workers."""
        process = self.process
        if process is None:
            return
        # Workers put themselves in process groups of their own, so the
        # group of the main PID does not reach them: note their PIDs now.
        workers = _children(process.pid)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.stop_timeout)

        # Workers exit when the main process closes their socket; a worker
        # still there after the bound is killed, if its PID is still a worker.
        _stop_leftovers(workers, self.stop_timeout)
        self.process = None

    def set_state(self, state: str, output: str | None = None) -> None:
        """Set what the next service check reports: OK, WARNING, CRITICAL…"""
        code = SERVICE_CODES[state.upper()]
        self._write_flag("service", code, output or f"{state.upper()} - set by test")

    def set_host_state(self, state: str, output: str | None = None) -> None:
        """Set what the next host check reports: UP, DOWN or UNREACHABLE."""
        code = HOST_CODES[state.upper()]
        self._write_flag("host", code, output or f"{state.upper()} - set by test")

    def force_check(self) -> None:
        """Run the service check now instead of at its interval."""
        self.send_command(f"SCHEDULE_FORCED_SVC_CHECK;{self.host};{self.service}")

    def force_host_check(self) -> None:
        """Run the host check now instead of at its interval."""
        self.send_command(f"SCHEDULE_FORCED_HOST_CHECK;{self.host}")

    def acknowledge(self, author: str, comment: str) -> None:
        """Acknowledge the service problem, which notifies ACKNOWLEDGEMENT."""
        self._send(
            f"ACKNOWLEDGE_SVC_PROBLEM;{self.host};{self.service};1;1;0;"
            f"{author};{comment}"
        )

    def send_command(self, command: str) -> None:
        """Send a scheduling external command; the check time is appended."""
        self._send(f"{command};{int(time.time())}")

    def diagnostics(self, lines: int = 40) -> str:
        """The end of Nagios' log and console output, for failure messages."""
        parts = []
        for path in (self.log_file, self.var / "nagios.out"):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace")
                tail = "\n".join(text.splitlines()[-lines:])
                parts.append(f"--- {path.name}\n{tail}")
        return "\n".join(parts)

    def write_config(self) -> None:
        """Lay out etc/, flags/ and var/ and write every Nagios file."""
        for folder in (self.etc, self.flags):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
        shared_dir(self.var)
        shared_dir(self.var / "checkresults")
        shared_dir(self.var / "tmp")

        self._write_script("check-flag.sh", CHECK_FLAG_SCRIPT)
        self.set_state("OK")
        self.set_host_state("UP")
        self._write(self.main_config, self._main_config_text())
        self._write(self.etc / "objects.cfg", self._objects_text())

    def validate(self, binary: str | None = None) -> str:
        """`nagios4 -v`: raises with its output when the config is refused."""
        result = subprocess.run(
            [binary or require_nagios(), "-v", str(self.main_config)],
            capture_output=True,
            text=True,
            timeout=30,
            env=_plain_environment(),
        )
        if result.returncode != 0:
            raise NagiosError(f"nagios4 -v refused the config:\n{result.stdout}")
        return result.stdout

    def _main_config_text(self) -> str:
        user = NAGIOS_USER if _running_as_root() else pwd.getpwuid(os.getuid()).pw_name
        var = self.var
        settings = {
            "cfg_file": self.etc / "objects.cfg",
            "log_file": self.log_file,
            "log_archive_path": var,
            "log_rotation_method": "n",
            "object_cache_file": var / "objects.cache",
            "precached_object_file": var / "objects.precache",
            "status_file": var / "status.dat",
            "status_update_interval": 1,
            "state_retention_file": var / "retention.dat",
            "retain_state_information": 1,
            "use_retained_program_state": 0,
            "lock_file": var / "nagios.lock",
            "temp_file": var / "nagios.tmp",
            "temp_path": var / "tmp",
            "check_result_path": var / "checkresults",
            "check_result_reaper_frequency": 1,
            "command_file": self.command_pipe,
            "query_socket": var / "nagios.qh",
            "debug_file": var / "debug.log",
            "nagios_user": user,
            "nagios_group": user,
            "check_external_commands": 1,
            "interval_length": 1,
            "check_for_updates": 0,
            "bare_update_check": 1,
            "use_syslog": 0,
            "log_notifications": 1,
            "log_external_commands": 1,
            "log_initial_states": 1,
            "enable_environment_macros": 1,
            "enable_notifications": 1,
            "enable_flap_detection": 0,
            "max_service_check_spread": 1,
            "max_host_check_spread": 1,
            "notification_timeout": 30,
            "date_format": "iso8601",
            "illegal_macro_output_chars": "`~$&|'\"<>",
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        return "# Written by the test harness; one throwaway Nagios.\n" + "\n".join(
            lines
        )

    def _objects_text(self) -> str:
        script = self.etc / "check-flag.sh"
        notify = self.notify_command.replace(";", "\\;")
        every_day = "".join(
            f"    {day} 00:00-24:00\n"
            for day in (
                "sunday",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
            )
        )
        return OBJECTS_TEMPLATE.format(
            every_day=every_day,
            check_host=f"{script} {self.flags / 'host'}",
            check_service=f"{script} {self.flags / 'service'}",
            notify=notify,
            host=self.host,
            service=self.service,
            interval=self.check_interval,
        )

    def _write_flag(self, name: str, code: int, output: str) -> None:
        self._write(self.flags / name, f"{code} {output}\n")

    def _write_script(self, name: str, text: str) -> None:
        path = self.etc / name
        self._write(path, text)
        path.chmod(0o755)

    def _write(self, path: Path, text: str) -> None:
        # Replace whole: a check never reads a half-written flag.
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(0o644)
        temporary.replace(path)

    def _pipe_ready(self) -> bool | None:
        if self.process is not None and self.process.poll() is not None:
            raise NagiosError(f"it exited with {self.process.returncode}")
        try:
            fd = os.open(self.command_pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return None
        os.close(fd)
        return True

    def _send(self, command: str) -> None:
        # Non-blocking open: a pipe with no reader (Nagios gone) fails now
        # instead of hanging the test.
        line = f"[{int(time.time())}] {command}\n".encode()
        try:
            fd = os.open(self.command_pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise NagiosError(f"Nagios command pipe not open: {exc}") from exc
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


CHECK_FLAG_SCRIPT = """#!/bin/sh
# Reports what the flag file says: "<exit code> <output>".
read -r code output < "$1" || { echo "UNKNOWN - cannot read $1"; exit 3; }
echo "$output"
exit "$code"
"""

OBJECTS_TEMPLATE = """\
# Written by the test harness: one host, one service, one contact.
define timeperiod {{
    timeperiod_name always
    alias           always
{every_day}}}

define command {{
    command_name tb-check-host
    command_line {check_host}
}}

define command {{
    command_name tb-check-service
    command_line {check_service}
}}

define command {{
    command_name tb-notify
    command_line {notify}
}}

define contact {{
    contact_name                  tb-contact
    alias                         ticketbridge
    host_notifications_enabled    1
    service_notifications_enabled 1
    host_notification_period      always
    service_notification_period   always
    host_notification_options     d,u,r,f,s
    service_notification_options  w,u,c,r,f,s
    host_notification_commands    tb-notify
    service_notification_commands tb-notify
}}

define host {{
    host_name             {host}
    alias                 {host}
    address               127.0.0.1
    check_command         tb-check-host
    check_period          always
    check_interval        {interval}
    retry_interval        {interval}
    max_check_attempts    1
    notification_period   always
    notification_interval 0
    notification_options  d,u,r,f,s
    contacts              tb-contact
}}

define service {{
    host_name             {host}
    service_description   {service}
    check_command         tb-check-service
    check_period          always
    check_interval        {interval}
    retry_interval        {interval}
    max_check_attempts    1
    notification_period   always
    notification_interval 0
    notification_options  w,u,c,r,f,s
    contacts              tb-contact
}}
"""


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _give_to_nagios(path: Path) -> None:
    if _running_as_root():
        account = pwd.getpwnam(NAGIOS_USER)
        os.chown(path, account.pw_uid, account.pw_gid)


def _plain_environment() -> dict[str, str]:
    # What an init system gives Nagios; nothing of the test run leaks through.
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _python_for_nagios() -> list[str]:
    """An interpreter command user nagios can run with ticketbridge importable."""
    if not _running_as_root() or _nagios_can_run([sys.executable]):
        return [sys.executable]

    # Only system folders: our PATH may lead back to the same private Python.
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if system is None:
        raise NagiosError(
            f"user {NAGIOS_USER} cannot run {sys.executable} and there is no "
            f"system {version}"
        )
    paths = [str(_package_root()), sysconfig.get_paths()["purelib"]]
    paths += [sysconfig.get_paths()["platlib"]]
    command = ["/usr/bin/env", f"PYTHONPATH={':'.join(dict.fromkeys(paths))}", system]
    if not _nagios_can_run(command):
        raise NagiosError(
            f"user {NAGIOS_USER} can import ticketbridge neither with "
            f"{sys.executable} nor with {system}: check the folders' permissions"
        )
    return command


def _nagios_can_run(command: list[str]) -> bool:
    probe = [*command, "-c", "import ticketbridge.sources.notify"]
    result = subprocess.run(
        ["runuser", "-u", NAGIOS_USER, "--", *probe],
        capture_output=True,
        timeout=60,
        env=_plain_environment(),
        cwd="/",
    )
    return result.returncode == 0


def _package_root() -> Path:
    import ticketbridge

    return Path(ticketbridge.__file__).resolve().parent.parent


def _nagios_quote(args: list[str]) -> str:
    # Nagios expands $NAME$ macros in command lines: a literal $ is $$.
    return " ".join(shlex.quote(arg) for arg in args).replace("$", "$$")


def _children(pid: int) -> dict[int, bytes]:
    """PIDs whose parent is `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: split after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found[int(entry.name)] = cmdline
    return found


def _stop_leftovers(processes: dict[int, bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for pid, cmdline in processes.items():
        while time.monotonic() < deadline and _same_process(pid, cmdline):
            time.sleep(0.05)
        if _same_process(pid, cmdline):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _same_process(pid: int, cmdline: bytes) -> bool:
    # A zombie has an empty command line: it is gone for our purposes.
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes() == cmdline
    except OSError:
        return False
