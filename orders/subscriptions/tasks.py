"""Periodic jobs of subscriptions: fan out over every tenant, bind each, and do its work.

`send_reminders_everywhere` and `expire_subscriptions_everywhere` are declared in `saas/periodic.py`. One
tenant's failure does not stop the others; it is raised at the end so the job shows as failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from saas.extensions import db
from tenants.models import Tenant
from tenants.scoping import tenant_bound

log = logging.getLogger(__name__)


def _every_tenant(work: Callable[[], int | dict[str, int]], what: str) -> dict[str, int]:
    totals: dict[str, int] = {"tenants": 0}
    failed: list[int] = []
    tenant_ids = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id)))
    db.session.commit()
    for tenant_id in tenant_ids:
        with tenant_bound(tenant_id):
            try:
                result = work()
            except Exception:
                db.session.rollback()
                log.exception("%s failed for tenant %s", what, tenant_id)
                failed.append(tenant_id)
                continue
        totals["tenants"] += 1
        for key, value in result.items() if isinstance(result, dict) else [(what, result)]:
            totals[key] = totals.get(key, 0) + value
    if failed:
        raise RuntimeError(f"{what} failed for tenants {failed}")
    return totals


def send_reminders_everywhere() -> dict[str, int]:
    """Periodic: send every tenant's due renewal reminders (exactly once per subscription, period, offset)."""
    from orders.subscriptions.reminders import send_due_reminders

    return _every_tenant(send_due_reminders, "reminders")


def run_lifecycle() -> dict[str, int]:
    """In the bound tenant: start missed subscriptions, end refunded ones, move those whose period ended."""
    from orders.subscriptions.cancellation import end_refunded_subscriptions
    from orders.subscriptions.services import advance_lifecycles, start_missing_subscriptions

    counts = {"started": start_missing_subscriptions(), "ended_by_refund": end_refunded_subscriptions()}
    counts.update(advance_lifecycles())
    return counts


def expire_subscriptions_everywhere() -> dict[str, int]:
    """Periodic: in every tenant, move subscriptions past their period end (past due, expired, canceled)."""
    return _every_tenant(run_lifecycle, "lifecycle")


def start_subscriptions(tenant_id: int, order_ids: int | list[int]) -> int:
    """Job: start the subscriptions of paid orders (one job per fulfilment batch; an id alone works too)."""
    from orders.subscriptions.services import start_subscription_for_order

    with tenant_bound(tenant_id):
        ids = [order_ids] if isinstance(order_ids, int) else order_ids
        return sum(len(start_subscription_for_order(order_id)) for order_id in ids)
