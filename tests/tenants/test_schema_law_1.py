"""Tenancy law 1, checked on every table in the metadata so new tables cannot break it."""

from __future__ import annotations

from sqlalchemy import Table

from saas.extensions import db
from tenants.scoping import GLOBAL_TABLES, is_tenant_owned


def tenant_owned_tables() -> list[Table]:
    return [table for table in db.metadata.sorted_tables if is_tenant_owned(table)]


def test_the_global_tables_are_few_and_named_in_one_place() -> None:
    assert {t.name for t in db.metadata.sorted_tables} - {
        t.name for t in tenant_owned_tables()
    } <= GLOBAL_TABLES
    assert {"tenants", "users", "memberships"} <= GLOBAL_TABLES


def test_every_tenant_owned_table_has_a_non_null_tenant_id() -> None:
    for table in tenant_owned_tables():
        assert "tenant_id" in table.c, f"{table.name} has no tenant_id"
        assert not table.c.tenant_id.nullable, f"{table.name}.tenant_id is nullable"


def test_every_tenant_owned_primary_key_starts_with_tenant_id() -> None:
    for table in tenant_owned_tables():
        columns = [c.name for c in table.primary_key.columns]
        assert columns[0] == "tenant_id" and len(columns) >= 2, f"{table.name} primary key is {columns}"


def test_foreign_keys_between_tenant_tables_include_tenant_id() -> None:
    for table in tenant_owned_tables():
        for fk in table.foreign_key_constraints:
            target = fk.referred_table
            if not is_tenant_owned(target):
                continue
            pairs = {(e.parent.name, e.column.name) for e in fk.elements}
            assert ("tenant_id", "tenant_id") in pairs, (
                f"{table.name} -> {target.name} foreign key {sorted(pairs)} does not include tenant_id"
            )


def test_unique_constraints_on_tenant_tables_include_tenant_id() -> None:
    for table in tenant_owned_tables():
        for constraint in table.constraints:
            if constraint.__class__.__name__ == "UniqueConstraint":
                names = [c.name for c in constraint.columns]
                assert "tenant_id" in names, f"{table.name} unique {names} lacks tenant_id"
        for index in table.indexes:
            if index.unique:
                names = [c.name for c in index.columns]
                assert "tenant_id" in names, f"{table.name} unique index {names} lacks tenant_id"


def test_ids_are_generated_by_the_application_not_by_sequences() -> None:
    for table in tenant_owned_tables():
        assert table.c.id.autoincrement in (False, "auto") and table.c.id.default is not None, table.name
