"""Hardening of the platform: security headers, rate limits, lockout, two-factor, session fixation."""

from __future__ import annotations

import time

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from saas.extensions import db
from saas.timeutil import frozen_time, utcnow
from tenants import services
from tenants.roles import Role
from tests.factories import PASSWORD, Shop, login


def test_pages_carry_a_strict_content_security_policy_and_frame_denial(client: FlaskClient) -> None:
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "<script>" not in response.get_data(as_text=True)  # no inline script, only app.js


def test_session_cookies_are_httponly_and_samesite(client: FlaskClient, shop: Shop) -> None:
    response = client.post("/login", data={"email": shop.owner.email, "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_is_rate_limited_per_address_with_retry_after(app: Flask, client: FlaskClient) -> None:
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    statuses = [
        client.post("/login", data={"email": "x@y.test", "password": "nope-nope-nope"}).status_code
        for _ in range(4)
    ]
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    limited = client.post("/login", data={"email": "x@y.test", "password": "nope-nope-nope"})
    assert int(limited.headers["Retry-After"]) > 0


def test_password_reset_requests_are_rate_limited(app: Flask, client: FlaskClient) -> None:
    app.config["PASSWORD_RESET_RATE_LIMIT"] = "2 per minute"
    codes = [client.post("/password/forgot", data={"email": "a@b.test"}).status_code for _ in range(3)]
    assert codes == [302, 302, 429]


def test_repeated_wrong_passwords_lock_the_account_for_a_while(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    app.config["LOGIN_LOCKOUT_FAILURES"] = 3
    for _ in range(3):
        client.post("/login", data={"email": shop.owner.email, "password": "wrong-password!"})
    locked = client.post("/login", data={"email": shop.owner.email, "password": PASSWORD})
    assert locked.status_code == 429 and "locked" in locked.get_data(as_text=True)
    later = utcnow().replace(microsecond=0) + __import__("datetime").timedelta(minutes=16)
    with frozen_time(later):
        assert (
            client.post("/login", data={"email": shop.owner.email, "password": PASSWORD}).status_code == 302
        )


def enable_two_factor(client: FlaskClient) -> str:
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = page.split('data-testid="totp-secret">')[1].split("<")[0]
    code = pyotp.TOTP(secret).at(time.time() - 30)  # a code from the previous step, so the next one is fresh
    assert client.post("/account/two-factor", data={"code": code}).status_code == 302
    return secret


def test_two_factor_asks_for_a_code_after_the_password_and_each_code_works_once(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    login(client, shop.owner)
    secret = enable_two_factor(client)
    client.post("/logout")
    fresh = app.test_client()
    response = fresh.post("/login", data={"email": shop.owner.email, "password": PASSWORD})
    assert response.headers["Location"].endswith("/login/code")
    assert fresh.get(f"/t/{shop.slug}/").status_code == 302  # not signed in yet
    assert fresh.post("/login/code", data={"code": "000000"}).status_code == 200
    code = pyotp.TOTP(secret).now()
    assert fresh.post("/login/code", data={"code": code}).status_code == 302
    assert fresh.get(f"/t/{shop.slug}/").status_code == 200
    replay = app.test_client()
    replay.post("/login", data={"email": shop.owner.email, "password": PASSWORD})
    assert replay.post("/login/code", data={"code": code}).status_code == 200  # the same code again: refused
    assert replay.get(f"/t/{shop.slug}/").status_code == 302


def test_the_totp_secret_is_stored_sealed(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    secret = enable_two_factor(client)
    db.session.refresh(shop.owner)
    assert shop.owner.totp_secret_sealed and secret.encode() not in shop.owner.totp_secret_sealed


def test_a_tenant_can_require_its_owners_to_use_two_factor(client: FlaskClient, shop: Shop) -> None:
    shop.tenant.settings = {"require_owner_two_factor": True}
    db.session.commit()
    login(client, shop.owner)
    response = client.get(f"/t/{shop.slug}/team")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/two-factor")
    enable_two_factor(client)
    assert client.get(f"/t/{shop.slug}/team").status_code == 200


def test_the_requirement_does_not_touch_other_roles(client: FlaskClient, shop: Shop) -> None:
    shop.tenant.settings = {"require_owner_two_factor": True}
    db.session.commit()
    login(client, shop.members["support"])
    assert client.get(f"/t/{shop.slug}/").status_code == 200


def test_login_starts_a_new_session(client: FlaskClient, shop: Shop) -> None:
    with client.session_transaction() as before:
        before["planted"] = "by an attacker"
    login(client, shop.owner)
    with client.session_transaction() as after:
        assert "planted" not in after


def test_api_keys_are_rate_limited_each_on_its_own(app: Flask, client: FlaskClient, shop: Shop) -> None:
    app.config["API_RATE_LIMIT"] = "3 per minute"
    with shop.bound():
        _, first = services.create_api_key(Role.OWNER, "one", [])
        _, second = services.create_api_key(Role.OWNER, "two", [])
    codes = [
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {first}"}).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/v1/me", headers={"Authorization": f"Bearer {first}"})
    assert limited.json["code"] == "rate_limited" and limited.headers["Retry-After"]  # type: ignore[index]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code == 200


def test_back_office_pages_are_never_cached(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.owner)
    assert client.get(f"/t/{shop.slug}/team").headers["Cache-Control"] == "no-store"
