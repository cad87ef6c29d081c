"""Domain events: the one way an inner package tells outer ones what happened without importing them.

Send, after the commit that made it true:

    events.publish("grant.redeemed", tenant_id, {"grant_id": "42"}, key="grant.redeemed:42")

and receive, in the outer package's `init_app`:

    events.subscribe("grant.redeemed", on_grant_redeemed)  # on_grant_redeemed(sender, *, tenant_id,
                                                           #     payload, key=None, **_)

Each event type is the blinker signal `quanyi.<event type>`; the payload is a JSON-ready dict. Receivers
run in the sender's thread and must never break the sender's use case (catch and log your own errors).
`integrations.receivers` turns the outbound event types into signed webhooks; `orders` fills backorders
on `card_keys.arrived`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blinker import NamedSignal, signal

SIGNAL_PREFIX = "quanyi."

Receiver = Callable[..., None]


def event_signal(event_type: str) -> NamedSignal:
    """Return the blinker signal of `event_type` (`quanyi.<event type>`)."""
    return signal(SIGNAL_PREFIX + event_type)


def publish(event_type: str, tenant_id: int, payload: dict[str, Any], key: str | None = None) -> None:
    """Announce a committed event; `key` (optional) lets a receiver act on it once."""
    event_signal(event_type).send(None, tenant_id=tenant_id, payload=payload, key=key)


def subscribe(event_type: str, receiver: Receiver) -> None:
    """Call `receiver(sender, tenant_id=…, payload=…, key=…)` on each `event_type` (idempotent)."""
    event_signal(event_type).connect(receiver)
