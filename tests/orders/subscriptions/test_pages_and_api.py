"""The back office and the API: the list with its filters, a subscription's page, support actions, /api/v1."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from flask.testing import FlaskClient

from orders.subscriptions import cancellation, policy
from saas.timeutil import frozen_time
from tenants import services as tenant_services
from tenants.roles import PERMISSIONS, Role
from tests.factories import Shop, login
from tests.orders.subscriptions.factories import fresh, local, renew, renewable_plan, subscribe


def three_subscriptions(shop: Shop) -> dict[str, int]:
    with shop.bound():
        month, year = renewable_plan("month", name="月卡"), renewable_plan("year", name="年卡", price=39900)
        soon = subscribe(month, at=local(2026, 2, 5), email="soon@example.com")
        later = subscribe(year, at=local(2026, 2, 5), email="later@example.com", channel="stripe")
        gone = subscribe(month, at=local(2026, 2, 5), email="gone@example.com")
        with frozen_time(local(2026, 2, 6)):
            cancellation.cancel_now(gone.id, source="support", notify=False)
        return {"soon": soon.id, "later": later.id, "gone": gone.id, "month": month.id}


def test_the_list_filters_by_status_plan_channel_and_renewal_window(client: FlaskClient, shop: Shop) -> None:
    ids = three_subscriptions(shop)
    login(client, shop.members["analyst"])
    base = f"/t/{shop.slug}/subscriptions"
    with frozen_time(local(2026, 2, 20)):
        everything = client.get(base).get_data(as_text=True)
        renewing = client.get(f"{base}?within=14").get_data(as_text=True)
        cancelled = client.get(f"{base}?status=canceled").get_data(as_text=True)
        stripe = client.get(f"{base}?channel=stripe").get_data(as_text=True)
        monthly = client.get(f"{base}?plan_id={ids['month']}").get_data(as_text=True)
    assert all(email in everything for email in ("soon@", "later@", "gone@"))
    assert "soon@" in renewing and "later@" not in renewing and "gone@" not in renewing
    assert "gone@" in cancelled and "soon@" not in cancelled
    assert "later@" in stripe and "soon@" not in stripe
    assert "soon@" in monthly and "gone@" in monthly and "later@" not in monthly


def test_a_subscription_page_shows_periods_renewals_reminders_and_cancellations(
    client: FlaskClient, shop: Shop
) -> None:
    from orders.subscriptions import reminders

    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        renew(sub.id, local(2026, 2, 26, 9), "in_page")
        with frozen_time(local(2026, 3, 28, 10)):
            reminders.send_due_reminders()
            cancellation.cancel_at_period_end(
                sub.id, source="customer", reason_code="too_expensive", notify=False
            )
        sub_id = sub.id
    login(client, shop.members["support"])
    with frozen_time(local(2026, 3, 29)):
        page = client.get(f"/t/{shop.slug}/subscriptions/{sub_id}").get_data(as_text=True)
    assert 'data-testid="periods"' in page and "2026-03-31 09:30" in page
    assert 'data-testid="renewals"' in page and ">-2<" in page and "early" in page
    assert 'data-testid="reminders"' in page and "sent" in page
    assert 'data-testid="cancellations"' in page and "Price too high" in page
    assert "Undo the cancellation" in page  # support may undo


def test_an_analyst_sees_no_cancel_button_and_support_may_undo(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))
        with frozen_time(local(2026, 2, 2)):
            cancellation.cancel_at_period_end(sub.id, source="customer", notify=False)
        sub_id = sub.id
    login(client, shop.members["analyst"])
    with frozen_time(local(2026, 2, 3)):
        assert "Cancel for the customer" not in client.get(f"/t/{shop.slug}/subscriptions/{sub_id}").get_data(
            as_text=True
        )
        assert client.post(f"/t/{shop.slug}/subscriptions/{sub_id}/undo").status_code == 403
    login(client, shop.members["support"])
    with frozen_time(local(2026, 2, 3)):
        client.post(f"/t/{shop.slug}/subscriptions/{sub_id}/undo")
    with shop.bound():
        assert fresh(sub_id).auto_renew


def test_finance_records_a_manual_renewal_once_per_reference(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month", price=3990), at=local(2026, 1, 31, 9, 30))
        sub_id = sub.id
    login(client, shop.members["finance"])
    with frozen_time(local(2026, 2, 27)):
        for _ in range(2):
            client.post(
                f"/t/{shop.slug}/subscriptions/{sub_id}/renew",
                data={"amount": "39.90", "reference": "银行转账 0227"},
            )
    with shop.bound():
        sub = fresh(sub_id)
        assert sub.current_period_number == 2


def test_the_policy_page_sets_grace_days_reminders_and_refunds(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        plan = renewable_plan("month")
        plan_id = plan.id
    login(client, shop.members["operator"])
    response = client.post(
        f"/t/{shop.slug}/subscriptions/policies/{plan_id}",
        data={"grace_days": "5", "reminder_offsets": "7, 3，1", "cancel_now_refund": "prorated"},
    )
    assert response.status_code == 302
    with shop.bound():
        saved = policy.policy_for(plan_id, "month")
    assert (saved.grace_days, saved.reminder_offsets, saved.cancel_now_refund) == (5, (7, 3, 1), "prorated")
    listing = client.get(f"/t/{shop.slug}/subscriptions/policies").get_data(as_text=True)
    assert "7, 3, 1" in listing


def api_headers(shop: Shop, scopes: list[str] | None = None) -> dict[str, str]:
    with shop.bound():
        _key, secret = tenant_services.create_api_key(Role.OWNER, "test", scopes or list(PERMISSIONS))
    return {"Authorization": f"Bearer {secret}"}


def test_the_api_lists_gets_cancels_and_undoes(client: FlaskClient, shop: Shop) -> None:
    ids = three_subscriptions(shop)
    headers = api_headers(shop)
    with frozen_time(local(2026, 2, 20)):
        listed = client.get("/api/v1/subscriptions?status=active", headers=headers).json
        assert {item["id"] for item in listed["items"]} == {str(ids["soon"]), str(ids["later"])}
        renewing = client.get("/api/v1/subscriptions?renewing_within_days=14", headers=headers).json
        assert [item["id"] for item in renewing["items"]] == [str(ids["soon"])]
        cancel = client.post(
            f"/api/v1/subscriptions/{ids['soon']}/cancel",
            headers=headers,
            json={"when": "period_end", "reason_code": "no_longer_needed"},
        )
        assert cancel.status_code == 201 and cancel.json["kind"] == "at_period_end"
        assert cancel.json["effective_at"].startswith("2026-03-05")
        undo = client.post(f"/api/v1/subscriptions/{ids['soon']}/undo-cancel", headers=headers, json={})
        assert undo.status_code == 200 and undo.json["undone_at"] is not None
        again = client.post(f"/api/v1/subscriptions/{ids['soon']}/undo-cancel", headers=headers, json={})
        assert again.status_code == 409
        detail = client.get(f"/api/v1/subscriptions/{ids['soon']}", headers=headers).json
    assert detail["auto_renew"] is True and len(detail["cancellations"]) == 1
    assert detail["periods"][0]["number"] == 1


def test_the_api_records_renewals_idempotently(client: FlaskClient, shop: Shop) -> None:
    ids = three_subscriptions(shop)
    headers = api_headers(shop)
    url = f"/api/v1/subscriptions/{ids['soon']}/renewals"
    with frozen_time(local(2026, 3, 3)):
        first = client.post(url, headers=headers, json={"idempotency_key": "pay-1"})
        again = client.post(url, headers=headers, json={"idempotency_key": "pay-1"})
        other = client.post(url, headers=headers, json={"idempotency_key": "pay-2"})
        missing = client.post(url, headers=headers, json={})
    assert first.status_code == 201 and first.json["created"] is True and first.json["days_from_due"] == -2
    assert again.json["created"] is False and again.json["id"] == first.json["id"]
    assert other.status_code == 409 and other.json["code"] == "already_renewed"
    assert missing.status_code == 422


def test_an_api_key_without_the_cancel_scope_cannot_cancel(client: FlaskClient, shop: Shop) -> None:
    ids = three_subscriptions(shop)
    headers = api_headers(shop, ["orders.view"])
    response = client.post(f"/api/v1/subscriptions/{ids['soon']}/cancel", headers=headers, json={})
    assert response.status_code == 403
    assert client.get(f"/api/v1/subscriptions/{ids['soon']}", headers=headers).status_code == 200


def test_an_unknown_field_is_a_422_that_names_it_and_cancels_nothing(client: FlaskClient, shop: Shop) -> None:
    ids = three_subscriptions(shop)
    headers = api_headers(shop)
    response = client.post(
        f"/api/v1/subscriptions/{ids['soon']}/cancel", headers=headers, json={"mode": "now"}
    )
    assert response.status_code == 422 and "mode" in response.json["message"], response.json
    assert client.get(f"/api/v1/subscriptions/{ids['soon']}", headers=headers).json["status"] == "active"


def test_every_request_body_of_the_api_refuses_unknown_fields(app: Flask) -> None:
    from pydantic import BaseModel

    from tenants.api import RequestModel

    def models(model: type[BaseModel]) -> list[type[BaseModel]]:
        found = [model]
        for field in model.model_fields.values():
            for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
                for inner in [arg, *getattr(arg, "__args__", ())]:
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        found += models(inner)
        return found

    bodies = [
        view.api_operation.request_model
        for view in app.view_functions.values()
        if getattr(view, "api_operation", None) is not None and view.api_operation.request_model is not None
    ]
    assert len(bodies) >= 20
    loose = {m.__name__ for body in bodies for m in models(body) if not issubclass(m, RequestModel)}
    assert not loose
    assert all(m.model_config.get("extra") == "forbid" for body in bodies for m in models(body))


def test_the_page_shows_the_next_period_a_renewal_would_buy(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        sub = subscribe(renewable_plan("month"), at=local(2026, 1, 31, 9, 30))  # paid to 2026-02-28 09:30
        sub_id = sub.id
    login(client, shop.members["finance"])
    with frozen_time(local(2026, 2, 20)):
        page = client.get(f"/t/{shop.slug}/subscriptions/{sub_id}").get_data(as_text=True)
    assert "The next period runs 2026-02-28 09:30 – 2026-03-31 09:30" in page, (
        "not a period ending as it starts"
    )
    with shop.bound():
        renew(sub_id, local(2026, 2, 20), "next-period")
        renewed = fresh(sub_id)
        assert renewed.current_period_start.astimezone(dt.UTC) == local(2026, 2, 28, 9, 30)
        assert renewed.current_period_end.astimezone(dt.UTC) == local(2026, 3, 31, 9, 30)
