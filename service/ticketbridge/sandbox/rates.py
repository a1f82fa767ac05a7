"""Faults by rate: a seeded share of requests fail, picked from a weighted mix.

Where `faults.FaultScript` scripts the next few requests exactly, a rate
profile makes the sandbox misbehave for a whole run, as a chaos campaign
needs. A profile (JSON put to /_sandbox/faults/rates, or a JSON or YAML file given
as `ticketbridge sandbox --faults FILE`):

    seed: 7                      # same seed, same sequence of draws
    rates:                       # most specific key wins: system.operation,
      "*": {rate: 0.3, mix: {"500": 1, "503": 1, "429": 1, reset_before: 1,
            reset_after: 1, timeout_after_create: 1, slow: 1, html200: 1}}
      jira.find: {rate: 0.1}     # then system, then "*"; mix defaults to "*"'s
    retry_after: {"0": 1, "1": 2, "30": 0.01}   # weights of Retry-After values
    slow_seconds: 0.5            # delay before acting (an answer that is late)
    hang_seconds: 5              # timeout_after_create: act, then answer late
    search_lag: 2                # Jira search / ServiceNow query lag behind creates
    unauthorized: {after: 1000, count: 50}      # 401 for requests 1001..1050

Systems: jira, servicenow, webhook. Operations: create, comment, resolve
(Jira's transition POST), transitions (its GET), update (a ServiceNow PATCH),
get, find (a search or query). Webhook POSTs take the operation from their
Idempotency-Key. The draws follow the order requests arrive in, so with
concurrent clients the same seed gives the same mix, not the same requests.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ticketbridge.sandbox.faults import Scripted
from ticketbridge.sandbox.store import STORE

KINDS = (
    "reset_before",
    "reset_after",
    "timeout_after_create",
    "slow",
    "html200",
)
SYSTEMS = ("jira", "servicenow", "webhook")
_STATUS = re.compile(r"[1-5][0-9][0-9]")
_PROFILE_KEYS = {
    "seed",
    "rates",
    "retry_after",
    "slow_seconds",
    "hang_seconds",
    "search_lag",
    "unauthorized",
}
_JIRA_ISSUE = re.compile(r"^/rest/api/[^/]+/issue(?P<rest>/[^/]+(?P<sub>/[a-z]+)?)?$")


@dataclass(frozen=True)
class Rate:
    """One entry of `rates`: the share of requests that fail, and how."""

    rate: float
    mix: tuple[tuple[str, float], ...]

    def as_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "mix": dict(self.mix)}


@dataclass
class Profile:
    """A parsed rate profile; `Profile()` injects nothing."""

    seed: int | None = None
    rates: dict[str, Rate] = field(default_factory=dict)
    retry_after: tuple[tuple[str, float], ...] = (("1", 1.0),)
    slow_seconds: float = 0.5
    hang_seconds: float = 5.0
    search_lag: float = 0.0
    unauthorized_after: int | None = None
    unauthorized_count: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rates": {k: v.as_json() for k, v in self.rates.items()},
            "retry_after": dict(self.retry_after),
            "slow_seconds": self.slow_seconds,
            "hang_seconds": self.hang_seconds,
            "search_lag": self.search_lag,
            "unauthorized": {
                "after": self.unauthorized_after,
                "count": self.unauthorized_count,
            },
        }


class RateFaults:
    """The profile in force, its random stream, and what it has injected."""

    def __init__(self) -> None:
        self.profile = Profile()
        self.counts: Counter[str] = Counter()
        self.seen = 0
        self._random = random.Random()

    def set(self, profile: Profile) -> None:
        self.profile = profile
        self.counts.clear()
        self.seen = 0
        self._random = random.Random(profile.seed)

    def clear(self) -> None:
        self.set(Profile())

    def draw(self, system: str, operation: str) -> Scripted | None:
        """The fault for the next request of `system.operation`, if any."""
        profile = self.profile
        self.seen += 1
        if self._unauthorized(self.seen):
            self.counts[f"{system}.{operation}.401"] += 1
            return Scripted(status=401)

        rate = _rate_for(profile.rates, system, operation)
        if rate is None or not rate.mix or self._random.random() >= rate.rate:
            return None
        names = [name for name, _ in rate.mix]
        weights = [weight for _, weight in rate.mix]
        kind = self._random.choices(names, weights)[0]
        self.counts[f"{system}.{operation}.{kind}"] += 1
        return self._scripted(kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile.as_json(),
            "requests": self.seen,
            "injected": dict(sorted(self.counts.items())),
        }

    def _unauthorized(self, number: int) -> bool:
        after = self.profile.unauthorized_after
        if after is None or number <= after:
            return False
        count = self.profile.unauthorized_count
        return count is None or number <= after + count

    def _scripted(self, kind: str) -> Scripted:
        profile = self.profile
        if _STATUS.fullmatch(kind):
            status = int(kind)
            headers = {}
            if status in (429, 503):
                values = [value for value, _ in profile.retry_after]
                weights = [weight for _, weight in profile.retry_after]
                headers["Retry-After"] = self._random.choices(values, weights)[0]
            return Scripted(status=status, headers=headers)
        if kind == "reset_before":
            return Scripted(reset="before")
        if kind == "reset_after":
            return Scripted(reset="after")
        if kind == "timeout_after_create":
            return Scripted(hang=profile.hang_seconds)
        if kind == "slow":
            return Scripted(delay=profile.slow_seconds)
        return Scripted(html=True)


RATES = web.AppKey("sandbox_rates", RateFaults)


def classify(request: web.Request) -> tuple[str, str]:
    """Which imitated system and which operation a request is."""
    path, method = request.path, request.method
    if path.startswith("/rest/api/"):
        return "jira", _jira_operation(method, path)
    if path.startswith("/api/now/"):
        if method == "POST":
            return "servicenow", "create"
        if method in ("PATCH", "PUT"):
            return "servicenow", "update"
        # /api/now/[v1/]table/{table}[/{sys_id}]
        after_table = path.split("/table/", 1)[-1]
        return "servicenow", "get" if "/" in after_table else "find"
    if method == "POST":
        key = request.headers.get("Idempotency-Key", "")
        parts = key.split(":")
        return "webhook", parts[1] if len(parts) >= 3 else "post"
    return "webhook", "get"


def _jira_operation(method: str, path: str) -> str:
    if "/search" in path:
        return "find"
    match = _JIRA_ISSUE.match(path)
    if match is None:
        return "other"
    if match["rest"] is None:
        return "create" if method == "POST" else "other"
    sub = match["sub"]
    if sub == "/comment":
        return "comment" if method == "POST" else "get"
    if sub == "/transitions":
        return "resolve" if method == "POST" else "transitions"
    return "get"


def parse_profile(spec: object) -> Profile:
    """A profile from its JSON form; ValueError says what is wrong with it."""
    if not isinstance(spec, dict):
        raise ValueError("the rate profile must be an object")
    unknown = set(spec) - _PROFILE_KEYS
    if unknown:
        raise ValueError(f"unknown rate profile keys: {sorted(unknown)}")
    seed = spec.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError("seed must be an integer")
    unauthorized = spec.get("unauthorized") or {}
    if not isinstance(unauthorized, dict):
        raise ValueError("unauthorized must be an object {after, count}")
    return Profile(
        seed=seed,
        rates=_rates(spec.get("rates") or {}),
        retry_after=_retry_after(spec.get("retry_after", {"1": 1})),
        slow_seconds=_seconds(spec, "slow_seconds", 0.5),
        hang_seconds=_seconds(spec, "hang_seconds", 5.0),
        search_lag=_seconds(spec, "search_lag", 0.0),
        unauthorized_after=_count(unauthorized, "after"),
        unauthorized_count=_count(unauthorized, "count"),
    )


def _rate_for(rates: dict[str, Rate], system: str, operation: str) -> Rate | None:
    for key in (f"{system}.{operation}", system, "*"):
        if key in rates:
            return rates[key]
    return None


def _rates(spec: object) -> dict[str, Rate]:
    if not isinstance(spec, dict):
        raise ValueError("rates must be an object keyed by system[.operation] or *")
    star = spec.get("*")
    default_mix: tuple[tuple[str, float], ...] = ()
    if isinstance(star, dict) and "mix" in star:
        default_mix = _mix(star["mix"], "*")
    rates: dict[str, Rate] = {}
    for key, entry in spec.items():
        system = key.split(".", 1)[0]
        if key != "*" and system not in SYSTEMS:
            raise ValueError(f"rates.{key}: the system must be one of {SYSTEMS}")
        if not isinstance(entry, dict) or set(entry) - {"rate", "mix"}:
            raise ValueError(f"rates.{key} must be an object {{rate, mix}}")
        rate = entry.get("rate", 0)
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"rates.{key}.rate must be between 0 and 1")
        mix = _mix(entry["mix"], key) if "mix" in entry else default_mix
        rates[key] = Rate(float(rate), mix)
    return rates


def _mix(spec: object, key: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(spec, dict):
        raise ValueError(f"rates.{key}.mix must be an object of kind: weight")
    for kind, weight in spec.items():
        if kind not in KINDS and not _STATUS.fullmatch(str(kind)):
            raise ValueError(
                f"rates.{key}.mix: unknown fault {kind!r}; use an HTTP status "
                f"or one of {', '.join(KINDS)}"
            )
        if not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"rates.{key}.mix.{kind} must be a weight >= 0")
    return tuple((str(k), float(w)) for k, w in spec.items() if w > 0)


def _retry_after(spec: object) -> tuple[tuple[str, float], ...]:
    if not isinstance(spec, dict) or not spec:
        raise ValueError("retry_after must be an object of seconds: weight")
    for value, weight in spec.items():
        if not str(value).isdigit():
            raise ValueError(f"retry_after: {value!r} is not whole seconds")
        if not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"retry_after.{value} must be a weight >= 0")
    return tuple((str(v), float(w)) for v, w in spec.items())


def _seconds(spec: dict[str, Any], key: str, default: float) -> float:
    value = spec.get(key, default)
    if not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key} must be a non-negative number of seconds")
    return float(value)


def _count(spec: dict[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, int) or value < 0):
        raise ValueError(f"unauthorized.{key} must be a whole number >= 0")
    return value


def routes() -> list[web.RouteDef]:
    return [
        web.put("/_sandbox/faults/rates", set_rates),
        web.get("/_sandbox/faults/rates", show_rates),
        web.delete("/_sandbox/faults/rates", clear_rates),
    ]


async def set_rates(request: web.Request) -> web.Response:
    """Replace the rate profile; the body is the profile itself."""
    try:
        profile = parse_profile(await request.json())
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    apply(request.app, profile)
    return web.json_response(request.app[RATES].as_json())


async def show_rates(request: web.Request) -> web.Response:
    """The profile in force and how many faults of each kind it injected."""
    return web.json_response(request.app[RATES].as_json())


async def clear_rates(request: web.Request) -> web.Response:
    apply(request.app, Profile())
    return web.Response(status=204)


def apply(app: web.Application, profile: Profile) -> None:
    """Put `profile` in force, search lag included."""
    app[RATES].set(profile)
    app[STORE].search_lag = profile.search_lag
