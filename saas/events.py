"""Domain events for outer packages: inner packages announce what happened without importing them.

`publish("grant.redeemed", tenant_id, {...}, key="grant.redeemed:42")` sends the blinker signal
`quanyi.grant.redeemed`; integrations turns it into signed outbound webhooks. Publish after the commit.
"""

from __future__ import annotations

from typing import Any

from blinker import signal


def publish(event_type: str, tenant_id: int, payload: dict[str, Any], key: str | None = None) -> None:
    """Announce a committed event; receivers must never break the sender (integrations catches its own)."""
    signal("quanyi." + event_type).send(None, tenant_id=tenant_id, payload=payload, key=key)
