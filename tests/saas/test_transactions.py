"""The transaction helper joins a writer, ends a read, and never commits another step's writes unseen."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from saas.extensions import UncommittedWrites, db, immediate_transaction
from tenants import audit
from tenants.models import AuditEvent
from tests.factories import Shop


def _audit_count(shop: Shop, action: str) -> int:
    with shop.bound():
        db.session.rollback()
        return db.session.scalar(select(func.count()).where(AuditEvent.action == action)) or 0


@pytest.fixture
def sqlite_app(app: Flask) -> Flask:
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("deferred transactions that become writers are SQLite's")
    return app


def test_a_use_case_refuses_the_write_lock_over_an_earlier_steps_uncommitted_writes(
    sqlite_app: Flask, shop: Shop
) -> None:
    with shop.bound():
        db.session.rollback()
        audit.record("test.earlier_step")
        db.session.flush()  # written in a deferred transaction (a page view), not committed
        with pytest.raises(UncommittedWrites), immediate_transaction(db.session()):
            pass
        db.session.rollback()
    assert _audit_count(shop, "test.earlier_step") == 0


def test_a_use_case_after_a_read_ends_the_read_and_writes_as_a_writer(sqlite_app: Flask, shop: Shop) -> None:
    with shop.bound():
        db.session.rollback()
        db.session.scalar(
            select(func.count()).select_from(AuditEvent)
        )  # a read opened a deferred transaction
        with immediate_transaction(db.session()) as session:
            assert session.connection().info["sqlite_immediate"] is True
            audit.record("test.use_case")
            session.commit()
    assert _audit_count(shop, "test.use_case") == 1


def test_inside_a_writer_the_use_case_joins_and_commits_once(app: Flask, shop: Shop) -> None:
    with shop.bound(), immediate_transaction(db.session()) as outer:
        audit.record("test.outer")
        with immediate_transaction(db.session()) as inner:
            assert inner is outer
            audit.record("test.inner")
        outer.commit()
    assert _audit_count(shop, "test.outer") == 1 and _audit_count(shop, "test.inner") == 1
