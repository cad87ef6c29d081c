"""Migrations: one head, an empty database upgrades to it, and the result matches the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import upgrade

from quanyi.app import create_app
from saas.app import MIGRATIONS_DIR
from saas.extensions import db
from tests.conftest import prepare_schema


@pytest.fixture
def empty_app(app_config: dict[str, Any], tmp_path: Path) -> Flask:
    """An app on a database that has never been created (SQLite) or emptied of all tables (PostgreSQL)."""
    config = dict(app_config)
    if config["DATABASE_URL"].startswith("sqlite"):
        config["DATABASE_URL"] = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    else:
        config["DATABASE_URL"] = config["TEST_OWNER_DATABASE_URL"]  # migrations run as the owner
    return create_app(config)


def _drop_everything() -> None:
    db.drop_all()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


def test_there_is_exactly_one_head() -> None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert len(script.get_heads()) == 1, script.get_heads()


def test_an_empty_database_upgrades_to_exactly_the_models(empty_app: Flask) -> None:
    with empty_app.app_context():
        if db.engine.dialect.name != "sqlite":
            _drop_everything()
        upgrade(directory=str(MIGRATIONS_DIR))
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            differences = compare_metadata(context, db.metadata)
            migrated_security = _row_level_security(conn)
        if db.engine.dialect.name != "sqlite":
            _drop_everything()
            db.engine.dispose()
            prepare_schema(
                empty_app.config["DATABASE_URL"]
            )  # leave the worker's database as the others expect
            with db.engine.connect() as conn:
                assert _row_level_security(conn) == migrated_security, "the tests' schema differs in its RLS"
            assert migrated_security["functions"], "quanyi db upgrade made no narrow functions"
    assert differences == [], f"models and migrations differ: {differences}"


def _row_level_security(conn: Any) -> dict[str, set[tuple[Any, ...]]]:
    """Return the policies, forced tables and narrow functions of a PostgreSQL schema (empty on SQLite)."""
    if conn.dialect.name == "sqlite":
        return {}
    queries = {
        "policies": "SELECT tablename, policyname, cmd, qual, with_check FROM pg_policies",
        "forced": "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity",
        "functions": "SELECT proname, prosecdef, array_to_string(proconfig, ',') FROM pg_proc "
        "WHERE proname LIKE 'quanyi\\_%'",
    }
    return {name: {tuple(row) for row in conn.execute(sa.text(sql))} for name, sql in queries.items()}
