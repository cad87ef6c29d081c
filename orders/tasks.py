"""Background jobs of the orders package: each takes a tenant id and ids, binds the tenant, is idempotent."""

from __future__ import annotations

import logging

from sqlalchemy import select

from saas.extensions import db
from tenants.models import Tenant
from tenants.scoping import tenant_bound

log = logging.getLogger(__name__)


def fulfil_order(tenant_id: int, order_id: int) -> None:
    """Fulfil a paid order (does nothing if it was fulfilled already)."""
    from orders import fulfilment

    with tenant_bound(tenant_id):
        fulfilment.fulfil_order(order_id, actor="system: fulfilment job")


def fill_backorders(tenant_id: int, right_id: int) -> int:
    """Fill a right's backorders from stock that just arrived, oldest payment first."""
    from orders import fulfilment

    with tenant_bound(tenant_id):
        return fulfilment.fill_backorders(right_id)


def run_topup(tenant_id: int, grant_id: int) -> str:
    """Run one grant's top-up with the supplier (at most one call in flight per grant)."""
    from orders import topup

    with tenant_bound(tenant_id):
        return topup.run_topup(grant_id)


def release_expired_reservations_everywhere() -> dict[str, int]:
    """Periodic: in every tenant, release expired stock holds and fulfil paid orders left unfulfilled.

    Loops over the global tenants table and binds each tenant in turn; one tenant's failure does not stop
    the others, and is raised at the end so the job shows as failed.
    """
    from orders import services

    totals = {"tenants": 0, "released": 0, "fulfilled": 0}
    failed: list[int] = []
    tenant_ids = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id)))
    db.session.commit()
    for tenant_id in tenant_ids:
        with tenant_bound(tenant_id):
            try:
                totals["released"] += services.release_expired_reservations()
                totals["fulfilled"] += services.fulfil_stuck_orders()
                totals["tenants"] += 1
            except Exception:
                db.session.rollback()
                log.exception("releasing reservations of tenant %s failed", tenant_id)
                failed.append(tenant_id)
    if failed:
        raise RuntimeError(f"releasing reservations failed for tenants {failed}")
    return totals
