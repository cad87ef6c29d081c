"""Background jobs of the catalog: imports and the hourly expiry of card keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from catalog import inventory
from catalog.models import CardKey
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.fanout import for_each_tenant
from tenants.jobruns import current_job_run_id


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
    now = utcnow()
    due = for_each_tenant(lambda: _has_keys_expired_by(now), "looking for keys to expire")
    db.session.rollback()  # end the read transaction
    return [tenant_id for tenant_id, has_keys in due.items() if has_keys]


def _has_keys_expired_by(now: dt.datetime) -> bool:
    due = select(CardKey.id).where(CardKey.status == "available", CardKey.expires_at <= now).limit(1)
    return db.session.scalar(due) is not None


def expire_card_keys_everywhere() -> dict[str, int]:
    """Periodic job (hourly): in each tenant holding keys past expiry, mark those keys expired."""
    expired = for_each_tenant(inventory.expire_card_keys, "expiring card keys", tenants_with_keys_to_expire())
    return {"expired": sum(expired.values())}
