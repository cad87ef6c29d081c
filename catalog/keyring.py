"""The tenants' data keys: created on first use, unwrapped once per process, rewrapped on master rotation."""

from __future__ import annotations

import threading

from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from catalog.models import TenantDataKey
from saas import crypto
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.models import Tenant
from tenants.scoping import current_tenant_id, tenant_bound

_cache: dict[tuple[int, str, bytes], bytes] = {}
_cache_lock = threading.Lock()


def master_key() -> bytes:
    """Return the configured master key (QUANYI_MASTER_KEY)."""
    return crypto.decode_master_key(current_app.config.get("QUANYI_MASTER_KEY"))


_ROWS_CACHE = "quanyi_tenant_data_keys"


def _stored_keys(tenant_id: int) -> dict[str, TenantDataKey]:
    """The tenant's data key rows, read once per transaction (an order generating codes asks often)."""
    cache: dict[int, dict[str, TenantDataKey]] = db.session.info.setdefault(_ROWS_CACHE, {})
    if tenant_id not in cache:
        rows = db.session.scalars(select(TenantDataKey).where(TenantDataKey.tenant_id == tenant_id))
        cache[tenant_id] = {row.purpose: row for row in rows}
    return cache[tenant_id]


@event.listens_for(Session, "after_transaction_end")
def _forget_stored_keys(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction itself ended (commit, rollback or close)
        session.info.pop(_ROWS_CACHE, None)


def has_tenant_keys() -> bool:
    """Tell whether the bound tenant's data keys exist (read once per transaction)."""
    return len(_stored_keys(current_tenant_id())) == len(crypto.PURPOSES)


def ensure_tenant_keys() -> None:
    """Create the bound tenant's data keys if it has none yet (commits; call before a long transaction)."""
    tenant_id = current_tenant_id()
    if has_tenant_keys():
        return
    master = master_key()
    fingerprint = crypto.key_fingerprint(master)
    existing = dict(_stored_keys(tenant_id))
    for purpose in crypto.PURPOSES:
        if purpose not in existing:
            wrapped = crypto.wrap_data_key(master, tenant_id, purpose, crypto.new_data_key())
            db.session.add(TenantDataKey(purpose=purpose, wrapped_key=wrapped, master_key_id=fingerprint))
    try:
        db.session.commit()
    except IntegrityError:  # another process created them first: theirs are as good
        db.session.rollback()


def _data_key(tenant_id: int, row: TenantDataKey) -> bytes:
    cache_key = (tenant_id, row.purpose, bytes(row.wrapped_key))
    with _cache_lock:
        cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    key = crypto.unwrap_data_key(master_key(), tenant_id, row.purpose, bytes(row.wrapped_key))
    with _cache_lock:
        _cache[cache_key] = key
    return key


def cipher_for(right_id: int) -> crypto.CardKeyCipher:
    """Return the cipher of the bound tenant for one right (its data keys must exist)."""
    tenant_id = current_tenant_id()
    rows = _stored_keys(tenant_id)
    if len(rows) != len(crypto.PURPOSES):
        raise crypto.CryptoError("this tenant has no data keys yet; call ensure_tenant_keys() first")
    return crypto.CardKeyCipher(
        tenant_id, right_id, _data_key(tenant_id, rows["encrypt"]), _data_key(tenant_id, rows["hash"])
    )


def rotate_master_key(old_master: bytes, new_master: bytes) -> dict[str, int]:
    """Rewrap every tenant's data keys from the old master key to the new one, in one transaction.

    Keys already under the new master are left alone, so a run that was interrupted can be repeated.
    """
    old_id, new_id = crypto.key_fingerprint(old_master), crypto.key_fingerprint(new_master)
    counts = {"rewrapped": 0, "already_current": 0}
    for tenant_id in db.session.scalars(select(Tenant.id).order_by(Tenant.id)).all():
        with tenant_bound(tenant_id):  # each tenant in turn (no read spans tenants), all in one transaction
            for row in db.session.scalars(select(TenantDataKey).order_by(TenantDataKey.purpose)):
                if row.master_key_id == new_id:
                    counts["already_current"] += 1
                    continue
                if row.master_key_id != old_id:
                    db.session.rollback()
                    raise crypto.CryptoError(
                        f"tenant {row.tenant_id}'s {row.purpose} key is wrapped by master key "
                        f"{row.master_key_id}, "
                        "which is neither the old nor the new one"
                    )
                plain = crypto.unwrap_data_key(old_master, row.tenant_id, row.purpose, bytes(row.wrapped_key))
                row.wrapped_key = crypto.wrap_data_key(new_master, row.tenant_id, row.purpose, plain)
                row.master_key_id = new_id
                row.rewrapped_at = utcnow()
                counts["rewrapped"] += 1
    db.session.commit()
    with _cache_lock:
        _cache.clear()
    return counts
