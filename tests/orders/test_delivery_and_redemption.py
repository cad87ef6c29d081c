"""Delivery mail and the signed "my rights" page; redemption (核销) by customer, API, supplier report."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from orders import delivery, redemption
from orders.models import Delivery, Grant, Redemption
from saas.extensions import db
from saas.timeutil import frozen_time
from tenants.models import AuditEvent
from tests.factories import Outbox, Shop, login
from tests.orders.factories import add_keys, grants_of, make_product, make_right, place_order


def _link_path(body: str) -> str:
    found = re.search(r"(?:https?://[^/\s]+)?(/my/\S+)", body)
    assert found is not None, body
    return found.group(1)


def test_the_delivery_mail_links_to_my_rights_and_never_holds_the_key(shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        product = make_product()
        (card,) = add_keys(product.right, 1)
        order = place_order(product, "MAIL-1", paid=True)
    (mail,) = outbox.to("buyer@example.test")
    body = Outbox.body(mail)
    assert shop.tenant.name in str(mail["Subject"]) and "MAIL-1" in str(mail["Subject"])
    assert card not in body and card not in str(mail["Subject"])
    assert "视频月卡" in body and "/my/" in body
    with shop.bound():
        (log,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order.id))
        assert log.recipient == "buyer@example.test" and log.kind == "delivery"


def test_my_rights_shows_reveals_and_redeems_the_customers_rights(
    client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    with shop.bound():
        product = make_product()
        (card,) = add_keys(product.right, 1)
        order = place_order(product, "MY-1", paid=True)
        grant_id = grants_of(order.id)[0].id
    path = _link_path(Outbox.body(outbox.to("buyer@example.test")[0]))
    page = client.get(path, follow_redirects=True)  # the link signs in to the portal
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "视频月卡" in text and card not in text
    revealed = client.post(f"{path}/grants/{grant_id}/reveal")
    assert revealed.status_code == 200 and card in revealed.json["value"]  # type: ignore[index]
    assert client.post(f"{path}/grants/{grant_id}/redeem").status_code == 302
    with shop.bound():
        grant = db.session.get(Grant, (shop.tenant.id, grant_id))
        assert grant is not None and grant.status == "redeemed" and grant.redemption_source == "customer"
        assert grant.first_revealed_at is not None and grant.seconds_to_redeem is not None
        actions = set(
            db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == str(grant.id)))
        )
        assert {"grant.revealed", "grant.redeemed"} <= actions


def test_a_link_never_shows_another_tenants_or_customers_grants(
    app: Flask, client: FlaskClient, shop: Shop, other_shop: Shop
) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 2)
        mine = place_order(product, "MINE-1", paid=True)
        someone_else = place_order(product, "THEIRS-1", paid=True, email="someone@example.test")
        theirs = grants_of(someone_else.id)[0].id
        my_customer = mine.customer_id or 0
        token = delivery.my_rights_token(shop.tenant.id, my_customer)
    with other_shop.bound():
        other_product = make_product()
        add_keys(other_product.right, 1)
        rival_order = place_order(other_product, "RIVAL-1", paid=True)
        rival_grant = grants_of(rival_order.id)[0].id
        other_tenant = other_shop.tenant.id
    assert client.get(f"/my/{token}", follow_redirects=True).status_code == 200
    assert client.post(f"/my/{token}/grants/{theirs}/reveal").status_code == 404
    assert client.post(f"/my/{token}/grants/{rival_grant}/reveal").status_code == 404
    assert client.post(f"/my/{token}/grants/{rival_grant}/redeem").status_code == 404
    forged = delivery.my_rights_token(other_tenant, my_customer)  # their tenant, my customer
    assert client.get(f"/my/{forged}").status_code == 404


def test_a_tampered_or_expired_link_is_refused(app: Flask, client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order = place_order(product, "EXP-1", paid=True)
        with frozen_time(dt.datetime.now(dt.UTC)):
            token = delivery.my_rights_token(shop.tenant.id, order.customer_id or 0)
        db.session.commit()
    assert client.get(f"/my/{token}", follow_redirects=True).status_code == 200
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]  # inside the signature
    assert client.get(f"/my/{tampered}").status_code == 404
    app.config["MY_RIGHTS_LINK_MAX_AGE"] = -1
    assert client.get(f"/my/{token}").status_code == 404


def test_support_resends_a_delivery_and_it_is_logged(client: FlaskClient, shop: Shop, outbox: Outbox) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order_id = place_order(product, "RS-1", paid=True).id
    login(client, shop.members["support"])
    response = client.post(f"/t/{shop.slug}/orders/{order_id}/resend", data={"reason": "customer lost it"})
    assert response.status_code == 302
    assert len(outbox.to("buyer@example.test")) == 2
    with shop.bound():
        kinds = [d.kind for d in delivery.deliveries_of(order_id)]
        assert kinds == ["delivery", "resend"]
    page = client.get(f"/t/{shop.slug}/orders/{order_id}").get_data(as_text=True)
    assert "resend" in page and "customer lost it" in page


def test_redemption_by_code_is_idempotent_and_unknown_codes_are_logged(shop: Shop) -> None:
    with shop.bound():
        product = make_product(make_right("外卖券", kind="code", code_prefix="WM", code_length=8))
        order = place_order(product, "RC-1", paid=True)
        grant = grants_of(order.id)[0]
        from orders.allocation import reveal_grant_secret

        code = reveal_grant_secret(grant)
        assert redemption.redeem_code(code, source="api").outcome == "redeemed"
        assert redemption.redeem_code(code.lower(), source="api").outcome == "already_redeemed"
        assert redemption.redeem_code("WMNOSUCHCODE", source="api").outcome == "unknown"
        outcomes = list(db.session.scalars(select(Redemption.outcome).order_by(Redemption.at, Redemption.id)))
        assert outcomes == ["redeemed", "already_redeemed", "unknown"]


def test_a_supplier_report_redeems_card_keys_and_reports_unknown_ones(shop: Shop) -> None:
    with shop.bound():
        product = make_product()
        cards = add_keys(product.right, 3)
        orders = [place_order(product, f"SR-{n}", paid=True) for n in range(2)]
        report = ("卡号,使用时间\n" + "\n".join(f"{c},2030-01-01" for c in [*cards[:2], "BOGUS-1"])).encode()
        result = redemption.import_redemption_report(report, supplier="上游A")
        assert result.counts == {"redeemed": 2, "unknown": 1}
        assert {g.status for o in orders for g in grants_of(o.id)} == {"redeemed"}
        assert all(g.redemption_source == "supplier_report" for o in orders for g in grants_of(o.id))
