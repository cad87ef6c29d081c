"""Demo step: bring the demo tenant's dashboards up to date once the other demo data exists."""

from __future__ import annotations

from reports import rollups
from tenants.models import Tenant


def rebuild_demo_rollups(tenant: Tenant) -> None:
    """Rebuild the demo tenant's rollups (runs last, after orders and subscriptions exist)."""
    rollups.rebuild_rollups()
