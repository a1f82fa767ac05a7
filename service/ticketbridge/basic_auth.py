"""HTTP basic auth against bcrypt hashes, for the metrics server.

bcrypt is slow on purpose (about 70 ms at cost 10), and Prometheus sends the
same credentials with every scrape, so a successful check is remembered for a
short while. The memory is bounded three ways: an entry lives `ttl` seconds,
at most `max_entries` are kept (the oldest goes first), and only a check that
bcrypt passed is remembered, so wrong guesses can neither fill it nor be
answered from it. A reload of the users empties it.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from base64 import b64decode
from collections.abc import Callable, Mapping

import bcrypt

log = logging.getLogger(__name__)

TTL = 60.0
MAX_ENTRIES = 64
BCRYPT_MAX_PASSWORD = 72


class BasicAuth:
    """Decides whether an `Authorization` header names a configured user.

    With no users configured every request is allowed: the web config file
    turns auth on by listing users.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        ttl: float = TTL,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        # Remembered successes are keyed by an HMAC under a key that lives
        # only in this process, so the cache holds nothing a memory dump could
        # brute-force faster than the bcrypt hashes themselves, and the time a
        # dict lookup takes tells a client nothing about the password.
        self._key = secrets.token_bytes(32)
        self._passed: dict[bytes, float] = {}
        # One bcrypt check at a time: a flood of wrong passwords costs at most
        # one core and queues, instead of taking every core the daemon has.
        self._bcrypt = asyncio.Semaphore(1)
        self.bcrypt_checks = 0
        self.replace(users or {})

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def replace(self, users: Mapping[str, str]) -> None:
        """New users from a reload; what was remembered under the old ones goes."""
        self._users = {name.encode(): hashed.encode() for name, hashed in users.items()}
        self._passed.clear()

    async def allows(self, header: str | None) -> bool:
        """True when auth is off, or the header's user and password match."""
        if not self._users:
            return True
        credentials = parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials

        hashed, known = self._hash_of(user)
        key = hmac.new(
            self._key, b"\0".join((user, password, hashed)), hashlib.sha256
        ).digest()
        if self._remembered(key):
            return True

        async with self._bcrypt:
            self.bcrypt_checks += 1
            matched = await asyncio.to_thread(_bcrypt_matches, password, hashed)
        if matched and known:
            self._remember(key)
            return True
        log.debug("metrics request refused: wrong credentials")
        return False

    def _hash_of(self, user: bytes) -> tuple[bytes, bool]:
        """The user's hash, or another user's when the name is unknown, so an
        unknown name costs the same bcrypt work as a wrong password and its
        timing does not tell which names exist."""
        found = None
        for name, hashed in self._users.items():
            if hmac.compare_digest(name, user):
                found = hashed
        if found is None:
            return next(iter(self._users.values())), False
        return found, True

    def _remembered(self, key: bytes) -> bool:
        expires = self._passed.get(key)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._passed[key]
            return False
        return True

    def _remember(self, key: bytes) -> None:
        self._passed.pop(key, None)
        while len(self._passed) >= self.max_entries:
            del self._passed[next(iter(self._passed))]
        self._passed[key] = self._clock() + self.ttl


def parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from `Basic <base64>`, or None when it is not that."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    # bcrypt reads 72 bytes at most; older releases of the library cut a longer
    # password silently, so it would pass on its first 72 bytes. Refuse it.
    if len(password) > BCRYPT_MAX_PASSWORD:
        return False
    return bcrypt.checkpw(password, hashed)
