"""The metrics server's web configuration file: TLS and HTTP basic auth.

The file has the shape of the Prometheus exporter toolkit's web configuration,
so one file can serve ticketbridge and the exporters beside it. A subset is
supported; a key of the toolkit's format that ticketbridge does not implement
is refused by name rather than ignored, so nobody believes a setting holds
that does not.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

# The toolkit's client_auth_type names mapped to what Python's ssl can enforce.
# RequestClientCert and RequireAnyClientCert accept a certificate without
# checking it, which Python's ssl cannot express and which protects nothing.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
MIN_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

# Keys and values the toolkit's format has and ticketbridge does not implement.
UNSUPPORTED_KEYS = {
    (): ("http_server_config", "rate_limit"),
    ("tls_server_config",): (
        "cert",
        "key",
        "max_version",
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
        "client_allowed_sans",
    ),
}
UNSUPPORTED_VALUES = {
    "client_auth_type": (
        ("RequestClientCert", "RequireAnyClientCert"),
        "accepts client certificates without verifying them; "
        "use RequireAndVerifyClientCert or VerifyClientCertIfGiven",
    ),
    "min_version": (("TLS10", "TLS11"), "is too old; use TLS12 or TLS13"),
}

# $2a$/$2b$/$2y$, a two-digit cost, then 22 characters of salt and 31 of hash.
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


class WebConfigError(Exception):
    """A web config that cannot be used; `problems` are `key.path: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    """Serve HTTPS with this certificate; optionally ask clients for theirs."""

    cert_file: Path
    key_file: Path
    client_auth_type: Literal[
        "NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
    ] = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: Literal["TLS12", "TLS13"] = "TLS12"

    @model_validator(mode="after")
    def _client_ca_matches_policy(self) -> TlsServerConfig:
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None:
            raise ValueError(
                f"client_ca_file: required with client_auth_type "
                f"{self.client_auth_type}"
            )
        if not verifies and self.client_ca_file is not None:
            raise ValueError(
                "client_ca_file: given, but client_auth_type is NoClientCert; "
                "set RequireAndVerifyClientCert to check client certificates"
            )
        return self

    def within(self, directory: Path) -> TlsServerConfig:
        """Relative file names are relative to the web config file, as in the
        toolkit."""
        ca = self.client_ca_file
        return self.model_copy(
            update={
                "cert_file": directory / self.cert_file,
                "key_file": directory / self.key_file,
                "client_ca_file": None if ca is None else directory / ca,
            }
        )


class WebConfig(_Strict):
    """The whole web config file. An empty file means plain HTTP, no auth."""

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = {}

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for name, hashed in users.items():
            if not name or ":" in name:
                raise ValueError(f"{name!r}: a user name is not empty and has no ':'")
            # The hash is never repeated in the message: it is a secret.
            if not BCRYPT_HASH.match(str(hashed)):
                raise ValueError(
                    f"{name}: not a bcrypt hash (expected $2y$<cost>$<53 chars>, "
                    "e.g. from `htpasswd -nBC 10 USER`)"
                )
        return users


def read_web_config(path: Path) -> WebConfig:
    """Read, check and resolve one web config file; raise WebConfigError."""
    data = _read_yaml(path)

    problems = unsupported_problems(data)
    if problems:
        raise WebConfigError(problems)

    try:
        config = WebConfig(**data)
    except ValidationError as exc:
        raise WebConfigError(_describe(exc)) from None

    if config.tls_server_config is None:
        return config
    tls = config.tls_server_config.within(path.parent)
    return config.model_copy(update={"tls_server_config": tls})


def server_ssl_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """A server context from the files; WebConfigError names the file at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSIONS[tls.min_version]
    load_certificate(context, tls)

    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        _must_read("tls_server_config.client_ca_file", tls.client_ca_file)
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as exc:
            raise WebConfigError(
                [
                    f"tls_server_config.client_ca_file: {tls.client_ca_file}: "
                    f"no PEM certificate in it ({exc.reason or exc})"
                ]
            ) from None
    return context


def load_certificate(context: ssl.SSLContext, tls: TlsServerConfig) -> None:
    """(Re)load the certificate and key into `context`; new handshakes use them."""
    _must_read("tls_server_config.cert_file", tls.cert_file)
    _must_read("tls_server_config.key_file", tls.key_file)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:
        raise WebConfigError(
            [
                f"tls_server_config.cert_file, key_file: {tls.cert_file} and "
                f"{tls.key_file} are not a PEM certificate and its unencrypted "
                f"private key ({exc.reason or exc})"
            ]
        ) from None


def unsupported_problems(data: dict[str, Any]) -> list[str]:
    """Toolkit keys and values ticketbridge does not implement, by name."""
    problems = []
    for where, keys in UNSUPPORTED_KEYS.items():
        section: Any = data
        for part in where:
            section = section.get(part) if isinstance(section, dict) else None
        if not isinstance(section, dict):
            continue
        for key in keys:
            if key in section:
                path = ".".join((*where, key))
                problems.append(
                    f"{path}: part of the exporter toolkit's format, "
                    "not supported by ticketbridge; remove it"
                )

    tls = data.get("tls_server_config")
    for key, (values, why) in UNSUPPORTED_VALUES.items():
        if isinstance(tls, dict) and tls.get(key) in values:
            problems.append(f"tls_server_config.{key}: {tls[key]} {why}")
    return problems


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WebConfigError([f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise WebConfigError(["not UTF-8 text"]) from None

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WebConfigError([f"YAML syntax: {exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise WebConfigError(["the file must be a mapping of settings"])
    return data


def _must_read(field: str, path: Path) -> None:
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as exc:
        raise WebConfigError([f"{field}: cannot read {path}: {exc.strerror}"]) from None


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (not part of the web configuration format)"
        elif error["type"] == "missing":
            message = "required, not given"
        lines.append(f"{path}: {message}" if path else message)
    return lines
