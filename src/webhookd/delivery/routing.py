"""Which endpoints get an event, pure."""

from __future__ import annotations

WILDCARD = ".*"


def subscribed(event_types: list[str] | None, event_type: str) -> bool:
    """An endpoint gets an event type it subscribed to, or every type if it subscribed to
    none. ``invoice.*`` subscribes to every type that starts with ``invoice.``
    (``invoice.paid``, ``invoice.payment.failed``), not to ``invoice`` itself."""
    if not event_types:
        return True
    for selector in event_types:
        if selector == event_type:
            return True
        if selector.endswith(WILDCARD) and event_type.startswith(selector[:-1]):
            return True
    return False


def in_channels(endpoint_channels: list[str] | None, event_channels: list[str] | None) -> bool:
    """An endpoint with channels gets the events published in at least one of them; an
    endpoint without gets every event, in a channel or not (as Svix routes them)."""
    if not endpoint_channels:
        return True
    return bool(event_channels) and not set(endpoint_channels).isdisjoint(event_channels or ())
