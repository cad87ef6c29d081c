"""PostgreSQL row-level security: the second net behind the ORM scoping (DESIGN law 6).

Every table with a `tenant_id` column, other than the global ones, gets RLS enabled and forced, and a
policy: a row is visible and writable only when its tenant is the transaction's `app.tenant_id`. The app
role can set that to one tenant at a time (it serves them all), but nothing it can send widens its view to
several: there is no "see everything" setting for it. `memberships` is under RLS too: a user's own
memberships (`app.user_id`, to log in and switch tenants) and the bound tenant's.

The few reads that are cross-tenant by nature go through narrow `SECURITY DEFINER` functions owned by the
table owner, each returning only what its caller needs (`api_key_tenants`, `channel_owner`); the app role
may execute them and nothing else of the kind. The table owner (migrations, `quanyi db upgrade`) sees every
row only inside `tenant_unscoped()` (`app.unscoped = 'on'`), a setting the policies heed for the owner
alone. The app must connect as a role that neither owns the tables nor has BYPASSRLS.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from saas.extensions import db
from tenants.scoping import GLOBAL_TABLES

POLICY_NAME = "tenant_isolation"
OWNER_POLICY_NAME = "owner_unscoped"
TENANT_PREDICATE = "tenant_id = nullif(current_setting('app.tenant_id', true), '')::bigint"
USER_PREDICATE = "user_id = nullif(current_setting('app.user_id', true), '')::bigint"
OWNER_PREDICATE = "current_setting('app.unscoped', true) = 'on'"
MEMBERSHIPS = "memberships"
_OLD_POLICIES = ("tenant_isolation", "owner_unscoped", "own_memberships")

# The narrow paths across tenants: (signature, result, body). Each runs as the table owner with a fixed
# search_path (nothing the caller put in a schema can stand in for what it names) and returns only ids.
NARROW_FUNCTIONS: dict[str, tuple[str, str, str]] = {
    "quanyi_api_key_tenants": (
        "key_prefix text",
        "SETOF bigint",
        "SELECT k.tenant_id FROM {schema}.api_keys k WHERE k.prefix = key_prefix",
    ),
    "quanyi_channel_owner": (
        "channel_public_id text",
        "TABLE(tenant_id bigint, id bigint)",
        "SELECT c.tenant_id, c.id FROM {schema}.channels c WHERE c.public_id = channel_public_id LIMIT 1",
    ),
}


def tenant_tables(connection: Connection) -> list[str]:
    """Return the tables of the current schema that have a tenant_id column and are not global."""
    rows = connection.execute(
        text(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'tenant_id' ORDER BY table_name"
        )
    )
    return [name for (name,) in rows if name not in GLOBAL_TABLES]


def _owner_of(connection: Connection, table: str) -> str:
    owner = connection.execute(
        text("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = :t"),
        {"t": table},
    ).scalar_one()
    return str(owner)


def _policies(connection: Connection, table: str, *, tenant: str, select_also: str | None = None) -> None:
    connection.execute(text(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY'))
    connection.execute(text(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY'))
    for name in _OLD_POLICIES:
        connection.execute(text(f'DROP POLICY IF EXISTS {name} ON "{table}"'))
    connection.execute(
        text(f'CREATE POLICY {POLICY_NAME} ON "{table}" USING ({tenant}) WITH CHECK ({tenant})')
    )
    if select_also:
        connection.execute(
            text(f'CREATE POLICY own_memberships ON "{table}" FOR SELECT USING ({select_also})')
        )
    owner = _owner_of(connection, table)
    connection.execute(
        text(
            f'CREATE POLICY {OWNER_POLICY_NAME} ON "{table}" TO "{owner}" '
            f"USING ({OWNER_PREDICATE}) WITH CHECK ({OWNER_PREDICATE})"
        )
    )


def apply_row_level_security(connection: Connection, app_role: str | None = None) -> list[str]:
    """Enable and force RLS on every tenant table and on memberships; create the narrow functions.

    Grants `app_role` DML on every table and EXECUTE on the narrow functions only. Idempotent: run after
    every migration (migrations/env.py does), as the tables' owner.
    """
    tables = tenant_tables(connection)
    for table in tables:
        _policies(connection, table, tenant=TENANT_PREDICATE)
    _policies(connection, MEMBERSHIPS, tenant=TENANT_PREDICATE, select_also=USER_PREDICATE)
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    for name, (args, result, body) in NARROW_FUNCTIONS.items():
        connection.execute(
            text(
                f"CREATE OR REPLACE FUNCTION {name}({args}) RETURNS {result} "
                "LANGUAGE sql STABLE SECURITY DEFINER "
                "SET search_path = pg_catalog, pg_temp SET app.unscoped = 'on' "
                f"AS $fn$ {body.format(schema=schema)} $fn$"
            )
        )
        connection.execute(text(f"REVOKE ALL ON FUNCTION {name}({args.split()[1]}) FROM PUBLIC"))
    if app_role:
        connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{app_role}"'))
        connection.execute(
            text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{app_role}"')
        )
        for name, (args, _result, _body) in NARROW_FUNCTIONS.items():
            connection.execute(text(f'GRANT EXECUTE ON FUNCTION {name}({args.split()[1]}) TO "{app_role}"'))
    return tables


def ensure_app_role(connection: Connection, role: str) -> None:
    """Create the app's login role if missing: not superuser, no BYPASSRLS, owns nothing."""
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
    if not exists:
        connection.execute(
            text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE')
        )


# ---------------------------------------------------------------- the narrow paths across tenants
# The only reads that start with no tenant bound. SQLite has no RLS to pass, so there the same query
# runs as raw SQL; on PostgreSQL it is the owner's function, the one door the app role has.


def api_key_tenants(prefix: str) -> list[int]:
    """Return the tenants holding an API key with this public prefix (to bind each and check the key)."""
    if db.session.get_bind().dialect.name == "postgresql":
        sql = "SELECT t FROM quanyi_api_key_tenants(:prefix) AS t"
    else:
        sql = "SELECT tenant_id FROM api_keys WHERE prefix = :prefix"
    return [int(t) for t in db.session.scalars(text(sql), {"prefix": prefix})]


def channel_owner(public_id: str) -> tuple[int, int] | None:
    """Return (tenant id, channel id) of the channel with this public id (a webhook's only clue)."""
    if db.session.get_bind().dialect.name == "postgresql":
        sql = "SELECT tenant_id, id FROM quanyi_channel_owner(:public_id)"
    else:
        sql = "SELECT tenant_id, id FROM channels WHERE public_id = :public_id LIMIT 1"
    row = db.session.execute(text(sql), {"public_id": public_id}).first()
    return None if row is None else (int(row[0]), int(row[1]))
