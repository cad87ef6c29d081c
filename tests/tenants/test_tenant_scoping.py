"""Tenancy laws 3 and 4: ORM reads are scoped automatically; raw SQL goes through one helper."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from saas.extensions import db
from tenants.models import AuditEvent, Invitation
from tenants.scoping import TenantNotBound, tenant_query, tenant_sql, tenant_unscoped
from tests.factories import Shop


def add_invitation(shop: Shop, email: str) -> None:
    with shop.bound():
        db.session.add(Invitation(email=email, role="analyst"))
        db.session.commit()


def test_reads_see_only_the_bound_tenant(shop: Shop, other_shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    add_invitation(other_shop, "b@x.test")
    with shop.bound():
        assert [i.email for i in db.session.scalars(select(Invitation))] == ["a@x.test"]
    with other_shop.bound():
        assert [i.email for i in db.session.scalars(select(Invitation))] == ["b@x.test"]


def test_a_read_without_a_bound_tenant_raises(shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    with pytest.raises(TenantNotBound):
        db.session.scalars(select(Invitation)).all()


def test_bulk_updates_touch_only_the_bound_tenant(shop: Shop, other_shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    add_invitation(other_shop, "b@x.test")
    with shop.bound():
        db.session.execute(update(Invitation).values(role="support"))
        db.session.commit()
    roles = {}
    for each in (shop, other_shop):
        with each.bound():
            roles |= {i.email: i.role for i in db.session.scalars(select(Invitation))}
    assert roles == {"a@x.test": "support", "b@x.test": "analyst"}


def test_the_owners_escape_lifts_no_filter_in_app_code(shop: Shop, other_shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    add_invitation(other_shop, "b@x.test")
    with tenant_unscoped(), pytest.raises(TenantNotBound):
        db.session.scalars(select(Invitation)).all()
    db.session.rollback()
    with tenant_unscoped(), shop.bound():
        assert [i.email for i in db.session.scalars(select(Invitation))] == ["a@x.test"]


def test_raw_sql_must_filter_on_the_tenant(shop: Shop, other_shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    add_invitation(other_shop, "b@x.test")
    with pytest.raises(ValueError), shop.bound():
        tenant_sql("SELECT email FROM invitations")
    with shop.bound():
        rows = tenant_query("SELECT email FROM invitations WHERE tenant_id = :tenant_id").all()
    assert [r.email for r in rows] == ["a@x.test"]


def test_new_rows_belong_to_the_bound_tenant(shop: Shop) -> None:
    with shop.bound():
        event = AuditEvent(actor="t", action="x")
    assert event.tenant_id == shop.tenant.id
    with pytest.raises(TenantNotBound):
        AuditEvent(actor="t", action="x")
