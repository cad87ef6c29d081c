"""The customer's own page: a signed link shows the subscription; a mailed one-time code lets them act."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask
from flask.testing import FlaskClient

from orders.subscriptions import cancellation, selfservice
from saas.timeutil import format_in_zone, frozen_time
from tests.factories import Outbox, Shop
from tests.orders.portal_helpers import sms_files
from tests.orders.subscriptions.factories import fresh, local, renewable_plan, subscribe

EMAIL = "li.lei@example.com"


def page_of(shop: Shop, **kwargs: object) -> tuple[int, str]:
    with shop.bound():
        sub = subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 31, 9, 30), **kwargs)  # type: ignore[arg-type]
        return sub.id, "/my/subscriptions/" + selfservice.self_service_token(shop.tenant.id, sub.id)


def last_code(outbox: Outbox) -> str:
    mails = [m for m in outbox.to(EMAIL) if "verification code" in str(m["Subject"])]
    found = re.search(r"\b(\d{6})\b", Outbox.body(mails[-1]))
    assert found is not None
    return found.group(1)


def verify(client: FlaskClient, url: str, outbox: Outbox) -> None:
    client.post(f"{url}/code")
    client.post(f"{url}/verify", data={"code": last_code(outbox)})


def test_the_link_shows_when_the_subscription_renews_and_for_how_much(
    client: FlaskClient, shop: Shop
) -> None:
    _sub_id, url = page_of(shop)
    with frozen_time(local(2026, 2, 10)):
        page = client.get(url).get_data(as_text=True)
    assert "Renews automatically on 2026-02-28 09:30 (Asia/Shanghai) for ¥39.90" in page
    assert "Send me a code" in page


def test_a_tampered_link_is_not_found(client: FlaskClient, shop: Shop) -> None:
    _sub_id, url = page_of(shop)
    # Change a character well inside the signature (the last one carries ignored padding bits).
    flipped = "A" if url[-6] != "A" else "B"
    assert client.get(url[:-6] + flipped + url[-5:]).status_code == 404


def test_cancelling_needs_the_code_mailed_to_the_customer(
    client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    sub_id, url = page_of(shop)
    with frozen_time(local(2026, 2, 10)):
        refused = client.post(f"{url}/cancel", data={"when": "at_period_end"}, follow_redirects=True)
        assert "Confirm it is you" in refused.get_data(as_text=True)
        with shop.bound():
            assert fresh(sub_id).auto_renew
        client.post(f"{url}/code")
        code = last_code(outbox)
        assert len(code) == 6
        client.post(f"{url}/verify", data={"code": code})
        page = client.post(
            f"{url}/cancel",
            data={"when": "at_period_end", "reason_code": "too_expensive", "reason_text": "太贵"},
            follow_redirects=True,
        )
    body = page.get_data(as_text=True)
    assert "Your receipt number is QX260210-" in body
    assert "your rights stay until 2026-02-28 09:30 (Asia/Shanghai)" in body  # exactly when it takes effect
    assert "No further charge" in body  # the receipt, visible on the page
    with shop.bound():
        assert not fresh(sub_id).auto_renew
    receipt = [m for m in outbox.to(EMAIL) if "cancellation receipt" in str(m["Subject"])]
    assert len(receipt) == 1 and "2026-02-28 09:30" in Outbox.body(receipt[0])


def test_then_the_customer_can_change_their_mind_until_the_period_end(
    client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    sub_id, url = page_of(shop)
    with frozen_time(local(2026, 2, 10)):
        verify(client, url, outbox)
        client.post(f"{url}/cancel", data={"when": "at_period_end"})
        page = client.post(f"{url}/undo", follow_redirects=True).get_data(as_text=True)
    assert "Your subscription renews again." in page
    with shop.bound():
        assert fresh(sub_id).auto_renew


def test_cancel_now_shows_the_refund_before_and_on_the_receipt(
    client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    from orders.subscriptions import policy

    sub_id, url = page_of(shop)
    with shop.bound():
        plan = policy.renewable_plans()[0][0]
        policy.save_policy(plan, grace_days=3, reminder_offsets=[3], cancel_now_refund="prorated", actor="t")
    with frozen_time(local(2026, 2, 14, 12)):  # day 15 of 28 (from 31 Jan): 13 days unused
        verify(client, url, outbox)
        before = client.get(url).get_data(as_text=True)
        assert "¥18.52 is refundable for the 13 unused days" in before
        assert "it ends today, 2026-02-14" in before
        after = client.post(
            f"{url}/cancel", data={"when": "now", "reason_code": "unsatisfied"}, follow_redirects=True
        ).get_data(as_text=True)
    assert "¥18.52 to be refunded to your original payment method" in after
    with shop.bound():
        assert fresh(sub_id).status == "canceled"


def test_a_wrong_code_counts_and_five_wrong_codes_use_it_up(
    client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    _sub_id, url = page_of(shop)
    with frozen_time(local(2026, 2, 10)):
        client.post(f"{url}/code")
        code = last_code(outbox)
        wrong = "000000" if code != "000000" else "111111"
        first = client.post(f"{url}/verify", data={"code": wrong}, follow_redirects=True).get_data(
            as_text=True
        )
        assert "4 attempts left" in first
        for _ in range(4):
            client.post(f"{url}/verify", data={"code": wrong})
        used_up = client.post(f"{url}/verify", data={"code": code}, follow_redirects=True).get_data(
            as_text=True
        )
    assert "Too many wrong codes" in used_up
    assert "Send me a code" in used_up  # still not verified


def test_a_code_expires_after_ten_minutes_and_is_used_once(
    client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    _sub_id, url = page_of(shop)
    start = local(2026, 2, 10, 12)
    with frozen_time(start):
        client.post(f"{url}/code")
    code = last_code(outbox)
    with frozen_time(start + dt.timedelta(minutes=10, seconds=1)):
        late = client.post(f"{url}/verify", data={"code": code}, follow_redirects=True).get_data(as_text=True)
    assert "This code has expired" in late
    with frozen_time(start + dt.timedelta(minutes=11)):
        client.post(f"{url}/code")
        fresh_code = last_code(outbox)
        assert "you can now change" in client.post(
            f"{url}/verify", data={"code": fresh_code}, follow_redirects=True
        ).get_data(as_text=True)
        other = type(client)(client.application)  # another browser with the same code
        again = other.post(f"{url}/verify", data={"code": fresh_code}, follow_redirects=True)
    assert "Ask for a code first" in again.get_data(as_text=True)


def test_codes_are_stored_hashed(shop: Shop, outbox: Outbox, client: FlaskClient) -> None:
    from sqlalchemy import select

    from orders.subscriptions.models import SubscriptionAccessCode
    from saas.extensions import db

    _sub_id, url = page_of(shop)
    client.post(f"{url}/code")
    code = last_code(outbox)
    with shop.bound():
        row = db.session.scalar(select(SubscriptionAccessCode))
        assert row is not None and code not in row.code_hash and len(row.code_hash) == 64


def test_a_phone_only_customer_gets_the_code_by_sms_and_the_receipt_too(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    sub_id, url = page_of(shop, email=None)
    client.post(f"{url}/code")
    (code_sms,) = [m for m in sms_files(app) if m["kind"] == "verification_code"]
    assert code_sms["to"] == "+8613800000000"
    client.post(f"{url}/verify", data={"code": code_sms["params"]["code"]})
    client.post(f"{url}/cancel", data={"when": "at_period_end"})
    (receipt,) = [m for m in sms_files(app) if m["kind"] == "cancellation_receipt"]
    with shop.bound():
        (done,) = cancellation.cancellations_of(sub_id)
        effective = format_in_zone(done.effective_at, "Asia/Shanghai", "%Y-%m-%d")
    assert receipt["params"] == {"shop": shop.tenant.name, "plan": "影音月卡", "date": effective}
    assert "影音月卡" in str(receipt["text"]) and effective in str(receipt["text"])


def test_a_customer_with_a_phone_and_an_email_gets_the_code_both_ways(
    app: Flask, client: FlaskClient, shop: Shop, outbox: Outbox
) -> None:
    _sub_id, url = page_of(shop)
    with shop.bound():
        from orders.models import Customer
        from saas.extensions import db

        for customer in db.session.query(Customer):
            customer.phone = "+8613800000002"
        db.session.commit()
    client.post(f"{url}/code")
    (code_sms,) = [m for m in sms_files(app) if m["kind"] == "verification_code"]
    assert code_sms["to"] == "+8613800000002" and code_sms["params"]["code"] == last_code(outbox)
