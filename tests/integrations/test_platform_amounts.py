"""Platform amounts are read by saas.money per currency: yen are not cents, and a bad amount is refused."""

from __future__ import annotations

import pytest

from integrations.adapters import adapter_for
from integrations.adapters.base import InvalidDelivery, OrderPaid
from tests.integrations import factories as f


def test_a_yen_order_is_read_in_yen_not_in_hundredths() -> None:
    payload = f.shopify_order(7001, price="1200")
    payload["currency"] = "JPY"
    (event,) = adapter_for("shopify").parse("orders/paid", {}, payload)
    assert isinstance(event, OrderPaid)
    assert event.total == 1200 and event.lines[0].unit_price == 1200


def test_woocommerce_per_unit_prices_computed_by_division_are_rounded_to_the_fen() -> None:
    payload = f.woo_order(812, price=20.0)
    payload["line_items"][0]["price"] = 6.666666666666667  # 20.00 for three units
    event = adapter_for("woocommerce").parse("order.updated", {}, payload)[0]
    assert isinstance(event, OrderPaid)
    assert event.lines[0].unit_price == 667 and event.total == 2000


@pytest.mark.parametrize("bad", ["abc", "19.999", "-5.00", "1e9", "99999999999999999999"])
def test_an_amount_that_is_not_one_makes_the_delivery_invalid_not_a_missing_price(bad: str) -> None:
    with pytest.raises(InvalidDelivery, match="price"):
        adapter_for("shopify").parse("orders/paid", {}, f.shopify_order(7002, price=bad))
