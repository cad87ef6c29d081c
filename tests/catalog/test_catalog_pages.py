"""Operators manage rights, bundles and plans in the back office; other roles read them."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from catalog import services
from catalog.models import Bundle, Plan, Right
from saas.extensions import db
from tenants.models import AuditEvent
from tests.catalog.factories import make_bundle, make_plan, make_right
from tests.factories import Shop, login


def test_an_operator_creates_a_right_with_money_typed_as_text(client: FlaskClient, shop: Shop) -> None:
    login(client, shop.members["operator"])
    response = client.post(
        f"/t/{shop.slug}/catalog/rights/new",
        data={
            "name": "QQ音乐绿钻月卡",
            "provider": "QQ音乐",
            "kind": "card_key",
            "face_value": "18.00",
            "unit_cost": "11.05",
            "currency": "CNY",
            "validity_days": "31",
            "reusable": "y",
            "max_deliveries": "3",
            "code_length": "12",
            "topup_account_type": "mobile",
        },
    )
    assert response.status_code == 302
    with shop.bound():
        right = db.session.scalars(select(Right)).one()
        audit = db.session.scalars(select(AuditEvent.action)).all()
    assert (right.face_value, right.unit_cost, right.reusable, right.max_deliveries) == (1800, 1105, True, 3)
    assert "catalog.right_created" in audit
    page = client.get(f"/t/{shop.slug}/catalog/rights/{right.id}").get_data(as_text=True)
    assert "¥18.00" in page and "QQ音乐" in page


def test_each_fulfilment_kind_asks_for_its_own_settings(shop: Shop) -> None:
    with shop.bound():
        for fields, problem in (
            ({"kind": "link", "link_url": "ftp://x"}, "http"),
            ({"kind": "topup"}, "adapter"),
            ({"kind": "code", "code_prefix": "mt 15"}, "prefix"),
            ({"kind": "card_key", "reusable": True, "max_deliveries": 1}, "twice"),
        ):
            try:
                services.create_right({"name": "x", **fields})
            except services.CatalogError as error:
                assert problem in str(error)
            else:
                raise AssertionError(f"{fields} was accepted")


def test_generated_codes_are_random_and_avoid_look_alike_characters() -> None:
    codes = {services.generate_code("MT", 10) for _ in range(2000)}
    assert len(codes) == 2000
    assert all(c.startswith("MT") and len(c) == 12 and not set(c[2:]) & set("01OIL") for c in codes)


def test_a_bundle_goes_from_draft_to_active_to_archived(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        video, music = make_right("腾讯视频VIP月卡").id, make_right("QQ音乐绿钻").id
    login(client, shop.members["operator"])
    client.post(f"/t/{shop.slug}/catalog/bundles/new", data={"name": "影音畅享包", "cover_text": "一包搞定"})
    with shop.bound():
        bundle = db.session.scalars(select(Bundle)).one()
        base = f"/t/{shop.slug}/catalog/bundles/{bundle.id}"
    refused = client.post(f"{base}/status", data={"status": "active"}, follow_redirects=True)
    assert "at least one right and one plan" in refused.get_data(as_text=True)
    client.post(f"{base}/items", data={"right_id": str(video), "quantity": "1"})
    client.post(f"{base}/items", data={"right_id": str(music), "quantity": "2"})
    client.post(
        f"{base}/plans/new",
        data={
            "name": "季卡",
            "period_unit": "quarter",
            "price": "109.90",
            "list_price": "189.00",
            "currency": "CNY",
            "renewable": "y",
        },
    )
    client.post(f"{base}/status", data={"status": "active"})
    page = client.get(base).get_data(as_text=True)
    assert 'data-testid="bundle-status">On sale' in page
    assert "¥109.90" in page and "−42%" in page  # list price 189.00, price 109.90
    client.post(f"{base}/status", data={"status": "archived"})
    with shop.bound():
        db.session.refresh(bundle)
        assert bundle.status == "archived"
        assert bundle.snapshot()["items"][1]["quantity"] == 2  # still readable for history and reports
    edit = client.post(f"{base}/edit", data={"name": "renamed"}, follow_redirects=True)
    assert "archived bundle is kept" in edit.get_data(as_text=True)


def test_editing_a_sold_plan_never_changes_the_snapshot_taken(shop: Shop) -> None:
    with shop.bound():
        right = make_right()
        bundle = make_bundle(rights=[(right, 1)])
        plan = make_plan(bundle, price=3990)
        services.change_bundle_status(bundle, "active")
        sold = plan.snapshot()
        services.update_plan(plan, {"price": 4990, "name": "新月卡"})
        services.update_right(right, {"name": "腾讯视频VIP月卡(新)"})
        now = plan.snapshot()
    assert sold["plan"]["price"] == 3990 and sold["plan"]["version"] == 1
    assert sold["bundle"]["items"][0]["right"]["name"] == "腾讯视频VIP月卡"
    assert now["plan"]["price"] == 4990 and now["plan"]["version"] == 2
    import json

    assert json.loads(json.dumps(sold)) == sold  # JSON-able as is


def test_cloning_copies_rights_and_plans_into_a_new_draft(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        bundle = make_bundle(rights=[(make_right(), 2)])
        make_plan(bundle, "月卡")
        make_plan(bundle, "年卡", period_unit="year", price=39900, list_price=None)
        bundle_id = bundle.id
    login(client, shop.owner)
    response = client.post(f"/t/{shop.slug}/catalog/bundles/{bundle_id}/clone")
    assert response.status_code == 302
    with shop.bound():
        copy = db.session.scalars(select(Bundle).where(Bundle.cloned_from_id == bundle_id)).one()
        assert copy.status == "draft"
        assert [(i.quantity, r.name) for i, r in copy.items()] == [(2, "腾讯视频VIP月卡")]
        assert [p.name for p in copy.plans()] == ["月卡", "年卡"]


def test_lists_search_by_name(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        make_right("腾讯视频VIP月卡")
        make_right("美团外卖红包", kind="code", code_prefix="MT")
        make_bundle("影音畅享包")
        make_bundle("外卖省钱包")
    login(client, shop.members["analyst"])
    rights = client.get(f"/t/{shop.slug}/catalog/rights?q=美团").get_data(as_text=True)
    assert "美团外卖红包" in rights and "腾讯视频VIP月卡" not in rights
    bundles = client.get(f"/t/{shop.slug}/catalog/bundles?q=外卖").get_data(as_text=True)
    assert "外卖省钱包" in bundles and "影音畅享包" not in bundles


def test_roles_without_catalog_manage_can_read_but_not_change(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        right_id = make_right().id
    for role in ("finance", "analyst", "support"):
        login(client, shop.members[role])
        assert client.get(f"/t/{shop.slug}/catalog/rights/{right_id}").status_code == 200
        assert (
            client.post(f"/t/{shop.slug}/catalog/rights/{right_id}/edit", data={"name": "x"}).status_code
            == 403
        )
        client.post("/logout")
    with shop.bound():
        assert db.session.get(Right, (shop.tenant.id, right_id)).name == "腾讯视频VIP月卡"  # type: ignore[union-attr]


def test_plans_check_prices_and_periods(shop: Shop) -> None:
    with shop.bound():
        bundle = make_bundle()
        for fields, problem in (
            ({"list_price": 100}, "at least the price"),
            ({"period_unit": "days"}, "Days"),
            ({"period_unit": "week"}, "period"),
        ):
            try:
                make_plan(bundle, **fields)
            except services.CatalogError as error:
                assert problem in str(error)
            else:
                raise AssertionError(fields)
        plan = make_plan(bundle, period_unit="days", period_days=7, price=590, list_price=None)
        assert db.session.get(Plan, (shop.tenant.id, plan.id)).duration_days == 7  # type: ignore[union-attr]


def test_a_plan_allows_family_sharing_and_an_order_remembers_it(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        bundle = make_bundle(rights=[(make_right("喜马拉雅会员", kind="link", link_url="https://x.test"), 1)])
        base = f"/t/{shop.slug}/catalog/bundles/{bundle.id}"
    login(client, shop.members["operator"])
    assert "Family sharing (亲情共享)" in client.get(f"{base}/plans/new").get_data(as_text=True)
    fields = {"name": "家庭月卡", "period_unit": "month", "price": "25.90", "currency": "CNY"}
    client.post(f"{base}/plans/new", data={**fields, "family_sharing": "y", "family_max_members": "4"})
    client.post(f"{base}/plans/new", data={**fields, "name": "单人月卡"})
    with shop.bound():
        family, single = (
            db.session.scalars(select(Plan).where(Plan.name == n)).one() for n in ("家庭月卡", "单人月卡")
        )
        assert (family.family_sharing, family.family_max_members) == (True, 4)
        assert family.snapshot()["plan"]["family_max_members"] == 4
        assert (single.family_sharing, single.snapshot()["plan"]["family_max_members"]) == (False, 0)
