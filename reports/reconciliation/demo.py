"""Demo data: last month's reconciliation run for the demo tenant."""

from __future__ import annotations

from reports.reconciliation import services
from reports.reconciliation.services import RunRequest
from saas.timeutil import utcnow
from tenants.models import Tenant


def add_demo_reconciliation(tenant: Tenant) -> None:
    """Create last month's run (all channels, every format) for the demo tenant; it builds as a job."""
    period = services.previous_month(utcnow(), tenant.time_zone)
    services.create_run(RunRequest(period), created_by="demo")
