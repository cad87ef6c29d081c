"""Catalog fixtures: a shop with a card-key right, and a look at everything an import could change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from catalog.models import CardKey, CardKeyBatch, Right
from saas.extensions import db
from tenants.models import AuditEvent
from tests.catalog.factories import make_right
from tests.factories import Shop


@pytest.fixture
def right(shop: Shop) -> Right:
    """A card-key right of the shop: 腾讯视频VIP月卡."""
    with shop.bound():
        return make_right()


def database_state() -> dict[str, Any]:
    """Everything an import writes: keys (with their bytes), batches, audit rows."""
    keys = db.session.execute(
        select(CardKey.id, CardKey.status, CardKey.code_hash, CardKey.ciphertext).order_by(CardKey.id)
    ).all()
    batches = db.session.execute(
        select(CardKeyBatch.id, CardKeyBatch.imported).order_by(CardKeyBatch.id)
    ).all()
    audit = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    return {"keys": [tuple(k) for k in keys], "batches": [tuple(b) for b in batches], "audit": list(audit)}


@pytest.fixture
def unchanged(shop: Shop) -> Callable[[], Callable[[], None]]:
    """Take a snapshot; the returned check asserts the database holds exactly what it held then."""

    def snapshot() -> Callable[[], None]:
        with shop.bound():
            before = database_state()

        def check() -> None:
            db.session.rollback()
            with shop.bound():
                assert database_state() == before, "a refused import changed the database"

        return check

    return snapshot
