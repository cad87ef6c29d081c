"""Outbound webhooks for the events inner packages publish (they never import integrations).

There is one way to send a signal in Quanyi, `saas.events`. An inner package publishes after its commit:

    from saas import events

    events.publish("order.fulfilled", order.tenant_id, {...}, key="order.fulfilled:42")

and an outer package subscribes in its `init_app`, as `connect_signals` does here for every outbound
event type:

    events.subscribe("order.fulfilled", receiver)  # receiver(sender, *, tenant_id, payload, key=None)

`key` (optional) makes the event reach each endpoint once. A receiver runs in the sender's thread and
must never break the sender's use case: the one below catches and logs its own errors.
"""

from __future__ import annotations

import logging
from typing import Any

from integrations import outbound
from integrations.outbound import EVENT_TYPES
from saas import events
from tenants.scoping import bound_tenant_id, tenant_bound

log = logging.getLogger(__name__)

SIGNALLED_EVENTS = tuple(e for e in EVENT_TYPES if e != "webhook.test")


def _receiver(event_type: str) -> Any:
    def receive(
        sender: Any, *, tenant_id: int, payload: dict[str, Any], key: str | None = None, **_: Any
    ) -> None:
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
    """Subscribe a receiver to every outbound event type (idempotent)."""
    for event_type, receiver in _RECEIVERS.items():
        events.subscribe(event_type, receiver)
