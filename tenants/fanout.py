"""Work over every tenant, one at a time: the one loop every periodic job uses.

A periodic job reads the global tenants table, binds each tenant in turn and does that tenant's work. One
tenant's failure is rolled back and logged and does not stop the others; at the end `FanOutFailed` names
every tenant that failed, so the job shows as failed. No read ever spans tenants.

    def refresh_rollups_everywhere() -> dict[str, int]:
        results = for_each_tenant(rollups.refresh_rollups, "refreshing the rollups")
        return {"tenants": len(results), "days": sum(r.days for r in results.values())}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy import select

from saas.extensions import db
from tenants.models import Tenant
from tenants.scoping import tenant_bound

T = TypeVar("T")

log = logging.getLogger(__name__)


class FanOutFailed(RuntimeError):
    """The work failed in some tenants (named, in order); it ran in all the others."""

    def __init__(self, what: str, tenant_ids: list[int]) -> None:
        super().__init__(f"{what} failed for tenants {tenant_ids}")
        self.tenant_ids = tenant_ids


def every_tenant_id() -> list[int]:
    """Return the id of every tenant, in order, and end the read.

    The read is committed so that each tenant's work begins a transaction of its own, with that tenant
    bound (on PostgreSQL the row-level security setting is made per transaction).
    """
    tenant_ids = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id)))
    db.session.commit()
    return tenant_ids


def for_each_tenant(
    work: Callable[[], T], what: str, tenant_ids: Iterable[int] | None = None
) -> dict[int, T]:
    """Run `work()` with each tenant bound in turn (default: every tenant); return its result by tenant.

    `what` names the work in the log and in the error ("sweeping the outbox"). A tenant whose work raises
    is rolled back and logged and left out of the results; `FanOutFailed`, raised from the first error once
    every tenant had its turn, names them all.
    """
    results: dict[int, T] = {}
    failed: list[int] = []
    first_error: Exception | None = None
    for tenant_id in every_tenant_id() if tenant_ids is None else tenant_ids:
        with tenant_bound(tenant_id):
            try:
                results[tenant_id] = work()
            except Exception as error:
                db.session.rollback()
                log.exception("%s failed for tenant %s", what, tenant_id)
                failed.append(tenant_id)
                first_error = first_error or error
    if failed:
        raise FanOutFailed(what, failed) from first_error
    return results
