"""Fixtures: an app with its own database per test, a client, factories that know the tenant.

By default each test gets a fresh SQLite file. With TEST_DATABASE_URL set, the suite runs on PostgreSQL:
each test worker creates its own database once, and tables are emptied after every test.

Factories, one layer per package, each called with a tenant bound (`with shop.bound():`); the `*_row()`
functions write plain rows (no audit) for the route-isolation walk (`tests/url_objects.py`):

- `tests/factories.py`: tenants and users (`Shop`, `make_shop`, `make_user`, `login`), the mail folder.
- `tests/catalog/factories.py`: rights, bundles and plans through the catalog services, card keys through
  the real import path.
- `tests/orders/factories.py`: sellable products and card keys written directly, orders through the
  orders services, an order's grants (`grants_of`, the one reader every package's tests use).
- `tests/subscriptions/factories.py`, `tests/risk/factories.py`: subscriptions and renewals; risk rows.
- `tests/integrations/factories.py`: channels, SKU mappings, signed deliveries as each platform sends them
  (`tests/integrations/cn_platforms.py`: WeChat Pay, Alipay and Youzan keys and notifications).
- `tests/reports/dashboard_fixtures.py` (sales, redemptions, spend, rollups), `tests/reports/books.py` (a
  tenant's January books known by construction), `tests/reports/reconciliation_factories.py` (rows).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from quanyi.app import create_app
from saas.config import sqlalchemy_url
from saas.extensions import db
from tenants.rls import apply_row_level_security, ensure_app_role
from tests import factories

REQUIRE_SERVICES = os.environ.get("QUANYI_REQUIRE_SERVICES") == "1"


def postgres_url() -> str | None:
    """The PostgreSQL server for this run, if any (CI sets it and requires it)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if REQUIRE_SERVICES and not url:
        pytest.fail("QUANYI_REQUIRE_SERVICES=1 but TEST_DATABASE_URL is not set")
    return url


def redis_url() -> str | None:
    """The Redis server for this run, if any."""
    url = os.environ.get("TEST_REDIS_URL")
    if REQUIRE_SERVICES and not url:
        pytest.fail("QUANYI_REQUIRE_SERVICES=1 but TEST_REDIS_URL is not set")
    return url


def jobs_through_test_redis(app: Flask) -> str:
    """Run the app's jobs through RQ on the test Redis, as in production; return its URL (or skip)."""
    from saas import jobs

    url = redis_url()
    if not url:
        pytest.skip("TEST_REDIS_URL not set")
    app.config.update(JOBS_MODE="rq", REDIS_URL=url)
    app.extensions.pop("quanyi.redis", None)
    jobs.init_app(app)
    return url


def _with_database(url: str, name: str) -> str:
    return str(
        sa.engine.make_url(sqlalchemy_url(url)).set(database=name).render_as_string(hide_password=False)
    )


APP_ROLE = "quanyi_test_app"  # the app's own login role: owns nothing, no BYPASSRLS (kept between runs)


@dataclass(frozen=True)
class PostgresDatabase:
    owner_url: str  # the tables' owner: creates, migrates, truncates
    app_url: str  # what the app connects as, so row-level security applies to it


def prepare_schema(owner_url: str) -> None:
    """Create every table as the owner, then row-level security and the app role's grants."""
    create_app({"ENV_NAME": "testing", "DATABASE_URL": owner_url})  # imports every package's models
    engine = sa.create_engine(sqlalchemy_url(owner_url))
    try:
        db.metadata.create_all(engine)
        with engine.begin() as conn:
            apply_row_level_security(conn, APP_ROLE)
    finally:
        engine.dispose()


@pytest.fixture
def on_postgres(app: Flask) -> None:
    """Skip a test that only means something on PostgreSQL (fail when the services are required)."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return
    if REQUIRE_SERVICES:
        pytest.fail("QUANYI_REQUIRE_SERVICES=1 but the tests do not run on PostgreSQL (TEST_DATABASE_URL)")
    pytest.skip("TEST_DATABASE_URL not set: a PostgreSQL-only test skipped")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase | None]:
    """Create this worker's PostgreSQL database for the session and drop it afterwards."""
    url = postgres_url()
    if not url:
        yield None
        return
    name = f"quanyi_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(_with_database(url, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        with contextlib.suppress(sa.exc.IntegrityError):  # another worker created it at the same moment
            ensure_app_role(conn, APP_ROLE)
    owner_url = _with_database(url, name)
    app_url = str(sa.engine.make_url(owner_url).set(username=APP_ROLE, password=None).render_as_string(False))
    prepare_schema(owner_url)
    try:
        yield PostgresDatabase(owner_url, app_url)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_all_tables(owner_url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    db.session.remove()
    db.engine.dispose()
    engine = sa.create_engine(sqlalchemy_url(owner_url))
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()


@pytest.fixture
def app_config(tmp_path: Path, postgres_database: PostgresDatabase | None) -> dict[str, Any]:
    """Settings of the test app; tests may add to it before `app` is created."""
    config: dict[str, Any] = {
        "ENV_NAME": "testing",
        "MAIL_DIR": str(tmp_path / "mail"),
        "FILES_DIR": str(tmp_path / "files"),
        "DATABASE_URL": postgres_database.app_url
        if postgres_database
        else f"sqlite:///{tmp_path / 'test.sqlite3'}",
    }
    if postgres_database:
        config["TEST_OWNER_DATABASE_URL"] = postgres_database.owner_url
    return config


@pytest.fixture
def app(app_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("QUANYI_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(app_config)
    app.test_client_class = RequestClient
    with app.app_context():
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            db.create_all()
        yield app
        if app.config.get("TEST_OWNER_DATABASE_URL"):
            _empty_all_tables(app.config["TEST_OWNER_DATABASE_URL"])
        db.session.remove()
        db.engine.dispose()


class RequestClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    The test itself holds an app context (and a database session); without this, `g` and the session
    would leak from one request into the next and hide bugs.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        app = self.application
        db.session.commit()  # the test's own writes become visible to the request
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Accept-Language", "en")  # the specification reads in English; zh has its tests
        with app.app_context():
            response = super().open(*args, headers=headers, **kwargs)
        db.session.expire_all()  # and the request's writes become visible to the test
        return response


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def outbox(app: Flask) -> factories.Outbox:
    """The mails the app has written (the embedded mail folder)."""
    return factories.Outbox(Path(app.config["MAIL_DIR"]))


@pytest.fixture
def shop(app: Flask) -> factories.Shop:
    """A tenant with one member of each role."""
    return factories.make_shop("acme")


@pytest.fixture
def other_shop(app: Flask) -> factories.Shop:
    """A second tenant, to prove isolation."""
    return factories.make_shop("rival")
