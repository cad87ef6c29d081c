"""A merchant signs up, logs in and out, and resets a forgotten password."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from saas.auth.models import User
from saas.extensions import db
from tenants.models import Membership, Tenant
from tenants.scoping import tenant_bound
from tests.factories import PASSWORD, Outbox, Shop, login


def sign_up(client: FlaskClient, slug: str = "moon-rights", email: str = "boss@moon.test") -> None:
    response = client.post(
        "/signup",
        data={
            "tenant_name": "Moon Rights",
            "slug": slug,
            "name": "Boss",
            "email": email,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/t/{slug}/")


def test_sign_up_creates_the_tenant_and_its_owner(client: FlaskClient) -> None:
    sign_up(client)
    tenant = db.session.query(Tenant).filter_by(slug="moon-rights").one()
    user = db.session.query(User).filter_by(email="boss@moon.test").one()
    with tenant_bound(tenant.id):  # memberships are under RLS on PostgreSQL
        assert db.session.get(Membership, (tenant.id, user.id)).role == "owner"
    page = client.get("/t/moon-rights/")
    assert page.status_code == 200
    assert "Moon Rights" in page.get_data(as_text=True)


def test_sign_up_refuses_a_taken_address_and_keeps_the_form(client: FlaskClient, shop: Shop) -> None:
    response = client.post(
        "/signup",
        data={"tenant_name": "Copy", "slug": shop.slug, "email": "new@x.test", "password": PASSWORD},
    )
    assert response.status_code == 200
    assert "taken" in response.get_data(as_text=True)
    assert db.session.query(User).filter_by(email="new@x.test").count() == 0


def test_wrong_password_does_not_sign_in(client: FlaskClient, shop: Shop) -> None:
    response = client.post("/login", data={"email": shop.owner.email, "password": "not-it-at-all"})
    assert response.status_code == 200
    assert client.get(f"/t/{shop.slug}/").status_code == 302  # sent to the login page


def test_log_out_ends_the_session(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    assert client.get(f"/t/{shop.slug}/").status_code == 200
    client.post("/logout")
    assert client.get(f"/t/{shop.slug}/").status_code == 302


def test_password_reset_by_emailed_link_works_once(client: FlaskClient, shop: Shop, outbox: Outbox) -> None:
    client.post("/password/forgot", data={"email": shop.owner.email})
    (mail,) = outbox.to(shop.owner.email)
    link = re.search(r"http://\S+/password/reset/\S+", outbox.body(mail))
    assert link is not None
    path = link.group(0).split("quanyi.test", 1)[1]
    assert (
        client.post(
            path, data={"password": "a-brand-new-secret", "confirm": "a-brand-new-secret"}
        ).status_code
        == 302
    )
    assert (
        client.post("/login", data={"email": shop.owner.email, "password": "a-brand-new-secret"}).status_code
        == 302
    )
    again = client.post(path, data={"password": "another-new-secret", "confirm": "another-new-secret"})
    assert "already been used" in again.get_data(as_text=True)


def test_unknown_email_gets_no_reset_mail_and_the_same_answer(client: FlaskClient, outbox: Outbox) -> None:
    response = client.post("/password/forgot", data={"email": "ghost@nowhere.test"}, follow_redirects=True)
    assert "reset link is on its way" in response.get_data(as_text=True)
    assert outbox.messages() == []


def test_changing_the_password_signs_out_other_sessions(app, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, shop.owner)
    login(phone, shop.owner)
    response = laptop.post(
        "/account",
        data={
            "pw-current_password": PASSWORD,
            "pw-password": "fresh-password-1",
            "pw-confirm": "fresh-password-1",
        },
    )
    assert response.status_code == 302
    assert laptop.get(f"/t/{shop.slug}/").status_code == 200
    assert phone.get(f"/t/{shop.slug}/").status_code == 302


def test_passwords_are_stored_hashed(shop: Shop) -> None:
    assert PASSWORD not in shop.owner.password_hash
    assert shop.owner.check_password(PASSWORD)


def test_a_user_in_two_tenants_switches_between_them(
    client: FlaskClient, shop: Shop, other_shop: Shop
) -> None:
    with other_shop.bound():  # a membership is written inside its tenant
        db.session.add(Membership(tenant_id=other_shop.tenant.id, user_id=shop.owner.id, role="analyst"))
    db.session.commit()
    login(client, shop.owner)
    switcher = client.get("/").get_data(as_text=True)
    assert shop.tenant.name in switcher and other_shop.tenant.name in switcher
    page = client.get(f"/t/{other_shop.slug}/").get_data(as_text=True)
    assert 'data-testid="role">Analyst' in page


def test_a_member_sets_their_name_and_language(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    response = client.post("/account", data={"prefs-name": "王经理", "prefs-locale": "zh_CN"})
    assert response.status_code == 302
    db.session.refresh(shop.owner)
    assert (shop.owner.name, shop.owner.locale) == ("王经理", "zh_CN")
    assert "团队" in client.get(f"/t/{shop.slug}/team").get_data(as_text=True)
