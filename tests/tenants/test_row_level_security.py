"""PostgreSQL row-level security, the second net: raw SQL sees only the bound tenant's rows."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from saas.extensions import db
from tenants import rls, services
from tenants.models import Invitation
from tenants.rls import tenant_tables
from tenants.roles import Role
from tenants.scoping import is_tenant_owned, tenant_bound, tenant_unscoped, user_bound
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


TRICKS = [
    "SET app.unscoped = 'on'",
    "SET LOCAL app.unscoped = 'on'",
    "SELECT set_config('app.unscoped', 'on', false)",
    "SELECT set_config('app.tenant_id', '', true)",
    "RESET ROLE",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "SET row_security = off",
    "ALTER TABLE invitations DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE invitations NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY tenant_isolation ON invitations",
    "CREATE POLICY everything ON invitations USING (true)",
    "ALTER ROLE CURRENT_USER BYPASSRLS",
    "CREATE FUNCTION public.current_setting(text, boolean) RETURNS text LANGUAGE sql AS $$ SELECT 'on' $$",
]


@pytest.mark.parametrize("trick", TRICKS)
def test_the_app_role_cannot_widen_its_own_view(trick: str, shop: Shop, other_shop: Shop) -> None:
    add_invitation(shop, "a@x.test")
    add_invitation(other_shop, "b@x.test")
    with tenant_bound(shop.tenant.id):
        try:
            with db.session.begin_nested():
                db.session.execute(text(trick))
                seen = db.session.execute(text("SELECT email FROM invitations")).scalars().all()
        except DBAPIError:
            seen = ["refused"]
        db.session.rollback()
    assert "b@x.test" not in seen
    with tenant_unscoped():  # the owner's escape is no escape for the app role
        unscoped = db.session.execute(text("SELECT count(*) FROM invitations")).scalar()
    db.session.rollback()
    assert unscoped == 0


def test_memberships_show_a_user_their_own_and_the_bound_tenants(shop: Shop, other_shop: Shop) -> None:
    members = "SELECT tenant_id, user_id FROM memberships"
    with user_bound(shop.owner.id):
        own = set(db.session.execute(text(members)).all())
    with tenant_bound(other_shop.tenant.id):
        bound = {tenant for tenant, _user in db.session.execute(text(members))}
    nothing = db.session.execute(text(members)).all()
    db.session.rollback()
    assert own == {(shop.tenant.id, shop.owner.id)}
    assert bound == {other_shop.tenant.id}
    assert nothing == []


def test_a_membership_cannot_be_added_to_a_tenant_not_bound(shop: Shop, other_shop: Shop) -> None:
    with user_bound(shop.owner.id), pytest.raises(DBAPIError):  # joining a tenant takes its binding
        db.session.execute(
            text(
                "INSERT INTO memberships (tenant_id, user_id, role, created_at) "
                "VALUES (:t, :u, 'owner', now())"
            ),
            {"t": other_shop.tenant.id, "u": shop.owner.id},
        )
    db.session.rollback()


def test_the_narrow_paths_answer_ids_only_and_run_with_a_fixed_search_path(app: Flask, shop: Shop) -> None:
    with shop.bound():
        _key, secret = services.create_api_key(Role.OWNER, "k", [])
    prefix = secret.split("_")[1]
    assert rls.api_key_tenants(prefix) == [shop.tenant.id]
    assert rls.api_key_tenants("nope") == []
    settings = dict(
        db.session.execute(
            text("SELECT proname, array_to_string(proconfig, ',') FROM pg_proc WHERE proname LIKE 'quanyi_%'")
        ).all()
    )
    db.session.rollback()
    assert set(settings) == set(rls.NARROW_FUNCTIONS)
    assert all("search_path=pg_catalog, pg_temp" in config for config in settings.values())


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
