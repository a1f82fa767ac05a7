"""Basic auth of the metrics server: bcrypt checks and how successes are kept."""

from __future__ import annotations

from base64 import b64encode

import pytest

from tests.tls import bcrypt_hash
from ticketbridge.basic_auth import BasicAuth, parse_basic

USERS = {"prometheus": bcrypt_hash("s3cret"), "grafana": bcrypt_hash("other")}


def basic(user: str, password: str) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_no_users_means_no_auth() -> None:
    assert await BasicAuth({}).allows(None)


async def test_the_right_password_is_allowed() -> None:
    assert await BasicAuth(USERS).allows(basic("prometheus", "s3cret"))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        basic("prometheus", "wrong"),
        basic("grafana", "s3cret"),
        basic("nobody", "s3cret"),
        "Bearer s3cret",
        "Basic not-base64!",
        "Basic " + b64encode(b"no colon").decode(),
    ],
)
async def test_anything_else_is_refused(header: str | None) -> None:
    assert not await BasicAuth(USERS).allows(header)


async def test_an_unknown_user_costs_a_bcrypt_check_like_a_wrong_password() -> None:
    """Otherwise the answer's speed would tell which user names exist."""
    auth = BasicAuth(USERS)

    await auth.allows(basic("nobody", "s3cret"))

    assert auth.bcrypt_checks == 1


async def test_a_password_past_bcrypts_72_bytes_is_refused() -> None:
    """Older bcrypt releases compare only the first 72 bytes."""
    long = "x" * 72
    auth = BasicAuth({"prometheus": bcrypt_hash(long)})

    assert await auth.allows(basic("prometheus", long))
    assert not await auth.allows(basic("prometheus", long + "y"))


async def test_a_success_is_remembered_so_scrapes_skip_bcrypt() -> None:
    auth = BasicAuth(USERS)

    for _ in range(5):
        assert await auth.allows(basic("prometheus", "s3cret"))

    assert auth.bcrypt_checks == 1


async def test_a_remembered_success_expires_after_the_ttl() -> None:
    clock = Clock()
    auth = BasicAuth(USERS, ttl=60, clock=clock)
    await auth.allows(basic("prometheus", "s3cret"))

    clock.now += 60
    assert await auth.allows(basic("prometheus", "s3cret"))

    assert auth.bcrypt_checks == 2


async def test_a_failure_is_never_remembered() -> None:
    auth = BasicAuth(USERS)

    for _ in range(3):
        assert not await auth.allows(basic("prometheus", "wrong"))

    assert auth.bcrypt_checks == 3


async def test_the_memory_keeps_at_most_max_entries_dropping_the_oldest() -> None:
    auth = BasicAuth(USERS, max_entries=1)
    await auth.allows(basic("prometheus", "s3cret"))
    await auth.allows(basic("grafana", "other"))

    await auth.allows(basic("grafana", "other"))
    assert auth.bcrypt_checks == 2
    await auth.allows(basic("prometheus", "s3cret"))
    assert auth.bcrypt_checks == 3


async def test_replacing_the_users_forgets_what_passed_before() -> None:
    auth = BasicAuth(USERS)
    await auth.allows(basic("prometheus", "s3cret"))

    auth.replace({"prometheus": bcrypt_hash("rotated")})

    assert not await auth.allows(basic("prometheus", "s3cret"))
    assert await auth.allows(basic("prometheus", "rotated"))


def test_the_password_may_hold_colons() -> None:
    assert parse_basic(basic("prometheus", "a:b")) == (b"prometheus", b"a:b")
