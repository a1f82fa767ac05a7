"""A real daemon serving /metrics over TLS with basic auth, and its reloads.

No event is sent, so the destination URL (a free loopback port) is never
contacted; no sandbox is needed.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import urllib.error
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Daemon, free_port, http_text, wait_until
from tests.tls import (
    CertFiles,
    bcrypt_hash,
    client_context,
    self_signed,
    write_web_config,
)


def basic(user: str, password: str) -> dict[str, str]:
    token = b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def secured_daemon(workdir: Path, password: str = "s3cret") -> Daemon:
    """A daemon whose config leaves health.host out, with TLS and one user."""
    cert = self_signed(workdir / "tls")
    web = write_web_config(
        workdir / "web.yml",
        {
            "tls_server_config": {
                "cert_file": "tls/server.crt",
                "key_file": "tls/server.key",
            },
            "basic_auth_users": {"prometheus": bcrypt_hash(password)},
        },
    )
    daemon = Daemon(workdir, f"http://127.0.0.1:{free_port()}")
    daemon.config["health"] = {"port": daemon.metrics_port, "web_config_file": str(web)}
    daemon.write_config(daemon.config)
    daemon.scheme = "https"
    daemon.client_tls = client_context(cert)
    daemon.client_headers = basic("prometheus", password)
    return daemon


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = secured_daemon(tmp_path_factory.mktemp("secured"))
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture
def reloadable(tmp_path: Path) -> Iterator[Daemon]:
    daemon = secured_daemon(tmp_path / "daemon")
    daemon.start()
    yield daemon
    daemon.stop()


def status_of(daemon: Daemon, path: str, headers: dict[str, str]) -> int:
    try:
        http_text(daemon.url(path), context=daemon.client_tls, headers=headers)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port`, from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_without_health_host_the_daemon_listens_on_127_0_0_1_only(
    secured: Daemon,
) -> None:
    assert "host" not in secured.config["health"]

    assert listening_addresses(secured.metrics_port) == {"0100007F"}


def test_a_scrape_with_the_ca_and_the_password_gets_the_metrics(
    secured: Daemon,
) -> None:
    assert "ticketbridge_heartbeat_timestamp_seconds" in secured.metrics()


def test_a_scrape_without_credentials_is_asked_for_basic_auth(
    secured: Daemon,
) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        http_text(secured.url("/metrics"), context=secured.client_tls)

    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    "headers",
    [basic("prometheus", "wrong"), basic("nobody", "s3cret")],
    ids=["wrong password", "unknown user"],
)
def test_wrong_credentials_get_401(secured: Daemon, headers: dict[str, str]) -> None:
    assert status_of(secured, "/metrics", headers) == 401


def test_healthz_asks_for_credentials_too(secured: Daemon) -> None:
    assert status_of(secured, "/healthz", {}) == 401
    assert status_of(secured, "/healthz", secured.client_headers) == 200


def test_a_client_that_does_not_trust_the_certificate_fails_the_handshake(
    secured: Daemon,
) -> None:
    with pytest.raises(urllib.error.URLError) as failed:
        http_text(
            secured.url("/metrics"),
            context=client_context(None),
            headers=secured.client_headers,
        )

    assert isinstance(failed.value.reason, ssl.SSLCertVerificationError)


def test_plain_http_gets_no_metrics_from_the_tls_port(secured: Daemon) -> None:
    plain = f"http://127.0.0.1:{secured.metrics_port}/metrics"

    with pytest.raises((urllib.error.URLError, ConnectionError)):
        http_text(plain, headers=secured.client_headers)


def rewrite_users(daemon: Daemon, users: dict[str, str]) -> None:
    web = Path(daemon.config["health"]["web_config_file"])
    write_web_config(
        web,
        {
            "tls_server_config": {
                "cert_file": "tls/server.crt",
                "key_file": "tls/server.key",
            },
            "basic_auth_users": users,
        },
    )


def test_a_reload_applies_new_passwords_at_once(reloadable: Daemon) -> None:
    old = dict(reloadable.client_headers)
    rewrite_users(reloadable, {"prometheus": bcrypt_hash("rotated")})

    reloadable.signal(signal.SIGHUP)

    new = basic("prometheus", "rotated")
    wait_until(lambda: status_of(reloadable, "/metrics", new) == 200, what="reload")
    assert status_of(reloadable, "/metrics", old) == 401


def test_a_bad_web_config_is_refused_on_reload_and_the_old_one_kept(
    reloadable: Daemon,
) -> None:
    web = Path(reloadable.config["health"]["web_config_file"])
    web.write_text("basic_auth_users: {prometheus: plain-text}\n", encoding="utf-8")

    reloadable.signal(signal.SIGHUP)

    wait_until(
        lambda: reloadable.metric("ticketbridge_config_reload_failures_total") == 1,
        what="reload refused",
    )
    assert "basic_auth_users: prometheus: not a bcrypt hash" in reloadable.log()
    assert "plain-text" not in reloadable.log()
    assert status_of(reloadable, "/metrics", reloadable.client_headers) == 200


def test_a_renewed_certificate_is_served_after_a_reload(reloadable: Daemon) -> None:
    renewed: CertFiles = self_signed(reloadable.workdir / "tls")
    reloadable.client_tls = client_context(renewed)
    with pytest.raises(urllib.error.URLError):
        status_of(reloadable, "/metrics", reloadable.client_headers)

    reloadable.signal(signal.SIGHUP)

    wait_until(
        lambda: status_of(reloadable, "/metrics", reloadable.client_headers) == 200,
        what="the renewed certificate",
    )


def test_turning_tls_off_is_refused_on_reload(reloadable: Daemon) -> None:
    web = Path(reloadable.config["health"]["web_config_file"])
    write_web_config(web, {"basic_auth_users": {"prometheus": bcrypt_hash("x")}})

    reloadable.signal(signal.SIGHUP)

    wait_until(
        lambda: reloadable.metric("ticketbridge_config_reload_failures_total") == 1,
        what="reload refused",
    )
    assert "tls_server_config (TLS on or off): changing it needs a restart" in (
        reloadable.log()
    )


def test_an_unreadable_certificate_stops_the_start_naming_the_field(
    tmp_path: Path,
) -> None:
    daemon = secured_daemon(tmp_path / "daemon")
    (tmp_path / "daemon" / "tls" / "server.key").unlink()

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticketbridge",
            "--config",
            str(daemon.config_path),
            "run",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert (
        "health.web_config_file: "
        f"{tmp_path / 'daemon' / 'web.yml'}: tls_server_config.key_file: cannot read "
        f"{tmp_path / 'daemon' / 'tls' / 'server.key'}: No such file or directory"
    ) in result.stderr
