"""Outbound events triggered by inner packages through named blinker signals (no import of integrations).

An inner package sends, after its commit:

    from blinker import signal
    signal("quanyi.order.fulfilled").send(
        None, tenant_id=order.tenant_id, payload={...}, key="order.fulfilled:42"
    )

`key` (optional) makes the event reach each endpoint once. Signal names are "quanyi." + the event type.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import signal

from integrations.outbound import EVENT_TYPES
from tenants.scoping import bound_tenant_id, tenant_bound

log = logging.getLogger(__name__)

SIGNAL_PREFIX = "quanyi."
SIGNALLED_EVENTS = tuple(e for e in EVENT_TYPES if e != "webhook.test")


def _receiver(event_type: str) -> Any:
    def receive(
        sender: Any, *, tenant_id: int, payload: dict[str, Any], key: str | None = None, **_: Any
    ) -> None:
        from integrations import outbound

        try:
            if bound_tenant_id() == tenant_id:
                outbound.emit(event_type, payload, key=key)
            else:
                with tenant_bound(tenant_id):
                    outbound.emit(event_type, payload, key=key)
        except Exception:  # an outbound webhook must never break the sender's use case
            log.exception("could not queue outbound event %s for tenant %s", event_type, tenant_id)

    receive.__name__ = f"emit_{event_type.replace('.', '_')}"
    return receive


_RECEIVERS = {event_type: _receiver(event_type) for event_type in SIGNALLED_EVENTS}


def connect_signals() -> None:
    """Connect a receiver to `quanyi.<event type>` for every outbound event type (idempotent)."""
    for event_type, receiver in _RECEIVERS.items():
        signal(SIGNAL_PREFIX + event_type).connect(receiver)
