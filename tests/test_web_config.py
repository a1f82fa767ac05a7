"""The metrics server's web config file: what is accepted, what is refused."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.helpers import base_config, write_config
from tests.tls import bcrypt_hash, self_signed, write_web_config
from ticketbridge.cli import main
from ticketbridge.config import ConfigError, load_config
from ticketbridge.config.model import HealthSettings
from ticketbridge.config.web import (
    WebConfigError,
    read_web_config,
    server_ssl_context,
)
from ticketbridge.health import build_app, serve
from ticketbridge.metrics import Metrics


def problems_of(path: Path) -> list[str]:
    with pytest.raises(WebConfigError) as caught:
        read_web_config(path)
    return caught.value.problems


def test_the_default_bind_address_is_loopback() -> None:
    assert HealthSettings().host == "127.0.0.1"


async def test_a_config_without_health_host_listens_on_127_0_0_1_only(
    tmp_path: Path,
) -> None:
    """The address the socket is bound to, read back from the socket itself."""
    data = base_config(tmp_path)
    data["health"] = {"port": 0}
    config = load_config(write_config(tmp_path / "config.yaml", data))

    runner = await serve(
        build_app(Metrics(), list), config.health.host, config.health.port
    )
    try:
        hosts = {address[0] for address in runner.addresses}
    finally:
        await runner.cleanup()

    assert hosts == {"127.0.0.1"}


def test_tls_and_users_are_read_with_paths_relative_to_the_file(
    tmp_path: Path,
) -> None:
    hashed = bcrypt_hash("s3cret")
    path = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {"cert_file": "a.crt", "key_file": "keys/a.key"},
            "basic_auth_users": {"prometheus": hashed},
        },
    )

    web = read_web_config(path)

    assert web.tls_server_config is not None
    assert web.tls_server_config.cert_file == tmp_path / "a.crt"
    assert web.tls_server_config.key_file == tmp_path / "keys" / "a.key"
    assert web.tls_server_config.min_version == "TLS12"
    assert web.basic_auth_users == {"prometheus": hashed}


def test_an_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("", encoding="utf-8")

    web = read_web_config(path)

    assert (web.tls_server_config, web.basic_auth_users) == (None, {})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"tls_server_confg": {}},
            "tls_server_confg: unknown key (not part of the web configuration format)",
        ),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "ciphers": 1}},
            "tls_server_config.ciphers: unknown key (not part of the web "
            "configuration format)",
        ),
    ],
)
def test_an_unknown_key_is_refused_by_its_path(
    tmp_path: Path, data: dict[str, object], expected: str
) -> None:
    assert problems_of(write_web_config(tmp_path / "web.yml", data)) == [expected]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"rate_limit": {"interval": "1s", "burst": 20}}, "rate_limit"),
        ({"http_server_config": {"http2": False}}, "http_server_config"),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "cipher_suites": ["TLS_AES_128_GCM_SHA256"],
                }
            },
            "tls_server_config.cipher_suites",
        ),
        (
            {"tls_server_config": {"cert": "PEM", "key": "PEM"}},
            "tls_server_config.cert",
        ),
    ],
)
def test_a_toolkit_key_ticketbridge_lacks_is_refused_as_unsupported(
    tmp_path: Path, data: dict[str, object], path: str
) -> None:
    problems = problems_of(write_web_config(tmp_path / "web.yml", data))

    assert (
        f"{path}: part of the exporter toolkit's format, not supported by "
        "ticketbridge; remove it"
    ) in problems


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("client_auth_type", "RequireAnyClientCert", "without verifying them"),
        ("client_auth_type", "RequestClientCert", "without verifying them"),
        ("min_version", "TLS10", "too old"),
    ],
)
def test_an_insecure_toolkit_value_is_refused_with_the_reason(
    tmp_path: Path, key: str, value: str, why: str
) -> None:
    tls = {"cert_file": "a", "key_file": "b", key: value}

    [problem] = problems_of(
        write_web_config(tmp_path / "web.yml", {"tls_server_config": tls})
    )

    assert problem.startswith(f"tls_server_config.{key}: {value} ")
    assert why in problem


def test_verifying_client_certificates_needs_a_client_ca(tmp_path: Path) -> None:
    tls = {
        "cert_file": "a",
        "key_file": "b",
        "client_auth_type": "RequireAndVerifyClientCert",
    }

    problems = problems_of(
        write_web_config(tmp_path / "web.yml", {"tls_server_config": tls})
    )

    assert problems == [
        "tls_server_config: client_ca_file: required with client_auth_type "
        "RequireAndVerifyClientCert"
    ]


def test_a_password_in_plain_text_is_refused_without_repeating_it(
    tmp_path: Path,
) -> None:
    path = write_web_config(
        tmp_path / "web.yml", {"basic_auth_users": {"prometheus": "hunter2"}}
    )

    [problem] = problems_of(path)

    assert problem.startswith("basic_auth_users: prometheus: not a bcrypt hash")
    assert "hunter2" not in problem


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    files = self_signed(tmp_path)
    web = read_web_config(
        write_web_config(
            tmp_path / "web.yml",
            {"tls_server_config": {"cert_file": "gone.crt", "key_file": "server.key"}},
        )
    )
    assert web.tls_server_config is not None

    with pytest.raises(WebConfigError) as caught:
        server_ssl_context(web.tls_server_config)

    assert caught.value.problems == [
        f"tls_server_config.cert_file: cannot read {tmp_path / 'gone.crt'}: "
        "No such file or directory"
    ]
    assert files.key.exists()


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    one, other = self_signed(tmp_path, "one"), self_signed(tmp_path, "other")
    web = read_web_config(
        write_web_config(
            tmp_path / "web.yml",
            {"tls_server_config": {"cert_file": "one.crt", "key_file": "other.key"}},
        )
    )
    assert web.tls_server_config is not None

    with pytest.raises(WebConfigError) as caught:
        server_ssl_context(web.tls_server_config)

    [problem] = caught.value.problems
    assert problem.startswith(
        f"tls_server_config.cert_file, key_file: {one.cert} and {other.key} are "
        "not a PEM certificate and its unencrypted private key"
    )


def test_a_good_tls_config_gives_a_server_context(tmp_path: Path) -> None:
    self_signed(tmp_path)
    tls = {
        "cert_file": "server.crt",
        "key_file": "server.key",
        "min_version": "TLS13",
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": "server.crt",
    }
    web = read_web_config(
        write_web_config(tmp_path / "web.yml", {"tls_server_config": tls})
    )
    assert web.tls_server_config is not None

    context = server_ssl_context(web.tls_server_config)

    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_load_config_names_the_field_and_the_web_config_file(
    tmp_path: Path,
) -> None:
    web_path = write_web_config(tmp_path / "web.yml", {"basic_auth_user": {}})
    data = base_config(tmp_path)
    data["health"] = {"port": 0, "web_config_file": str(web_path)}

    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path / "config.yaml", data))

    assert caught.value.problems == [
        f"health.web_config_file: {web_path}: basic_auth_user: unknown key "
        "(not part of the web configuration format)"
    ]


def test_check_config_refuses_an_unreadable_web_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_config(tmp_path)
    data["health"] = {"port": 0, "web_config_file": str(tmp_path / "none.yml")}
    config = write_config(tmp_path / "config.yaml", data)

    code = main(["check-config", str(config)])

    assert code == 2
    assert (
        f"health.web_config_file: {tmp_path / 'none.yml'}: cannot read: "
        "No such file or directory"
    ) in capsys.readouterr().err
