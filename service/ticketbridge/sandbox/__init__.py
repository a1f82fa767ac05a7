"""A small stateful ticketing server that speaks Jira, ServiceNow, Zendesk
and webhooks.

Integration tests and partners point ticketbridge at it instead of a real
system. It keeps everything in memory, lists what it holds for humans and for
tests, and can be scripted to fail the way real systems fail.
"""

from ticketbridge.sandbox.app import (
    RunningSandbox,
    build_app,
    main_sandbox,
    run,
    run_sandbox,
    serve,
)
from ticketbridge.sandbox.settings import SandboxSettings

__all__ = [
    "RunningSandbox",
    "SandboxSettings",
    "build_app",
    "main_sandbox",
    "run",
    "run_sandbox",
    "serve",
]
