"""Atlassian Document Format: the rich-text trees Jira v3 uses for text.

The sandbox keeps text plain and converts at the edge: it reads any ADF tree
as its text nodes, paragraph per line, and writes text back as paragraphs.
"""

from __future__ import annotations

from typing import Any


def is_document(value: object) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and isinstance(value.get("content"), list)
    )


def to_text(value: object) -> str | None:
    """Plain text of a v2 string or a v3 document."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return str(value)
    if value.get("type") == "text":
        return str(value.get("text", ""))
    if value.get("type") == "hardBreak":
        return "\n"
    parts = [to_text(child) or "" for child in value.get("content") or []]
    joiner = "\n" if value.get("type") == "doc" else ""
    return joiner.join(parts)


def from_text(text: str) -> dict[str, Any]:
    """A document with one paragraph per line of `text`."""
    paragraphs = []
    for line in text.split("\n"):
        content = [{"type": "text", "text": line}] if line else []
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}
