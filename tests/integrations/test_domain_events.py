"""What happens inside the product reaches the merchant's outbound webhook endpoints, once each."""

from __future__ import annotations

import json

from orders import redemption, refunds
from tests.factories import Shop
from tests.integrations.test_outbound import Receiver, receiver  # noqa: F401 - the fixture
from tests.orders import factories as o


def event_types(received: list[tuple[dict[str, str], bytes]]) -> list[str]:
    return [json.loads(body)["type"] for _headers, body in received]


def test_fulfilment_redemption_and_refund_of_an_api_order_are_announced(
    shop: Shop,
    receiver: Receiver,  # noqa: F811
) -> None:
    from integrations import outbound

    with shop.bound():
        outbound.create_endpoint(receiver.url, ["order.fulfilled", "grant.redeemed", "order.refunded"])
        product = o.make_product(o.make_right())
        o.add_keys(product.rights[0], 3)
        order = o.place_order(product, "API-1", paid=True)
        (grant,) = o.grants_of(order.id)
        grant_id = grant.id
        redemption.redeem_grant(grant_id, source="api")
        redemption.redeem_grant(grant_id, source="api")  # a repeat announces nothing
        refunds.refund(
            refunds.RefundRequest(order_id=order.id, reason="customer asked", source="back_office")
        )
    assert event_types(receiver.received) == ["order.fulfilled", "grant.redeemed", "order.refunded"]
    redeemed = json.loads(receiver.received[1][1])["data"]
    assert redeemed["grant_id"] == str(grant_id) and redeemed["source"] == "api"
