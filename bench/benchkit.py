"""Shared set-up of the benchmarks: the app on a throwaway PostgreSQL database, as its non-owner role."""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MASTER_KEY = "YmVuY2gtbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE="  # b"bench-master-key-32-bytes-long!!"
APP_ROLE = "quanyi_bench_app"


def peak_rss_mb() -> int:
    """Return this process's peak resident set size so far, in MB (Linux reports KB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def make_app(database_url: str) -> Any:
    from quanyi.app import create_app

    os.environ.setdefault("QUANYI_INSTANCE_PATH", str(OUT / "instance"))
    return create_app(
        {
            "ENV_NAME": "development",
            "DATABASE_URL": database_url,
            "QUANYI_MASTER_KEY": MASTER_KEY,
            "SECRET_KEY": "bench",
            "JOBS_MODE": "inline",
            "PERIODIC_JOBS_ENABLED": False,
            "MAIL_DIR": str(OUT / "mail"),
            "FILES_DIR": str(OUT / "files"),
        }
    )


def ensure_postgres_database(url: str) -> None:
    """Create the benchmark database if it does not exist yet."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    admin = sa.create_engine(
        target.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database})
        if exists.scalar() is None:
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def fresh_schema(owner_url: str) -> str:
    """Recreate the schema as the owner with row-level security; return the app role's URL."""
    import sqlalchemy as sa

    from saas.extensions import db
    from tenants.rls import apply_row_level_security, ensure_app_role

    with make_app(owner_url).app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        db.create_all()
        with db.engine.begin() as conn:
            ensure_app_role(conn, APP_ROLE)
            apply_row_level_security(conn, APP_ROLE)
        db.engine.dispose()
    return str(sa.engine.make_url(owner_url).set(username=APP_ROLE, password=None).render_as_string(False))
