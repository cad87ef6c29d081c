"""PostgreSQL row-level security, the second net: raw SQL sees only the bound tenant's rows."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from saas.extensions import db
from tenants.models import Invitation
from tenants.rls import tenant_tables
from tenants.scoping import is_tenant_owned, tenant_bound, tenant_unscoped
from tests.factories import Shop

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgres_only(app: Flask) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")


def add_invitation(shop: Shop, email: str) -> None:
    with shop.bound():
        db.session.add(Invitation(email=email, role="analyst"))
        db.session.commit()


def test_the_app_connects_as_a_role_that_rls_applies_to(app: Flask) -> None:
    row = db.session.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    owner = db.session.execute(
        text("SELECT tableowner = current_user FROM pg_tables WHERE tablename = 'invitations'")
    ).scalar()
    db.session.rollback()
    assert (row.rolsuper, row.rolbypassrls, owner) == (False, False, False)


def test_every_tenant_table_has_rls_forced(app: Flask) -> None:
    with db.engine.connect() as conn:
        tables = set(tenant_tables(conn))
        forced = {
            name
            for (name,) in conn.execute(
                text("SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity")
            )
        }
    expected = {
        t.name for t in db.metadata.sorted_tables if is_tenant_owned(t) and t.name != "alembic_version"
    }
    assert expected <= tables and tables <= forced


def test_raw_select_in_a_tenants_transaction_sees_only_that_tenant(shop: Shop, other_shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    add_invitation(other_shop, "b@x.test")
    with tenant_bound(shop.tenant.id):
        rows = db.session.execute(text("SELECT email FROM invitations")).all()  # no WHERE on purpose
        db.session.rollback()
    assert [r.email for r in rows] == ["a@x.test"]


def test_raw_select_with_no_tenant_set_sees_nothing(shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    rows = db.session.execute(text("SELECT * FROM invitations")).all()
    db.session.rollback()
    assert rows == []


def test_a_row_for_another_tenant_cannot_be_written(shop: Shop, other_shop: Shop) -> None:
    from sqlalchemy.exc import ProgrammingError

    with tenant_bound(shop.tenant.id), pytest.raises(ProgrammingError):
        db.session.execute(
            text(
                "INSERT INTO invitations (tenant_id, id, email, role, created_at) "
                "VALUES (:t, 1, 'x', 'y', now())"
            ),
            {"t": other_shop.tenant.id},
        )
    db.session.rollback()


def test_the_escape_hatch_is_the_only_way_across(shop: Shop, other_shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    add_invitation(other_shop, "b@x.test")
    with tenant_unscoped():
        count = db.session.execute(text("SELECT count(*) FROM invitations")).scalar()
    db.session.rollback()
    assert count == 2


def test_switching_tenants_inside_one_transaction_follows_the_binding(shop: Shop, other_shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    add_invitation(other_shop, "b@x.test")
    with tenant_bound(shop.tenant.id):
        first = db.session.execute(text("SELECT email FROM invitations")).scalars().all()
        with tenant_bound(other_shop.tenant.id):
            second = db.session.execute(text("SELECT email FROM invitations")).scalars().all()
        third = db.session.execute(text("SELECT email FROM invitations")).scalars().all()
    db.session.rollback()
    assert (first, second, third) == (["a@x.test"], ["b@x.test"], ["a@x.test"])
