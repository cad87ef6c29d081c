"""Background jobs of the catalog: imports and the hourly expiry of card keys."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from catalog import inventory
from catalog.models import CardKey
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.jobruns import current_job_run_id
from tenants.models import Tenant
from tenants.scoping import tenant_bound

log = logging.getLogger(__name__)


def import_upload(token: str) -> dict[str, Any]:
    """Job: import a confirmed upload of the bound tenant (started by `inventory.confirm_import`).

    A retried run (its first worker died) reopens its own upload: the dead attempt left nothing behind.
    """
    inventory.reopen_for_retry(token, current_job_run_id())
    return inventory.run_upload_import(token)


def tenants_with_keys_to_expire() -> list[int]:
    """Return the ids of tenants holding available keys past their expiry (periodic fan-out).

    Each tenant is asked in turn (one indexed probe each): no read spans tenants.
    """
    now, found = utcnow(), []
    for tenant_id in db.session.scalars(select(Tenant.id).order_by(Tenant.id)).all():
        with tenant_bound(tenant_id):
            due = select(CardKey.id).where(CardKey.status == "available", CardKey.expires_at <= now).limit(1)
            if db.session.scalar(due) is not None:
                found.append(tenant_id)
    db.session.rollback()  # end the read transaction
    return found


def expire_card_keys_everywhere() -> dict[str, int]:
    """Periodic job (hourly): in each tenant, mark available keys past expiry as expired.

    One tenant's failure does not stop the others; it is logged, and the job fails at the end so the
    failure is visible.
    """
    expired, failures = 0, []
    for tenant_id in tenants_with_keys_to_expire():
        with tenant_bound(tenant_id):
            try:
                expired += inventory.expire_card_keys()
            except Exception as error:
                db.session.rollback()
                log.exception("expiring card keys failed for tenant %s", tenant_id)
                failures.append((tenant_id, error))
    if failures:
        raise RuntimeError(
            f"expiring card keys failed for tenants {[t for t, _e in failures]}"
        ) from failures[0][1]
    return {"expired": expired}
