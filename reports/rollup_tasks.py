"""Jobs that keep the dashboards' rollups current (periodic, per tenant, and after a demo or an import)."""

from __future__ import annotations

from reports import rollups
from tenants.fanout import for_each_tenant
from tenants.scoping import tenant_bound


def refresh_rollups_everywhere() -> dict[str, int]:
    """Periodic: in every tenant, fold the changes since the last run into the daily rollups."""
    results = for_each_tenant(rollups.refresh_rollups, "refreshing rollups")
    return {"tenants": len(results), "days": sum(result.days for result in results.values())}


def rebuild_tenant_rollups(tenant_id: int) -> int:
    """Recompute every rollup row of one tenant from the raw tables; return the number of days."""
    with tenant_bound(tenant_id):
        return rollups.rebuild_rollups().days


def refresh_tenant_rollups(tenant_id: int) -> int:
    """Fold one tenant's recent changes into its rollups now; return the number of days recomputed."""
    with tenant_bound(tenant_id):
        return rollups.refresh_rollups().days
