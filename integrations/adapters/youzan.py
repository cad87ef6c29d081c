"""有赞 Youzan push messages (消息推送): paid trades, closed trades and refunds.

Signature: the header `Event-Sign` is the hex md5 of client_id + raw body + client_secret; a message for
another shop (`kdt_id`) does not verify. The trade is in `msg`: URL-encoded JSON of the full order in the
classic messages, an object in the newer `youzan_trade_*` ones; both are read. Lines carry the
merchant's own codes `outer_sku_id` (mapped as SKUs) and `outer_item_id` (mapped as product ids); money is
yuan as text. Repeats share `msg_id` (else the message's id, type and version), the dedupe key. The
answer Youzan waits for is `{"code": 0, "msg": "success"}`.

Syncing a redemption (核销) back to Youzan's virtual-code API needs OAuth over the network: that is the
`VirtualCodeSync` extension point below, deliberately not implemented here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import unquote

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from integrations.adapters import platform_keys
from integrations.adapters.base import (
    ChannelAdapter,
    Envelope,
    Event,
    ExternalCustomer,
    ExternalLine,
    Ignored,
    InvalidDelivery,
    OrderCancelled,
    OrderPaid,
    RefundReported,
    amount_of,
    header,
    load_json,
    parse_beijing_time,
    quantity,
    text,
)

PAID_TYPES = ("trade_TradePaid", "youzan_trade_TradePaid", "trade_TradeBuyerPay")
CLOSED_TYPES = ("trade_TradeClose", "youzan_trade_TradeClose")
REFUND_TYPES = (
    "trade_refund_RefundSuccess",
    "trade_refund_RefundSellerAgree",
    "trade_refund_SysRefund",
    "youzan_trade_RefundSuccess",
    "youzan_trade_RefundSellerAgree",
)


class VirtualCodeSync(Protocol):
    """Extension point: tell Youzan a virtual code (电子卡券) was redeemed here (核销), over its OAuth API.

    Not built: it needs an access token for the shop (youzan.oauth.token) and calls
    youzan.trade.virtualcode.verify over the network. An implementation registers itself in
    `virtual_code_sync`; until then redemptions stay in Quanyi only.
    """

    def redeemed(self, kdt_id: str, tid: str, code: str) -> None: ...


virtual_code_sync: VirtualCodeSync | None = None


def event_sign(client_id: str, body: bytes, client_secret: str) -> str:
    """Return Youzan's Event-Sign: hex md5(client_id + body + client_secret)."""
    return hashlib.md5(client_id.encode() + body + client_secret.encode()).hexdigest()


def decoded_msg(payload: dict[str, Any]) -> dict[str, Any]:
    """Return a message's `msg` as an object (URL-encoded JSON text, or already an object)."""
    msg = payload.get("msg")
    if isinstance(msg, dict):
        return msg
    if not isinstance(msg, str) or not msg:
        return {}
    try:
        found = json.loads(unquote(msg))
    except ValueError as error:
        raise InvalidDelivery(_("msg is not URL-encoded JSON.")) from error
    return found if isinstance(found, dict) else {}


def yuan(value: Any) -> int | None:
    """Read Youzan's yuan text as fen."""
    return amount_of(value, "CNY", "amount")


