"""Login lockout and two-factor under real concurrency: parallel requests, each in its own thread and client.

They run on SQLite (BEGIN IMMEDIATE serialises the claims) and, with TEST_DATABASE_URL, on PostgreSQL (row
locks on the conditional UPDATE). Every request comes from its own address, as from an attacker rotating
them, so the per-address rate limit never hides what the per-account count does.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from saas.auth import services
from saas.extensions import db
from tests.factories import PASSWORD, Shop
from tests.saas.test_security import enable_two_factor

PARALLEL_LOGINS = 40
FLASH = re.compile(r'class="flash[^"]*"[^>]*>(.*?)<', re.S)
CSRF_TOKEN = re.compile(r'name="csrf-token" content="[^"]*"')  # signed with the time: differs per second


def in_parallel(app: Flask, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread with its own app context, all released at once; return results."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(index: int, call: Callable[[], Any]) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[index] = call()
            except BaseException as error:  # re-raised in the test thread
                errors.append(error)
            finally:
                db.session.remove()

    db.session.commit()
    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    db.session.expire_all()
    return results


def address(n: int) -> dict[str, str]:
    return {"REMOTE_ADDR": f"203.0.113.{n % 250 + 1}"}


def post_login(app: Flask, email: str, password: str, n: int) -> Callable[[], tuple[int, str]]:
    def call() -> tuple[int, str]:
        response = app.test_client().post(
            "/login", data={"email": email, "password": password}, environ_base=address(n)
        )
        return response.status_code, response.get_data(as_text=True)

    return call


def attempt(email: str, password: str) -> Callable[[], str]:
    def call() -> str:
        try:
            return "signed in" if services.authenticate(email, password) else "wrong"
        except services.AccountLocked:
            return "locked"

    return call


def test_parallel_wrong_passwords_check_no_more_than_the_limit(app: Flask, shop: Shop) -> None:
    app.config["LOGIN_LOCKOUT_FAILURES"] = 5
    email = shop.owner.email
    guesses = [attempt(email, f"guess-number-{n}") for n in range(PARALLEL_LOGINS)]
    outcomes = in_parallel(app, guesses)
    assert outcomes.count("wrong") == 5  # exactly the limit was checked
    assert outcomes.count("locked") == PARALLEL_LOGINS - 5
    assert attempt(email, PASSWORD)() == "locked"  # and the right password does not get past the lock


def test_parallel_login_requests_from_rotating_addresses_lock_after_the_limit(app: Flask, shop: Shop) -> None:
    app.config["LOGIN_LOCKOUT_FAILURES"] = 5
    email = shop.owner.email
    answers = in_parallel(
        app, [post_login(app, email, f"guess-number-{n}", n) for n in range(PARALLEL_LOGINS)]
    )
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 5 and statuses.count(429) == PARALLEL_LOGINS - 5
    status, page = post_login(app, email, PASSWORD, 99)()
    assert status == 429 and "locked" in page


def flashes(page: str) -> list[str]:
    return [text.strip() for text in FLASH.findall(page)]


def test_the_lockout_answers_the_same_for_an_unknown_address(app: Flask, shop: Shop) -> None:
    app.config["LOGIN_LOCKOUT_FAILURES"] = 3
    client = app.test_client()

    def answers(email: str) -> list[tuple[int, str]]:
        replies = []
        for n in range(5):
            response = client.post(
                "/login", data={"email": email, "password": "wrong!"}, environ_base=address(n)
            )
            page = CSRF_TOKEN.sub("", response.get_data(as_text=True)).replace(email, "EMAIL")
            replies.append((response.status_code, page))
        return replies

    known, unknown = answers(shop.owner.email), answers("nobody-here@example.com")
    assert [status for status, _ in known] == [200, 200, 200, 429, 429]
    assert known == unknown
    assert "locked" in flashes(known[3][1])[0]


def pending_second_factor(app: Flask, shop: Shop, n: int) -> FlaskClient:
    client = app.test_client()
    response = client.post(
        "/login", data={"email": shop.owner.email, "password": PASSWORD}, environ_base=address(n)
    )
    assert response.headers["Location"].endswith("/login/code")
    return client


def two_factor_owner(app: Flask, shop: Shop) -> str:
    client = app.test_client()
    client.post("/login", data={"email": shop.owner.email, "password": PASSWORD})
    secret = enable_two_factor(client)
    client.post("/logout")
    return secret


def test_one_code_signs_in_once_from_eight_parallel_sessions(app: Flask, shop: Shop) -> None:
    app.config["LOGIN_LOCKOUT_FAILURES"] = 50  # eight password steps and eight codes, none of them a guess
    secret = two_factor_owner(app, shop)
    sessions = [pending_second_factor(app, shop, n) for n in range(8)]
    code = pyotp.TOTP(secret).now()

    def send_code(client: FlaskClient, n: int) -> Callable[[], int]:
        return lambda: client.post("/login/code", data={"code": code}, environ_base=address(n)).status_code

    statuses = in_parallel(app, [send_code(client, n) for n, client in enumerate(sessions)])
    assert sorted(statuses) == [200] * 7 + [302]
    home = f"/t/{shop.slug}/"
    signed_in = [n for n, c in enumerate(sessions) if c.get(home, environ_base=address(n)).status_code == 200]
    assert len(signed_in) == 1


def test_wrong_codes_are_limited_per_account_whatever_the_address(app: Flask, shop: Shop) -> None:
    app.config["LOGIN_LOCKOUT_FAILURES"] = 5
    secret = two_factor_owner(app, shop)
    client = pending_second_factor(app, shop, 0)  # one attempt: the password step
    statuses = [
        client.post("/login/code", data={"code": f"{n:06d}"}, environ_base=address(n)).status_code
        for n in range(1, 8)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429, 429]
    right = client.post("/login/code", data={"code": pyotp.TOTP(secret).now()}, environ_base=address(9))
    assert right.status_code == 429 and "locked" in right.get_data(as_text=True)
    # Signing in with the password again buys no fresh guesses: only a full login clears the count.
    again = app.test_client().post("/login", data={"email": shop.owner.email, "password": PASSWORD})
    assert again.status_code == 429


def test_parallel_wrong_codes_check_no_more_than_the_limit(app: Flask, shop: Shop) -> None:
    app.config["LOGIN_LOCKOUT_FAILURES"] = 5
    two_factor_owner(app, shop)
    user_id = shop.owner.id

    def guess(n: int) -> Callable[[], str]:
        def call() -> str:
            user = db.session.get(type(shop.owner), user_id)
            assert user is not None
            try:
                return "accepted" if services.check_login_code(user, f"{n:06d}") else "wrong"
            except services.AccountLocked:
                return "locked"

        return call

    outcomes = in_parallel(app, [guess(n) for n in range(PARALLEL_LOGINS)])
    assert outcomes.count("wrong") + outcomes.count("accepted") == 5


def test_a_stolen_session_cannot_guess_its_way_to_turning_two_factor_off(app: Flask, shop: Shop) -> None:
    app.config["LOGIN_LOCKOUT_FAILURES"] = 3
    secret = two_factor_owner(app, shop)
    client = pending_second_factor(app, shop, 0)
    assert (
        client.post(
            "/login/code", data={"code": pyotp.TOTP(secret).now()}, environ_base=address(0)
        ).status_code
        == 302
    )
    guesses = [
        client.post("/account/two-factor", data={"code": f"{n:06d}"}, environ_base=address(0)).status_code
        for n in range(4)
    ]
    assert guesses == [200, 200, 200, 429]
    db.session.refresh(shop.owner)
    assert shop.owner.has_two_factor


def test_attempt_counts_untouched_for_a_day_are_forgotten_but_locks_are_kept(app: Flask, shop: Shop) -> None:
    import datetime as dt

    from saas.auth.models import LoginAttempts
    from saas.auth.tasks import forget_stale_login_attempts
    from saas.timeutil import frozen_time, utcnow

    app.config["LOGIN_LOCKOUT_FAILURES"] = 2
    start = utcnow()
    with frozen_time(start):
        attempt("one-try@example.com", "wrong")()
        for _ in range(2):
            attempt(shop.owner.email, "wrong")()
    with frozen_time(start + dt.timedelta(days=1, minutes=1)):
        app.config["LOGIN_LOCKOUT_MINUTES"] = 60 * 24 * 2  # a lock set now still holds
        attempt("locked@example.com", "wrong")()
        attempt("locked@example.com", "wrong")()
    with frozen_time(start + dt.timedelta(days=2, minutes=2)):
        assert forget_stale_login_attempts() == 2  # the stale count and the owner's expired lock
        assert db.session.query(LoginAttempts).count() == 1
        assert attempt("locked@example.com", "wrong")() == "locked"
