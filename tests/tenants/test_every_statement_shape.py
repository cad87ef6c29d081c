"""Law 3 over every tenant model and every statement shape: inside tenant B, only B's rows, on both databases.

Each tenant table gets one row of tenant A and one of tenant B, each pointing at its own tenant's parents
(the shapes need rows, not realistic ones). Then, bound to B, every shape a developer might write reads,
counts, joins, nests, inserts from, updates and deletes — and must meet B's row alone. On PostgreSQL the
app role runs them, so row-level security is there too; on SQLite the SQLAlchemy filter stands alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import delete, exists, func, insert, select, true, update
from sqlalchemy.orm import aliased

from quanyi.app import create_app
from saas.extensions import db
from saas.ids import new_id
from tenants.scoping import TenantNotBound, TenantOwned, tenant_bound
from tests.factories import Shop

pytestmark = pytest.mark.postgres


def tenant_models() -> list[type[Any]]:
    """Return every tenant model of every package (the parameters are made at collection, before any app)."""
    create_app({"ENV_NAME": "testing", "DATABASE_URL": "sqlite://"})  # imports every package's models
    return sorted(
        (m.class_ for m in db.Model.registry.mappers if issubclass(m.class_, TenantOwned)),
        key=lambda cls: cls.__tablename__,
    )


def _value(column: sa.Column[Any], tenant_id: int) -> Any:
    if column.name == "tenant_id":
        return tenant_id
    if column.name == "id":
        return new_id()
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.String):  # Text too
        return "x"
    if isinstance(kind, sa.LargeBinary):
        return b"x"
    if isinstance(kind, sa.JSON):
        return {}
    if isinstance(kind, sa.DateTime) or type(kind).__name__ == "UTCDateTime":
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    if isinstance(kind, sa.Date):
        return dt.date(2026, 1, 1)
    raise AssertionError(f"no sample value for {column} of type {kind!r}")


@pytest.fixture
def one_row_each(app: Flask, shop: Shop, other_shop: Shop) -> dict[str, dict[int, int]]:
    """Write one row per tenant table for each shop; return {table: {tenant_id: row id}}.

    Tables are filled parents first, and every foreign key points at the same tenant's parent row.
    """
    ids: dict[str, dict[int, int]] = {}
    owners = {shop.tenant.id: shop.owner.id, other_shop.tenant.id: other_shop.owner.id}
    models = {model.__table__.name: model for model in tenant_models()}
    for table in db.metadata.sorted_tables:
        if table.name not in models:
            continue
        for tenant_id, user_id in owners.items():
            row = {c.name: _value(c, tenant_id) for c in table.c}
            for constraint in table.foreign_key_constraints:
                for element in constraint.elements:
                    parent = element.column.table.name
                    if element.parent.name == "tenant_id":
                        continue
                    if parent == "users":
                        row[element.parent.name] = user_id
                    else:  # None where the parent comes later (a cycle, or the table itself)
                        row[element.parent.name] = ids.get(parent, {}).get(tenant_id)
            with tenant_bound(tenant_id):
                db.session.execute(insert(table).values(row))
            ids.setdefault(table.name, {})[tenant_id] = row["id"]
    db.session.commit()
    return ids


def _shapes(model: type[Any], theirs: int) -> Iterator[tuple[str, Any, Callable[[Any], Any]]]:
    """Yield (shape, statement, how to read its answer as B's tenant ids or a count) for one model."""
    table = model.__table__
    other = aliased(model)
    core_alias = table.alias("another")
    yield "ORM entity", select(model), lambda r: {m.tenant_id for m in r.scalars()}
    yield "count, entity only in select_from", select(func.count()).select_from(model), _scalar
    yield "count, table named only in WHERE", select(func.count()).where(model.id.is_not(None)), _scalar
    yield "Core table", select(table.c.tenant_id), _tenants
    yield "Core count", select(func.count()).select_from(table), _scalar
    yield "ORM join", select(model.tenant_id, other.tenant_id).join(other, true()), _pairs
    yield "ORM outer join", select(model.tenant_id, other.tenant_id).outerjoin(other, true()), _pairs
    yield (
        "Core outer join",
        select(table.c.tenant_id, core_alias.c.tenant_id).select_from(table.outerjoin(core_alias, true())),
        _pairs,
    )
    yield "subquery", select(func.count()).select_from(select(model.id).subquery()), _scalar
    yield "Core subquery", select(func.count()).select_from(select(table.c.id).subquery()), _scalar
    yield "scalar subquery", select(select(func.count()).select_from(table).scalar_subquery()), _scalar
    yield "EXISTS for the other tenant", select(exists().where(model.tenant_id == theirs)), _exists_as_count
    yield "IN (subquery)", select(func.count()).where(table.c.id.in_(select(other.id))), _scalar
    cte = select(table.c.tenant_id).cte("theirs_too")
    yield "CTE", select(cte.c.tenant_id), _tenants
    yield "UNION ALL", select(table.c.tenant_id).union_all(select(model.tenant_id)), _tenants_twice


def _scalar(result: Any) -> int:
    return int(result.scalar_one())


def _exists_as_count(result: Any) -> int:
    return 2 if result.scalar_one() else 1  # "found the other tenant's row" reads as a second row


def _tenants(result: Any) -> set[int]:
    return {row[0] for row in result}


def _tenants_twice(result: Any) -> set[int]:
    rows = result.all()
    assert len(rows) == 2
    return {row[0] for row in rows}


def _pairs(result: Any) -> set[int]:
    rows = result.all()
    assert len(rows) == 1, rows
    return set(rows[0])


def test_every_model_has_sample_rows(one_row_each: dict[str, dict[int, int]]) -> None:
    assert len(one_row_each) == len(tenant_models()) >= 40


@pytest.mark.parametrize("model", tenant_models(), ids=lambda m: m.__tablename__)
def test_every_statement_shape_meets_only_the_bound_tenant(
    model: type[Any], one_row_each: dict[str, dict[int, int]], shop: Shop, other_shop: Shop
) -> None:
    table = model.__table__
    ours, theirs = other_shop.tenant.id, shop.tenant.id
    their_row = one_row_each[table.name][theirs]
    scratch = sa.Table(
        "scratch_tenants", sa.MetaData(), sa.Column("tenant_id", sa.BigInteger), prefixes=["TEMPORARY"]
    )
    leaks = []
    with tenant_bound(ours):
        for shape, statement, read in _shapes(model, theirs):
            answer = read(db.session.execute(statement))
            if answer not in ({ours}, 1):
                leaks.append(f"{shape}: {answer}")
        scratch.create(db.session.connection())
        db.session.execute(insert(scratch).from_select(["tenant_id"], select(table.c.tenant_id)))
        copied = set(db.session.scalars(select(scratch.c.tenant_id)))
        touched = {
            "Core UPDATE": db.session.execute(update(table).values({table.c.id: table.c.id})).rowcount,
            "ORM UPDATE": db.session.execute(
                update(model).values(id=model.id).execution_options(synchronize_session=False)
            ).rowcount,
            "Core DELETE of their row": db.session.execute(
                delete(table).where(table.c.id == their_row)
            ).rowcount,
            "ORM DELETE of their row": db.session.execute(
                delete(model).where(model.id == their_row).execution_options(synchronize_session=False)
            ).rowcount,
        }
        db.session.rollback()
    assert leaks == [], f"{table.name} leaked across tenants"
    assert (copied, touched) == (
        {ours},
        {"Core UPDATE": 1, "ORM UPDATE": 1, "Core DELETE of their row": 0, "ORM DELETE of their row": 0},
    )


def test_update_from_another_tenant_table_reads_only_the_bound_tenant(
    one_row_each: dict[str, dict[int, int]], shop: Shop, other_shop: Shop
) -> None:
    from catalog.models import Bundle, Right

    with tenant_bound(other_shop.tenant.id):
        changed = db.session.execute(
            update(Bundle)
            .values(name=Right.name)
            .where(Right.tenant_id != Bundle.tenant_id)  # another tenant's right, if it could be seen
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.rollback()
    assert changed == 0


def test_a_statement_run_with_no_tenant_bound_is_refused_naming_the_table(
    one_row_each: dict[str, dict[int, int]],
) -> None:
    from catalog.models import Bundle

    refusal = "table 'bundles' was used with no tenant bound"
    with pytest.raises(sa.exc.StatementError, match=refusal) as raised:
        db.session.execute(select(func.count()).select_from(Bundle.__table__))
    db.session.rollback()
    assert isinstance(raised.value.orig, TenantNotBound)
    with pytest.raises(sa.exc.StatementError, match=refusal):
        db.session.execute(select(func.count()).select_from(Bundle))
    db.session.rollback()
    with pytest.raises(TenantNotBound):  # an ORM read of a tenant model says so before any SQL
        db.session.execute(select(Bundle))
    db.session.rollback()


def test_a_new_shops_checklist_shows_nothing_done_while_another_shop_did_everything(
    one_row_each: dict[str, dict[int, int]], shop: Shop
) -> None:
    from tenants.checklist import checklist_status
    from tenants.services import sign_up

    newcomer, _owner = sign_up("New Shop", "newcomer", "owner@newcomer.test", "New", "correct-horse-battery")
    with shop.bound():
        theirs = {item.key: done for item, done in checklist_status()}
    with tenant_bound(newcomer.id):
        ours = {item.key: done for item, done in checklist_status()}
    db.session.rollback()
    assert set(theirs.values()) == {True}
    assert ours == dict.fromkeys(theirs, False)
