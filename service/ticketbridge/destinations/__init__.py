"""Ticketing destinations: one client per system behind `base.Destination`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticketbridge.config.model import (
    DestinationSettings,
    JiraSettings,
    RedmineSettings,
    RequestTrackerSettings,
    ServiceNowSettings,
    WebhookSettings,
    ZendeskSettings,
)
from ticketbridge.destinations.base import Destination, Notes, Previews, Reopens
from ticketbridge.destinations.http import OnRequest, ReadRetry
from ticketbridge.destinations.jira import JiraDestination
from ticketbridge.destinations.redmine import RedmineDestination
from ticketbridge.destinations.request_tracker import RequestTrackerDestination
from ticketbridge.destinations.servicenow import ServiceNowDestination
from ticketbridge.destinations.webhook import WebhookDestination
from ticketbridge.destinations.zendesk import ZendeskDestination

__all__ = [
    "JiraDestination",
    "OnRequest",
    "ReadRetry",
    "RedmineDestination",
    "RequestTrackerDestination",
    "ServiceNowDestination",
    "WebhookDestination",
    "ZendeskDestination",
    "build_destination",
]


if TYPE_CHECKING:
    # The sender, mirror mode and `ticketbridge route` look for these optional
    # interfaces at run time; here mypy checks that these clients offer them.
    def _optional_interfaces(
        client: JiraDestination
        | ServiceNowDestination
        | ZendeskDestination
        | RedmineDestination
        | RequestTrackerDestination,
    ) -> tuple[Destination, Reopens, Notes, Previews]:
        return client, client, client, client


def build_destination(
    name: str,
    settings: DestinationSettings,
    *,
    on_request: OnRequest | None = None,
    read_retry: ReadRetry | None = None,
) -> Destination:
    """The client for one configured destination, chosen by its `type`.

    `on_request(destination, operation, status, seconds)` is called after
    every HTTP request, e.g. to feed a duration histogram.
    """
    match settings:
        case JiraSettings():
            return JiraDestination(
                name, settings, on_request=on_request, read_retry=read_retry
            )
        case ServiceNowSettings():
            return ServiceNowDestination(
                name, settings, on_request=on_request, read_retry=read_retry
            )
        case WebhookSettings():
            return WebhookDestination(
                name, settings, on_request=on_request, read_retry=read_retry
            )
        case ZendeskSettings():
            return ZendeskDestination(
                name, settings, on_request=on_request, read_retry=read_retry
            )
        case RedmineSettings():
            return RedmineDestination(
                name, settings, on_request=on_request, read_retry=read_retry
            )
        case RequestTrackerSettings():
            return RequestTrackerDestination(
                name, settings, on_request=on_request, read_retry=read_retry
            )
    raise ValueError(f"{name}: unknown destination type {settings.type!r}")
