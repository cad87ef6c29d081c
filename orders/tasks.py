"""Background jobs of the orders package: each takes a tenant id and ids, binds the tenant, is idempotent."""

from __future__ import annotations

from orders import fulfilment, services, topup
from tenants.fanout import for_each_tenant
from tenants.scoping import tenant_bound


def fulfil_order(tenant_id: int, order_id: int) -> None:
    """Fulfil a paid order (does nothing if it was fulfilled already)."""
    with tenant_bound(tenant_id):
        fulfilment.fulfil_order(order_id, actor="system: fulfilment job")


def fill_backorders(tenant_id: int, right_id: int) -> int:
    """Fill a right's backorders from stock that just arrived, oldest payment first."""
    with tenant_bound(tenant_id):
        return fulfilment.fill_backorders(right_id)


def run_topup(tenant_id: int, grant_id: int) -> str:
    """Run one grant's top-up with the supplier (at most one call in flight per grant)."""
    with tenant_bound(tenant_id):
        return topup.run_topup(grant_id)


def release_expired_reservations_everywhere() -> dict[str, int]:
    """Periodic: in every tenant, release expired stock holds and fulfil paid orders left unfulfilled."""
    results = for_each_tenant(_release_and_fulfil, "releasing reservations")
    return {
        "tenants": len(results),
        "released": sum(released for released, _ in results.values()),
        "fulfilled": sum(fulfilled for _, fulfilled in results.values()),
    }


def _release_and_fulfil() -> tuple[int, int]:
    return services.release_expired_reservations(), services.fulfil_stuck_orders()
