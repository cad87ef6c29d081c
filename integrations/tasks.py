"""Background jobs of integrations. Each takes a tenant id and ids, binds the tenant, and is idempotent."""

from __future__ import annotations

import contextvars
import logging
import time

from integrations import outbound
from integrations.inbound import drain, inbox
from integrations.inbound.store import request_inbox_drain
from tenants.fanout import for_each_tenant
from tenants.scoping import tenant_bound

log = logging.getLogger(__name__)

DRAIN_BUDGET_SECONDS = 240  # then the drain hands over to a new job (its timeout is DRAIN_TIMEOUT)
# Set while this context drains: a helper drain requested from inside one (jobs run inline in tests and
# the embedded mode) would only nest; a worker process starts each job in a fresh context.
_DRAINING: contextvars.ContextVar[bool] = contextvars.ContextVar("quanyi_draining", default=False)


def process_delivery(tenant_id: int, delivery_id: int) -> str:
    """Process one inbox delivery (nothing happens if another job has it or it is finished)."""
    with tenant_bound(tenant_id):
        return inbox.process_delivery(delivery_id)


def drain_inbox(tenant_id: int) -> int:
    """Process the tenant's due deliveries in batches, oldest first, until none are left; return how many.

    The webhook endpoint's job: one drain serves every delivery that arrived while it waited in the queue.
    Each batch (`inbound.drain`) is claimed with one statement and applied in one transaction. A full
    batch asks for another drain first, so a second worker process joins while there is more (on PostgreSQL
    the drains claim different rows; requests coalesce, so at most one waits in the queue).
    After DRAIN_BUDGET_SECONDS it asks for a new drain and stops: a flash sale does not outlive the timeout.
    """
    started = time.monotonic()
    total = 0
    cache = drain.DrainCache()
    nested = _DRAINING.get()
    token = _DRAINING.set(True)
    try:
        with tenant_bound(tenant_id):
            while True:
                done = drain.drain_batch(cache)
                total += done
                if done < drain.BATCH_SIZE:
                    break
                over = time.monotonic() - started > DRAIN_BUDGET_SECONDS
                if not nested:
                    request_inbox_drain(tenant_id)  # more to do: another worker shares it (or takes over)
                if over:
                    break
    finally:
        _DRAINING.reset(token)
    return total


def send_outbound(tenant_id: int, delivery_id: int, manual: bool = False) -> str:
    """Send one outbound webhook delivery."""
    with tenant_bound(tenant_id):
        return outbound.send(delivery_id, manual=manual)


def process_pending_inbox_everywhere() -> dict[str, int]:
    """Periodic (every 60 s): in every tenant, process inbox rows left pending (Redis was down, a worker
    died) or due for a retry, and send outbound deliveries due for a retry (`tenants.fanout`).
    """
    results = for_each_tenant(_process_pending, "sweeping the webhook inbox")
    return {
        "tenants": len(results),
        "inbox": sum(inbox_count for inbox_count, _ in results.values()),
        "outbound": sum(outbound_count for _, outbound_count in results.values()),
    }


def _process_pending() -> tuple[int, int]:
    return inbox.process_due(), outbound.send_due()
