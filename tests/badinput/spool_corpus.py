"""Bad spool files: hand-written cases and cases generated with Hypothesis.

Each case is one directory entry the spool source will meet, what it is (its
category) and what must become of it: rejected with a given reason, delivered
(stored in the ledger), either of the two, or left alone (not a spool file
yet). The corpus is deterministic: Hypothesis runs derandomized.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.badinput.generated import (
    hostile_events,
    non_object_documents,
    random_blobs,
    truncations,
    wrong_type_events,
)
from tests.badinput.hostile import HOSTILE_TEXTS

VALID: dict[str, Any] = {
    "id": "ok-1",
    "kind": "problem",
    "host": "web01",
    "check": "HTTP",
    "severity": "CRITICAL",
    "summary": "HTTP 503",
}

# What may become of a case.
DELIVERED = "delivered"
ANY = "any"  # delivered or rejected, with a reason either way
IGNORED = "ignored"  # not a spool file (yet): left where it is


@dataclass(frozen=True)
class SpoolCase:
    category: str
    name: str  # file name; may hold surrogate escapes for non-UTF-8 bytes
    make: Callable[[Path], None]  # creates the entry at the given path
    expect: str  # DELIVERED, ANY, IGNORED or "rejected:<reason>"


def rejected(reason: str) -> str:
    return f"rejected:{reason}"


def _bytes(content: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(content)

    return make


def _json(data: Any) -> Callable[[Path], None]:
    return _bytes(json.dumps(data, ensure_ascii=False).encode("utf-8"))


def _event(n: str, **fields: Any) -> dict[str, Any]:
    return {**VALID, "id": f"{n}", **fields}


def spool_cases(outside: Path) -> list[SpoolCase]:
    """Every case; `outside` is a directory beyond the spool for symlink targets."""
    cases: list[SpoolCase] = []
    cases += _syntax_cases()
    cases += _shape_cases()
    cases += _size_cases()
    cases += _entry_cases(outside)
    cases += _macro_cases()
    cases += _hostile_cases()
    cases += _name_cases()
    cases += _generated_cases()
    return cases


def _syntax_cases() -> list[SpoolCase]:
    cat = "invalid JSON"
    texts = [
        "{not json",
        "{'id': 'single quotes'}",
        '{"id": "a", "kind": "problem",}',
        '{"id": "a" "kind": "problem"}',
        "[1, 2",
        "undefined",
        '{"id": NaN, "kind": "problem", "host": "h"}',
        '{"id": "a", "kind": "problem", "host": Infinity}',
        '{"id": "x"} {"id": "y"}',
        "<event><id>1</id></event>",
        "id=1&kind=problem&host=h",
        '{"id": "\\ud800", "kind": "problem", "host": "h"',
        '{"id": "' + "9" * 5000 + '"}x',
    ]
    cases = [
        SpoolCase(cat, f"syntax-{i:02d}.json", _bytes(t.encode()), rejected("json"))
        for i, t in enumerate(texts)
    ]
    huge_int = '{"id": ' + "9" * 5000 + ', "kind": "problem", "host": "h"}'
    cases.append(
        SpoolCase(
            cat, "syntax-bigint.json", _bytes(huge_int.encode()), rejected("json")
        )
    )
    cat = "empty"
    for i, content in enumerate([b"", b" ", b"\n\n", b"\t \r\n"]):
        cases.append(
            SpoolCase(cat, f"empty-{i}.json", _bytes(content), rejected("empty"))
        )
    cat = "invalid UTF-8"
    for i, content in enumerate(
        [
            b'{"id": "\xff\xfe", "kind": "problem", "host": "h"}',
            b"\xef\xbb\xbf" + json.dumps(VALID).encode()[:-1] + b"\xc3",
            json.dumps(VALID).encode("utf-16"),
            json.dumps(VALID).encode("utf-32"),
            b'{"id": "a", "host": "caf\xe9", "kind": "problem"}',
            b'{"id": "\xed\xa0\x80", "kind": "problem", "host": "h"}',
        ]
    ):
        cases.append(
            SpoolCase(cat, f"utf8-{i}.json", _bytes(content), rejected("encoding"))
        )
    cat = "binary"
    for i, content in enumerate(
        [
            bytes(range(256)) * 4,
            b"\x00" * 1000,
            b"\x1f\x8b\x08\x00" + os.urandom(0) + b"gzip-ish" * 10,
            b"\x7fELF\x02\x01\x01" + b"\x00" * 64,
            b"PK\x03\x04" + b"\x00" * 40,
        ]
    ):
        cases.append(SpoolCase(cat, f"binary-{i}.json", _bytes(content), ANY))
    return cases


def _shape_cases() -> list[SpoolCase]:
    cases = []
    cat = "not an object"
    for i, doc in enumerate(
        [[], [VALID], "text", 42, 4.2, True, None, [[[]]], "", [1]]
    ):
        name = f"shape-{i:02d}.json"
        cases.append(SpoolCase(cat, name, _json(doc), rejected("invalid")))

    cat = "missing fields"
    for field in ("id", "kind", "host"):
        data = {k: v for k, v in VALID.items() if k != field}
        cases.append(
            SpoolCase(cat, f"missing-{field}.json", _json(data), rejected("invalid"))
        )
        for blank in ("", "   ", "\u200b\t"):
            bad = {**VALID, field: blank}
            name = f"blank-{field}-{len(blank)}.json"
            cases.append(SpoolCase(cat, name, _json(bad), rejected("invalid")))
    cases.append(SpoolCase(cat, "missing-all.json", _json({}), rejected("invalid")))

    cat = "wrong types"
    wrong = [None, True, False, [], ["web01"], {"name": "web01"}, {}]
    for field in ("id", "kind", "host", "check", "severity", "summary"):
        for j, value in enumerate(wrong):
            if value is None and field in ("check", "severity", "summary"):
                continue  # null is how an optional field is left out
            data = _event(f"wt-{field}-{j}", **{field: value})
            name = f"type-{field}-{j}.json"
            cases.append(SpoolCase(cat, name, _json(data), rejected("invalid")))
    for j, value in enumerate([7, 7.5, -1, 0, 1e300]):
        data = _event("num", id=value)
        cases.append(SpoolCase(cat, f"type-id-number-{j}.json", _json(data), DELIVERED))

    cat = "unknown kind"
    for j, kind in enumerate(
        ["PROBLEMO", "critical", "down", "", " ", "problem;drop", "résolu", "🔥", "0"]
    ):
        data = _event(f"kind-{j}", kind=kind)
        cases.append(SpoolCase(cat, f"kind-{j}.json", _json(data), rejected("invalid")))

    cat = "bad time"
    # A time that is not one never drops the event: it becomes the reading time.
    for j, when in enumerate(
        [
            "yesterday",
            "2024-13-45T99:00:00",
            "1e400",
            -1e20,
            1e20,
            [],
            "9999-12-31T23:59:59-14:00",
            True,
        ]
    ):
        data = _event(f"time-{j}", occurred_at=when)
        cases.append(SpoolCase(cat, f"time-{j}.json", _json(data), DELIVERED))
    return cases


def _size_cases() -> list[SpoolCase]:
    cases = []
    cat = "too large"
    for j, size in enumerate([1_000_001, 2_000_000, 10 * 1024 * 1024]):
        data = _event(f"big-{j}", details="x" * size)
        cases.append(
            SpoolCase(cat, f"large-{j}.json", _json(data), rejected("too_large"))
        )

    cat = "deeply nested"
    for j, depth in enumerate([33, 100, 900, 5000, 200_000]):
        text = '{"id": "deep", "kind": "problem", "host": "h", "x": '
        text += "[" * depth + "]" * depth + "}"
        cases.append(
            SpoolCase(
                cat, f"deep-{j}.json", _bytes(text.encode()), rejected("too_deep")
            )
        )
    bare = "[" * 100_000 + "]" * 100_000
    cases.append(
        SpoolCase(cat, "deep-bare.json", _bytes(bare.encode()), rejected("too_deep"))
    )
    nested_obj = '{"a":' * 50 + "1" + "}" * 50
    cases.append(
        SpoolCase(
            cat, "deep-object.json", _bytes(nested_obj.encode()), rejected("too_deep")
        )
    )
    ok = _event("nested-ok", tags={"a": {"b": [1, [2, [3]]]}})
    cases.append(SpoolCase(cat, "deep-ok.json", _json(ok), DELIVERED))

    cat = "truncated mid-write"
    full = json.dumps(_event("trunc", summary="a long enough summary " * 5)).encode()
    for j, cut in enumerate([1, 2, 10, len(full) // 2, len(full) - 2, len(full) - 1]):
        cases.append(
            SpoolCase(cat, f"trunc-{j}.json", _bytes(full[:cut]), rejected("json"))
        )
    return cases


def _entry_cases(outside: Path) -> list[SpoolCase]:
    cases = []
    secret = outside / "secret.json"

    def target_file(path: Path) -> None:
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(json.dumps(_event("leak")), encoding="utf-8")

    def link_to(target: Path | str) -> Callable[[Path], None]:
        def make(path: Path) -> None:
            target_file(path)
            os.symlink(target, path)

        return make

    def loop(path: Path) -> None:
        other = path.with_name(path.name + ".loop.json")
        os.symlink(other, path)
        os.symlink(path, other)

    cat = "symlink"
    cases += [
        SpoolCase(cat, "link-outside.json", link_to(secret), rejected("symlink")),
        SpoolCase(cat, "link-etc.json", link_to("/etc/hostname"), rejected("symlink")),
        SpoolCase(
            cat, "link-dangling.json", link_to(outside / "nope"), rejected("symlink")
        ),
        SpoolCase(
            cat, "link-self.json", lambda p: os.symlink(p, p), rejected("symlink")
        ),
        SpoolCase(cat, "link-loop.json", loop, rejected("symlink")),
        SpoolCase(cat, "link-dir.json", link_to(outside), rejected("symlink")),
        SpoolCase(
            cat,
            "link-relative.json",
            link_to("../outside/secret.json"),
            rejected("symlink"),
        ),
    ]

    def fifo(path: Path) -> None:
        os.mkfifo(path)

    def directory(path: Path) -> None:
        path.mkdir()
        (path / "inner.json").write_text(json.dumps(VALID), encoding="utf-8")

    def unix_socket(path: Path) -> None:
        # The socket file stays after close; nothing listens on it.
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))

    cat = "not a regular file"
    cases += [
        SpoolCase(cat, "fifo.json", fifo, rejected("not_a_file")),
        SpoolCase(cat, "fifo-2.json", fifo, rejected("not_a_file")),
        SpoolCase(cat, "dir.json", directory, rejected("not_a_file")),
        SpoolCase(cat, "empty-dir.json", lambda p: p.mkdir(), rejected("not_a_file")),
        SpoolCase(cat, "socket.json", unix_socket, rejected("not_a_file")),
    ]
    if os.geteuid() == 0:
        cases.append(
            SpoolCase(
                cat,
                "device.json",
                lambda p: os.mknod(p, 0o600 | 0o020000, os.makedev(1, 3)),
                rejected("not_a_file"),
            )
        )

    def unreadable(path: Path) -> None:
        path.write_text(json.dumps(_event("perm")), encoding="utf-8")
        path.chmod(0)

    # Root reads it anyway, so as root it is delivered.
    cat = "unreadable"
    expect = DELIVERED if os.geteuid() == 0 else rejected("unreadable")
    cases.append(SpoolCase(cat, "mode-000.json", unreadable, expect))

    cat = "not a spool file"
    for name in (
        ".hidden.json",
        ".partial.json.tmp",
        "event.json.tmp",
        "event.txt",
        "README",
        "x.JSON",
    ):
        cases.append(SpoolCase(cat, name, _bytes(b"{half"), IGNORED))
    return cases


def _macro_cases() -> list[SpoolCase]:
    cases = []
    macros = [
        "$HOSTNAME$",
        "$SERVICEDESC$",
        "{HOST.NAME}",
        "{EVENT.TAGSJSON}",
        "$HOSTPROBLEMID$",
    ]
    cat = "unexpanded macro (identifying field)"
    for field in ("id", "host", "check", "problem_id"):
        for j, macro in enumerate(macros):
            data = _event(f"mac-{field}-{j}", **{field: macro})
            name = f"macro-{field}-{j}.json"
            cases.append(SpoolCase(cat, name, _json(data), rejected("invalid")))
    cat = "unexpanded macro (optional field)"
    for field in ("severity", "summary", "details", "occurred_at"):
        for j, macro in enumerate(macros):
            data = _event(f"mac-{field}-{j}", **{field: macro})
            name = f"macro-{field}-{j}.json"
            cases.append(SpoolCase(cat, name, _json(data), DELIVERED))
    bc20 = _event(
        "bc20-4242", tags="{EVENT.TAGSJSON}", occurred_at="{EVENT.DATE} {EVENT.TIME}"
    )
    cases.append(SpoolCase(cat, "macro-bc20.json", _json(bc20), DELIVERED))
    return cases


def _hostile_cases() -> list[SpoolCase]:
    cases = []
    cat = "hostile text"
    for field in (
        "id",
        "host",
        "check",
        "severity",
        "summary",
        "details",
        "problem_id",
    ):
        for j, text in enumerate(HOSTILE_TEXTS):
            data = _event(f"hostile-{field}-{j}", **{field: text})
            # Text that cleans to nothing leaves a required field empty.
            cases.append(
                SpoolCase(cat, f"hostile-{field}-{j:02d}.json", _json(data), ANY)
            )
    return cases


def _name_cases() -> list[SpoolCase]:
    cat = "odd file name"
    names = [
        os.fsdecode(b"bad-\xff\xfe-name.json"),
        "new\nline.json",
        "tab\tname.json",
        "-leading-dash.json",
        "spaces in name.json",
        "quote'\"name.json",
        "emoji-🔥.json",
        "a" * 250 + ".json",
        "back\\slash.json",
        "carriage\rreturn.json",
    ]
    return [
        SpoolCase(cat, name, _json(_event(f"name-{j}")), DELIVERED)
        for j, name in enumerate(names)
    ]


def _generated_cases() -> list[SpoolCase]:
    cases = []
    for j, doc in enumerate(non_object_documents()):
        cases.append(
            SpoolCase(
                "generated: not an object",
                f"gen-doc-{j:03d}.json",
                _json(doc),
                rejected("invalid"),
            )
        )
    for j, data in enumerate(wrong_type_events()):
        cases.append(
            SpoolCase(
                "generated: field types", f"gen-type-{j:03d}.json", _json(data), ANY
            )
        )
    for j, data in enumerate(hostile_events()):
        cases.append(
            SpoolCase(
                "generated: hostile text", f"gen-text-{j:03d}.json", _json(data), ANY
            )
        )
    for j, blob in enumerate(random_blobs()):
        cases.append(
            SpoolCase(
                "generated: random bytes", f"gen-bytes-{j:03d}.json", _bytes(blob), ANY
            )
        )
    for j, cut in enumerate(truncations()):
        cases.append(
            SpoolCase(
                "generated: truncated", f"gen-trunc-{j:03d}.json", _bytes(cut), ANY
            )
        )
    return cases
