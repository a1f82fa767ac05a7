"""The metrics server over a real socket: auth on every path, TLS, client certs."""

from __future__ import annotations

import ssl
from base64 import b64encode
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.tls import CertFiles, bcrypt_hash, self_signed, write_web_config
from ticketbridge.basic_auth import BasicAuth
from ticketbridge.config.web import read_web_config, server_ssl_context
from ticketbridge.health import bound_port, build_app, serve
from ticketbridge.metrics import Metrics

PROMETHEUS = {"Authorization": "Basic " + b64encode(b"prometheus:s3cret").decode()}


@pytest.fixture
async def plain_url() -> AsyncIterator[str]:
    auth = BasicAuth({"prometheus": bcrypt_hash("s3cret")})
    runner = await serve(build_app(Metrics(), list, auth), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{bound_port(runner)}"
    await runner.cleanup()


async def get(
    url: str,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | bool = True,
) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, ssl=ssl_context) as response,
    ):
        await response.read()
        return response.status, dict(response.headers)


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
async def test_every_path_asks_for_basic_auth(plain_url: str, path: str) -> None:
    status, headers = await get(plain_url + path)

    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
async def test_every_path_answers_the_right_credentials(
    plain_url: str, path: str
) -> None:
    status, _ = await get(plain_url + path, PROMETHEUS)

    assert status == 200


async def test_without_users_the_endpoints_stay_open() -> None:
    runner = await serve(build_app(Metrics(), list), "127.0.0.1", 0)
    try:
        status, _ = await get(f"http://127.0.0.1:{bound_port(runner)}/metrics")
    finally:
        await runner.cleanup()

    assert status == 200


def mutual_tls(tmp_path: Path) -> tuple[ssl.SSLContext, CertFiles, CertFiles]:
    """A server that asks for a client certificate signed by `client`."""
    server, client = self_signed(tmp_path, "server"), self_signed(tmp_path, "client")
    tls = {
        "cert_file": "server.crt",
        "key_file": "server.key",
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": "client.crt",
    }
    web = read_web_config(
        write_web_config(tmp_path / "web.yml", {"tls_server_config": tls})
    )
    assert web.tls_server_config is not None
    return server_ssl_context(web.tls_server_config), server, client


async def test_a_client_certificate_is_required_when_configured(
    tmp_path: Path,
) -> None:
    context, server, client = mutual_tls(tmp_path)
    runner = await serve(build_app(Metrics(), list), "127.0.0.1", 0, context)
    url = f"https://127.0.0.1:{bound_port(runner)}/metrics"
    trusting = ssl.create_default_context(cafile=str(server.cert))
    with_cert = ssl.create_default_context(cafile=str(server.cert))
    with_cert.load_cert_chain(client.cert, client.key)

    try:
        with pytest.raises(aiohttp.ClientError):
            await get(url, ssl_context=trusting)
        status, _ = await get(url, ssl_context=with_cert)
    finally:
        await runner.cleanup()

    assert status == 200
