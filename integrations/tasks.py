"""Background jobs of integrations. Each takes a tenant id and ids, binds the tenant, and is idempotent."""

from __future__ import annotations

import logging
import time

from flask import current_app

from integrations import inbox, outbound
from saas.extensions import is_postgres
from tenants.fanout import for_each_tenant
from tenants.scoping import tenant_bound

log = logging.getLogger(__name__)

DRAIN_BUDGET_SECONDS = 240  # then the drain hands over to a new job (its timeout is DRAIN_TIMEOUT)


def process_delivery(tenant_id: int, delivery_id: int) -> str:
    """Process one inbox delivery (nothing happens if another job has it or it is finished)."""
    with tenant_bound(tenant_id):
        return inbox.process_delivery(delivery_id)


def drain_inbox(tenant_id: int) -> int:
    """Process the tenant's pending deliveries, oldest first, until none are left; return how many.

    The webhook endpoint's job: one drain serves every delivery that arrived while it waited in the queue.
    On PostgreSQL it works in INBOX_DRAIN_LANES threads (a delivery waits on the database about half the
    time); the deliveries of one order stay in one lane, in the order received.
    After DRAIN_BUDGET_SECONDS it asks for a new drain and stops: a flash sale does not outlive the timeout.
    """
    from integrations import inbox
    from integrations.receiving import request_inbox_drain

    started = time.monotonic()
    total = 0
    lanes = int(current_app.config["INBOX_DRAIN_LANES"]) if is_postgres() else 1  # SQLite: one writer
    with tenant_bound(tenant_id):
        while (done := inbox.process_due(include_fresh=True, lanes=lanes)) > 0:
            total += done
            if time.monotonic() - started > DRAIN_BUDGET_SECONDS:
                request_inbox_drain(tenant_id)
                break
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