class YouzanAdapter(ChannelAdapter):
    slug = "youzan"
    label = _l("Youzan")
    signature_header = "Event-Sign"
    ref_kinds = ("sku", "product")
    credential_fields = ("client_id", "client_secret", "kdt_id")
    default_fee_bp = 60  # 0.6 %, Youzan's payment service fee (有赞担保交易)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        given = (header(headers, "event-sign") or "").strip().lower()
        if not given:
            return False
        shop: str | None = None
        for secret in secrets:
            credentials = platform_keys.credentials_of(secret) or {}
            client_id, client_secret = credentials.get("client_id"), credentials.get("client_secret")
            if not client_id or not client_secret:
                continue
            if not hmac.compare_digest(event_sign(client_id, body, client_secret), given):
                continue
            if shop is None:
                try:
                    shop = text(load_json(body).get("kdt_id"), 40)
                except InvalidDelivery:
                    return False
            if not shop or shop == text(credentials.get("kdt_id"), 40):
                return True
        return False

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        payload = load_json(body)
        kind = text(payload.get("type") or header(headers, "event-type"), 80)
        msg = decoded_msg(payload)
        tid = text(payload.get("id") if kind in PAID_TYPES + CLOSED_TYPES else "", 128) or _tid(msg)
        message_id = text(payload.get("msg_id"), 120)
        if not message_id:
            message_id = f"{kind}:{text(payload.get('id'), 60)}:{text(payload.get('version'), 30)}"
            if message_id == f"{kind}::":
                raise InvalidDelivery(_("The message has no msg_id and no id."))
        return Envelope(kind, f"youzan:{message_id}"[:200], None, tid or None)

    def contents(self, body: bytes, secrets: list[bytes]) -> dict[str, Any]:
        payload = load_json(body)
        return {**payload, "msg": decoded_msg(payload)}

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        if payload.get("test") in (True, "true"):
            return [Ignored(_("A Youzan test push: nothing to do."))]
        msg = payload.get("msg") if isinstance(payload.get("msg"), dict) else {}
        assert isinstance(msg, dict)
        if topic in PAID_TYPES:
            return [self._paid(msg, text(payload.get("id"), 128))]
        if topic in CLOSED_TYPES:
            tid = _tid(msg) or text(payload.get("id"), 128)
            return [OrderCancelled(tid, _("the Youzan trade was closed"))]
        if topic in REFUND_TYPES:
            return [self._refund(msg)]
        return [Ignored(_("Youzan message %(type)s is not used.", type=topic or "?"))]

    def _paid(self, msg: dict[str, Any], fallback_tid: str) -> Event:
        full = msg.get("full_order_info") or {}
        order_info = full.get("order_info") or {}
        tid = text(order_info.get("tid"), 128) or fallback_tid
        if not tid:
            raise InvalidDelivery(_("The trade has no tid."))
        pay_info = full.get("pay_info") or {}
        total = yuan(pay_info.get("payment"))
        lines = []
        for item in full.get("orders") or []:
            if not isinstance(item, dict):
                raise InvalidDelivery(_("Each line must be an object."))
            refs = [
                (kind, text(item.get(key), 200))
                for key, kind in (("outer_sku_id", "sku"), ("outer_item_id", "product"))
                if text(item.get(key), 200)
            ]
            count = quantity(item.get("num", 1))
            paid = yuan(item.get("payment"))
            unit = paid // count if paid is not None else yuan(item.get("price"))
            lines.append(ExternalLine(refs, count, unit, text(item.get("title"), 200)))
        if not lines:
            lines.append(ExternalLine([], 1, total, ""))
        buyer = full.get("buyer_info") or {}
        return OrderPaid(
            external_id=tid,
            currency="CNY",
            total=total,
            lines=lines,
            customer=ExternalCustomer(
                phone=text(buyer.get("buyer_phone"), 32) or None,
                name=text(buyer.get("fans_nickname"), 120),
                external_id=text(
                    buyer.get("yz_open_id") or buyer.get("fans_id") or buyer.get("buyer_id"), 128
                )
                or None,
            ),
            placed_at=parse_beijing_time(order_info.get("pay_time") or order_info.get("created")),
            payment_reference=text(
                (
                    (pay_info.get("transaction") or [None])[0]
                    if isinstance(pay_info.get("transaction"), list)
                    else pay_info.get("transaction")
                ),
                128,
            )
            or None,
        )

    def _refund(self, msg: dict[str, Any]) -> Event:
        tid, refund_id = _tid(msg), text(msg.get("refund_id"), 100)
        if not tid or not refund_id:
            raise InvalidDelivery(_("The refund has no tid or refund_id."))
        return RefundReported(
            tid,
            refund_id,
            yuan(msg.get("refunded_fee")),
            text(msg.get("refund_reason"), 500) or _("refunded on Youzan"),
        )

    def reply(self, status: int, answer: dict[str, Any]) -> tuple[int, str, bytes] | None:
        if status < 400:
            return status, "application/json", b'{"code": 0, "msg": "success"}'
        message = str(answer.get("message") or "refused")
        return status, "application/json", json.dumps({"code": status, "msg": message}).encode()

    def check_credentials(self, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "client_id": platform_keys.required_text(credentials, "client_id", 64),
            "client_secret": platform_keys.required_text(credentials, "client_secret", 128),
            "kdt_id": platform_keys.required_text(credentials, "kdt_id", 40),
        }

    def credentials_hint(self, credentials: dict[str, Any]) -> str:
        return text(credentials.get("kdt_id"), 16)

    def setup_steps(self, url: str) -> list[str]:
        return [
            _(
                "In the Youzan cloud console (console.youzanyun.com), open your application: copy its "
                "client_id and client_secret, and your shop's 店铺 id (kdt_id), into Credentials below."
            ),
            _(
                "Open 消息推送, set the push URL to %(url)s, and subscribe to trade_TradePaid, "
                "trade_TradeClose and the refund messages (trade_refund_RefundSuccess, "
                "trade_refund_RefundSellerAgree).",
                url=url,
            ),
            _(
                "Give each product or SKU your plan's code as 商品编码 / 规格编码 (outer_item_id / "
                "outer_sku_id) and map those codes below, or create the order here first with "
                "external_id = the Youzan tid and channel = %(channel)s.",
                channel=url.rstrip("/").rsplit("/", 1)[-1],
            ),
        ]


def _tid(msg: dict[str, Any]) -> str:
    order_info = (msg.get("full_order_info") or {}).get("order_info") or {}
    return text(msg.get("tid") or order_info.get("tid"), 128)
