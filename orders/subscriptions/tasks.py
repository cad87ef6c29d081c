"""Periodic jobs of subscriptions: fan out over every tenant, bind each, and do its work.

`send_reminders_everywhere` and `expire_subscriptions_everywhere` are registered as periodic jobs by
`orders.subscriptions.init_app`; `tenants.fanout.for_each_tenant` runs them tenant by tenant.
"""

from __future__ import annotations

from orders.subscriptions.cancellation import end_refunded_subscriptions
from orders.subscriptions.reminders import send_due_reminders
from orders.subscriptions.services import (
    advance_lifecycles,
    start_missing_subscriptions,
    start_subscription_for_order,
)
from tenants.fanout import for_each_tenant
from tenants.scoping import tenant_bound


def send_reminders_everywhere() -> dict[str, int]:
    """Periodic: send every tenant's due renewal reminders (exactly once per subscription, period, offset)."""
    results = for_each_tenant(send_due_reminders, "reminders")
    return {"tenants": len(results), "reminders": sum(results.values())}


def run_lifecycle() -> dict[str, int]:
    """In the bound tenant: start missed subscriptions, end refunded ones, move those whose period ended."""
    counts = {"started": start_missing_subscriptions(), "ended_by_refund": end_refunded_subscriptions()}
    counts.update(advance_lifecycles())
    return counts


def expire_subscriptions_everywhere() -> dict[str, int]:
    """Periodic: in every tenant, move subscriptions past their period end (past due, expired, canceled)."""
    totals = {"tenants": 0}
    for counts in for_each_tenant(run_lifecycle, "lifecycle").values():
        totals["tenants"] += 1
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def start_subscriptions(tenant_id: int, order_ids: int | list[int]) -> int:
    """Job: start the subscriptions of paid orders (one job per fulfilment batch; an id alone works too)."""
    with tenant_bound(tenant_id):
        ids = [order_ids] if isinstance(order_ids, int) else order_ids
        return sum(len(start_subscription_for_order(order_id)) for order_id in ids)
