"""Which endpoints get an event, pure."""

from __future__ import annotations


def subscribed(event_types: list[str] | None, event_type: str) -> bool:
    """An endpoint gets an event type it subscribed to, or every type if it subscribed to
    none."""
    return not event_types or event_type in event_types
