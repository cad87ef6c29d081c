"""Builders for dashboard tests: sales, deliveries, redemptions and refunds at chosen moments, through the
real order services (time frozen at each moment), then the rollups refreshed as the periodic job would.

Call them with the tenant bound (`with shop.bound():`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from catalog.models import Right
from integrations.models import Channel, ChannelSpend
from orders import redemption, refunds
from orders.models import Grant, Order
from reports import rollups
from saas.extensions import db
from saas.timeutil import frozen_time
from tests.orders.factories import Product, add_keys, grants_of, make_product, make_right, place_order

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
_serial = itertools.count(1)


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """A wall-clock moment in Shanghai (the tenants' default zone)."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def card_key_product(name: str, *, price: int, keys: int = 50, unit_cost: int = 800) -> Product:
    """A bundle of one card-key right whose keys cost `unit_cost` each."""
    right = make_right(name, "card_key")
    add_keys(right, keys, prefix=name[:3].upper() + str(next(_serial)), unit_cost=unit_cost)
    return make_product(right, price=price)


def code_product(name: str, *, price: int, unit_cost: int) -> Product:
    """A bundle of one generated-code right with a default unit cost."""
    return make_product(make_right(name, "code", unit_cost=unit_cost), price=price)


def sell(product: Product, when: dt.datetime, *, channel: str = "shop", quantity: int = 1) -> Order:
    """Sell and pay one order at `when` (its grants are delivered at that moment)."""
    with frozen_time(when):
        return place_order(product, f"O-{next(_serial)}", paid=True, channel=channel, quantity=quantity)


def redeem(grant: Grant | int, when: dt.datetime) -> None:
    """The customer redeems a grant at `when`."""
    grant_id = grant if isinstance(grant, int) else grant.id
    with frozen_time(when):
        outcome = redemption.redeem_grant(grant_id, source="back_office", actor="test")
    assert outcome.accepted, outcome


def refund(order: Order, when: dt.datetime, amount: int | None = None) -> None:
    """Refund the whole order (or `amount` of it) at `when`."""
    with frozen_time(when):
        refunds.refund(refunds.RefundRequest(order.id, reason="customer asked", amount=amount))


def connect_channel(public_id: str, name: str, *, fee_percent_bp: int = 0, fee_fixed: int = 0) -> Channel:
    """A connected channel whose orders carry `public_id`, with its fees."""
    channel = Channel(
        kind="generic", name=name, public_id=public_id, fee_percent_bp=fee_percent_bp, fee_fixed=fee_fixed
    )
    db.session.add(channel)
    db.session.commit()
    return channel


def spend(channel: Channel, day: dt.date, amount: int) -> None:
    """Money spent on a channel on a tenant-local day."""
    db.session.add(
        ChannelSpend(channel_id=channel.id, day=day, amount=amount, currency="CNY", category="ad_spend")
    )
    db.session.commit()


def refresh(now: dt.datetime | None = None) -> rollups.RefreshResult:
    """Run the rollup refresh as the periodic job would (at `now`)."""
    with frozen_time(now or dt.datetime.now(dt.UTC)):
        return rollups.refresh_rollups()


def table_rows(app: Flask, client: FlaskClient, path: str, table: str) -> list[dict[str, Any]]:
    """GET a dashboard page's JSON twin through the API is done elsewhere; this reads one CSV table."""
    response = client.get(path.replace("{table}", table))
    assert response.status_code == 200, response.get_data(as_text=True)
    text = response.get_data(as_text=True).lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text)))


def first_grant(order: Order) -> Grant:
    return grants_of(order.id)[0]


def right_named(name: str) -> Right:
    found = db.session.scalar(select(Right).where(Right.name == name))
    assert found is not None
    return found
