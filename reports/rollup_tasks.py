"""Jobs that keep the dashboards' rollups current (periodic, per tenant, and after a demo or an import)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from reports import rollups
from saas.extensions import db
from tenants.models import Tenant
from tenants.scoping import tenant_bound

log = logging.getLogger(__name__)


def refresh_rollups_everywhere() -> dict[str, int]:
    """Periodic: in every tenant, fold the changes since the last run into the daily rollups.

    One tenant's failure does not stop the others; it is raised at the end so the job shows as failed.
    """
    totals = {"tenants": 0, "days": 0}
    failed: list[int] = []
    tenant_ids = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id)))
    db.session.commit()
    for tenant_id in tenant_ids:
        with tenant_bound(tenant_id):
            try:
                result = rollups.refresh_rollups()
            except Exception:
                db.session.rollback()
                log.exception("refreshing the rollups of tenant %s failed", tenant_id)
                failed.append(tenant_id)
                continue
        totals["tenants"] += 1
        totals["days"] += result.days
    if failed:
        raise RuntimeError(f"refreshing rollups failed for tenants {failed}")
    return totals


def rebuild_tenant_rollups(tenant_id: int) -> int:
    """Recompute every rollup row of one tenant from the raw tables; return the number of days."""
    with tenant_bound(tenant_id):
        return rollups.rebuild_rollups().days


def refresh_tenant_rollups(tenant_id: int) -> int:
    """Fold one tenant's recent changes into its rollups now; return the number of days recomputed."""
    with tenant_bound(tenant_id):
        return rollups.refresh_rollups().days
