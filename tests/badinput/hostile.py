"""Text an event field may carry that must reach a ticket harmlessly."""

from __future__ import annotations

HOSTILE_TEXTS: list[str] = [
    "'\"`",  # quotes of every kind
    'web01" OR project = OPS OR summary ~ "',  # JQL injection
    "labels = tb-0000 ORDER BY created DESC",
    "active=true^ORpriority=1^NQsys_id!=x",  # ServiceNow encoded query
    "correlation_id=tb-123^ORDERBYDESCsys_created_on",
    "'; DROP TABLE events; --",
    "<script>alert(1)</script>",
    "{{7*7}} ${jndi:ldap://127.0.0.1/x} %(name)s %s %n",
    "../../../../etc/passwd",
    "line1\nline2\r\nline3\ttabbed",
    "\x00\x01\x02\x07\x08\x1b[31mred\x1b[0m\x7f",
    "\u202eevil\u202c \u200b\u200d\ufeff",  # bidi override, zero-width
    "🔥💥🚨 déjà vu — 日本語 — עברית — 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "e\u0301" * 50,  # combining marks
    "x" * 100_000,  # the longest text kept
    "y" * 150_000,  # cut to 100 000 characters
    "\\u0000 \\n \\\\",  # escapes that are only text
    "*{panel}h1. Jira wiki* [link|http://127.0.0.1/] {code}x{code}",
    "[~accountid:123] @here <!channel>",
    "\u0000",  # nothing left once cleaned
]
