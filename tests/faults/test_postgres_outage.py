"""PostgreSQL drops the app's connections (a failover, a restart): the next request still succeeds."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from saas.config import sqlalchemy_url
from saas.extensions import db
from tests.conftest import postgres_url
from tests.factories import Shop, login
from tests.faults.conftest import require_services
from tests.integrations import factories as f
from tests.integrations.test_inbox_reliability import connected, fulfilled


def terminate_app_connections(app: Flask) -> int:
    """As the superuser, end every backend of this test's database (and only of it); return how many."""
    database = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
    admin = sa.create_engine(sqlalchemy_url(postgres_url() or ""), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :database AND pid <> pg_backend_pid()"
                    ),
                    {"database": database},
                ).all()
            )
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_after_the_connections_are_terminated_the_next_requests_succeed(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    require_services()
    channel_id, public_id = connected(shop)
    login(client, shop.owner)
    assert client.get("/t/acme/orders/").status_code == 200
    # The webhook endpoint stores through the pool like every request: its connection will die too.
    assert f.shopify(f.shopify_order(9399)).post(client, f"/hooks/{public_id}").status_code == 200
    db.session.commit()  # the test's own connection goes back to the pool, where it will die too
    assert terminate_app_connections(app) >= 2

    assert client.get("/t/acme/orders/").status_code == 200  # a read, on a fresh connection
    answer = f.shopify(f.shopify_order(9400)).post(client, f"/hooks/{public_id}")  # and a write
    assert answer.status_code == 200
    assert fulfilled(shop, channel_id) == ["9399", "9400"]
