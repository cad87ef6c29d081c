"""PostgreSQL row-level security: the second net behind the ORM scoping (DESIGN law 6).

Every table with a `tenant_id` column, other than the global ones, gets RLS enabled and forced, and one
policy: a row is visible and writable only when its tenant is the transaction's `app.tenant_id`, or inside
the greppable `tenant_unscoped()` escape (`app.unscoped = 'on'`). The settings are kept current by
`tenants.scoping`. The app must connect as a role that neither owns the tables nor has BYPASSRLS.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from tenants.scoping import GLOBAL_TABLES

POLICY_NAME = "tenant_isolation"
POLICY_PREDICATE = (
    "tenant_id = nullif(current_setting('app.tenant_id', true), '')::bigint "
    "OR current_setting('app.unscoped', true) = 'on'"
)


def tenant_tables(connection: Connection) -> list[str]:
    """Return the tables of the current schema that have a tenant_id column and are not global."""
    rows = connection.execute(
        text(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'tenant_id' ORDER BY table_name"
        )
    )
    return [name for (name,) in rows if name not in GLOBAL_TABLES]


def apply_row_level_security(connection: Connection, app_role: str | None = None) -> list[str]:
    """Enable and force RLS with the tenant policy on every tenant table; grant `app_role` DML on all.

    Idempotent: run after every migration (migrations/env.py does).
    """
    tables = tenant_tables(connection)
    for table in tables:
        connection.execute(text(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY'))
        connection.execute(text(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY'))
        connection.execute(text(f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}"'))
        connection.execute(
            text(
                f'CREATE POLICY {POLICY_NAME} ON "{table}" '
                f"USING ({POLICY_PREDICATE}) WITH CHECK ({POLICY_PREDICATE})"
            )
        )
    if app_role:
        connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{app_role}"'))
        connection.execute(
            text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{app_role}"')
        )
    return tables


def ensure_app_role(connection: Connection, role: str) -> None:
    """Create the app's login role if missing: not superuser, no BYPASSRLS, owns nothing."""
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
    if not exists:
        connection.execute(
            text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE')
        )
