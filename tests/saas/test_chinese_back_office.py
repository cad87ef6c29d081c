"""The back office of a Chinese merchant is Chinese: every page of the demo shop, read in zh_CN."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.models import Campaign, Partner
from catalog.models import Bundle, CardKeyBatch, Right
from integrations.models import Channel, ChannelSpend, WebhookEndpoint
from orders.models import Customer, Order
from orders.subscriptions.models import Subscription
from reports.reconciliation.models import ReconciliationRun
from saas.auth.models import User
from saas.extensions import db
from tenants.demo import DEMO_PASSWORD, demo_email
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tenants.scoping import tenant_bound
from tests.english import english_in_page, visible_text
from tests.routes import tenant_routes

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


def _data_words(tenant_id: int) -> frozenset[str]:
    """The words of what the merchant typed or the demo made up (names, notes): data, not the product's."""
    columns: list[Any] = [
        Customer.name,
        Channel.name,
        Order.channel,
        ChannelSpend.note,
        CardKeyBatch.supplier,
        CardKeyBatch.source_filename,
        Right.provider,
        Right.name,
        Bundle.name,
        WebhookEndpoint.description,
        Partner.name,
        Partner.contact_name,
        Campaign.name,
        Campaign.title,
    ]
    words = set(re.findall(r"[A-Za-z][A-Za-z'-]*", db.session.get(Tenant, tenant_id).name))  # type: ignore[union-attr]
    members = select(User.name).join(Membership, Membership.user_id == User.id)
    with tenant_bound(tenant_id):  # memberships are under row-level security on PostgreSQL
        for name in db.session.scalars(members.where(Membership.tenant_id == tenant_id)):
            words.update(re.findall(r"[A-Za-z][A-Za-z'-]*", name or ""))
        for column in columns:
            for value in db.session.scalars(select(column).distinct()):
                words.update(re.findall(r"[A-Za-z][A-Za-z'_-]*", str(value or "")))  # shopify_mITMBW…
    return frozenset(words)


def _demo_objects(tenant_id: int) -> dict[str, int]:
    """One demo object per URL variable of the pages that show one (the most eventful order, say)."""
    models: dict[str, Any] = {
        "order_id": Order,
        "customer_id": Customer,
        "bundle_id": Bundle,
        "right_id": Right,
        "batch_id": CardKeyBatch,
        "channel_id": Channel,
        "endpoint_id": WebhookEndpoint,
        "subscription_id": Subscription,
        "reconciliation_run_id": ReconciliationRun,
        "campaign_id": Campaign,
        "partner_id": Partner,
    }
    found: dict[str, int] = {}
    with tenant_bound(tenant_id):
        for variable, model in models.items():
            ids = list(db.session.scalars(select(model.id).order_by(model.id)))
            if ids:
                found[variable] = ids[len(ids) // 2]
        refunded = db.session.scalar(select(Order.id).where(Order.status.like("%refunded")).limit(1))
        if refunded is not None:
            found["order_id"] = refunded
    return found


def test_every_back_office_page_of_the_demo_shop_reads_in_chinese(
    app: Flask, runner: Any, client: FlaskClient
) -> None:
    assert runner.invoke(args=["demo"]).exit_code == 0
    tenant = db.session.scalars(select(Tenant).where(Tenant.slug == "demo")).one()
    data = _data_words(tenant.id)
    client.post("/login", data={"email": demo_email(Role.OWNER), "password": DEMO_PASSWORD})
    english: dict[str, list[str]] = {}
    pages = 0
    objects = _demo_objects(tenant.id)
    for route in tenant_routes(app):
        if route.method != "GET" or not set(route.object_variables) <= set(objects):
            continue
        values = {name: objects[name] for name in route.object_variables}
        url = app.url_map.bind("quanyi.test").build(route.rule.endpoint, {"tenant_slug": "demo", **values})
        response = client.get(url, headers=CHINESE)
        if response.status_code != 200 or "text/html" not in response.headers.get("Content-Type", ""):
            continue
        pages += 1
        page = response.get_data(as_text=True)
        words = english_in_page(page, data)
        if words:
            english[url] = sorted(set(words))
            print(url, re.sub(r"\s+", " ", visible_text(page))[:3000])
    assert pages > 35
    assert not english, "English left on Chinese pages:\n" + "\n".join(
        f"{u}: {w}" for u, w in english.items()
    )
