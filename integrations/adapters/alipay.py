"""支付宝 Alipay asynchronous notifications (异步通知): trade_status_sync for payments and refunds.

A form POST. Signature: RSA2 (SHA256withRSA, base64 `sign`) over the `k=v&…` string of every parameter but
`sign` and `sign_type`, sorted by name, values URL-decoded, in the notification's `charset`; checked with
the Alipay public key (支付宝公钥) of the channel whose `app_id` the notification names. Alipay's own SDKs
leave empty values out of the string; a string with them is accepted too. Alipay retries for 25 hours
until it reads the plain text `success`; repeats share `notify_id`, the dedupe key.

`TRADE_SUCCESS` / `TRADE_FINISHED` pay (`total_amount` is yuan as text). A refund arrives as a notification
with `refund_fee` (the total refunded so far) and `gmt_refund`; a full refund closes the trade
(`TRADE_CLOSED`). `TRADE_CLOSED` without a refund is an unpaid trade that timed out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from integrations.adapters import platform_keys
from integrations.adapters.base import (
    ChannelAdapter,
    Envelope,
    Event,
    ExternalCustomer,
    Ignored,
    InvalidDelivery,
    OrderCancelled,
    OrderPaid,
    RefundReported,
    amount_of,
    attached_line,
    parse_beijing_time,
    text,
)

FORM = "application/x-www-form-urlencoded"
PAID = ("TRADE_SUCCESS", "TRADE_FINISHED")
CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk", "gb18030": "gb18030"}


_CHARSET_FIELD = re.compile(rb"(?:^|&)charset=([A-Za-z0-9_-]{1,20})(?:&|$)")


@functools.lru_cache(maxsize=256)
def _parsed_form(body: bytes) -> tuple[tuple[str, str], ...] | None:
    """Parse a form once per body (verifying and describing a delivery both read it); None if unreadable."""
    named = _CHARSET_FIELD.search(body)
    charset = CHARSETS.get(named.group(1).decode().lower(), "utf-8") if named else "utf-8"
    try:
        pairs = parse_qsl(body.decode(charset), keep_blank_values=True, encoding=charset, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    return tuple(pairs)


def form_fields(body: bytes) -> dict[str, str]:
    """Read a notification's form fields, decoded in the charset it names; InvalidDelivery otherwise."""
    pairs = _parsed_form(bytes(body))
    if pairs is None:
        raise InvalidDelivery(_("The body is not a form in its charset."), 400)
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InvalidDelivery(_("A form field appears twice."), 400)
    return fields


def signed_content(fields: Mapping[str, str], *, with_empty: bool = False) -> str:
    """Return the string Alipay signs: sorted `k=v` of every field but sign and sign_type, joined by &."""
    return "&".join(
        f"{key}={value}"
        for key, value in sorted(fields.items())
        if key not in ("sign", "sign_type") and (with_empty or value != "")
    )


def fen(value: str | None) -> int | None:
    """Read Alipay's yuan text ("88.88") as fen."""
    return amount_of(value, "CNY", "amount")


class AlipayAdapter(ChannelAdapter):
    slug = "alipay"
    label = _l("Alipay")
    signature_header = "sign"  # a form field, not a header
    ref_kinds = ("sku",)
    content_types = (FORM,)
    credential_fields = ("app_id", "alipay_public_key")
    default_fee_bp = 60  # 0.6 %, Alipay's standard rate (当面付 / 电脑网站支付)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        try:
            fields = form_fields(body)
        except InvalidDelivery:
            return False
        signature = fields.get("sign", "")
        if not signature or fields.get("sign_type", "RSA2") != "RSA2":
            return False
        charset = CHARSETS.get(fields.get("charset", "utf-8").strip().lower(), "utf-8")
        contents = [signed_content(fields)]
        if any(value == "" for value in fields.values()):
            contents.append(signed_content(fields, with_empty=True))
        for secret in secrets:
            credentials = platform_keys.credentials_of(secret) or {}
            if not credentials.get("app_id") or credentials["app_id"] != fields.get("app_id"):
                continue
            key = str(credentials.get("alipay_public_key") or "")
            for content in contents:
                if platform_keys.verify_rsa_sha256(key, content.encode(charset), signature):
                    return True
        return False

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        fields = form_fields(body)
        notify_id = text(fields.get("notify_id"), 120)
        if not notify_id:
            raise InvalidDelivery(_("The notification has no notify_id."))
        topic = text(fields.get("trade_status") or fields.get("notify_type"), 60)
        if fields.get("refund_fee"):
            topic = f"{topic}.refund"
        return Envelope(
            topic,
            f"alipay:{notify_id}",
            text(fields.get("version"), 40) or None,
            text(fields.get("out_trade_no"), 128) or None,
        )

    def contents(self, body: bytes, secrets: list[bytes]) -> dict[str, Any]:
        return dict(form_fields(body))

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        status = text(payload.get("trade_status"), 40)
        out_trade_no = text(payload.get("out_trade_no"), 128)
        if not out_trade_no:
            raise InvalidDelivery(_("The notification has no out_trade_no."))
        refunded = fen(payload.get("refund_fee"))
        if refunded:
            refund_id = text(payload.get("out_biz_no"), 100) or f"{payload.get('trade_no')}@{refunded}"
            return [
                RefundReported(
                    out_trade_no, refund_id, refunded, _("refunded through Alipay"), cumulative=True
                )
            ]
        if status in PAID:
            return [self._paid(payload, out_trade_no)]
        if status == "TRADE_CLOSED":
            return [OrderCancelled(out_trade_no, _("the Alipay trade closed unpaid"))]
        return [Ignored(_("Alipay trade_status %(s)s is not used.", s=status or "?"))]

    def _paid(self, fields: dict[str, Any], out_trade_no: str) -> Event:
        total = fen(fields.get("total_amount"))
        if total is None or total < 0:
            raise InvalidDelivery(_("total_amount is not an amount in yuan."))
        passback = unquote(text(fields.get("passback_params"), 500))
        return OrderPaid(
            external_id=out_trade_no,
            currency="CNY",
            total=total,
            lines=[attached_line(passback, total, text(fields.get("subject"), 200))],
            customer=ExternalCustomer(
                external_id=text(fields.get("buyer_id") or fields.get("buyer_open_id"), 128) or None
            ),
            placed_at=parse_beijing_time(fields.get("gmt_payment") or fields.get("gmt_create")),
            payment_reference=text(fields.get("trade_no"), 128) or None,
        )

    def reply(self, status: int, answer: dict[str, Any]) -> tuple[int, str, bytes] | None:
        return status, "text/plain; charset=utf-8", b"success" if status < 400 else b"fail"

    def check_credentials(self, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "app_id": platform_keys.required_text(credentials, "app_id", 32),
            "alipay_public_key": platform_keys.checked_key(
                credentials.get("alipay_public_key"), "credentials.alipay_public_key"
            ),
        }

    def credentials_hint(self, credentials: dict[str, Any]) -> str:
        return text(credentials.get("app_id"), 16)

    def setup_steps(self, url: str) -> list[str]:
        return [
            _(
                "In the Alipay open platform (open.alipay.com), open your application → 开发设置 → "
                "接口加签方式, choose 公钥 (RSA2), and copy the Alipay public key (支付宝公钥, not your "
                "application's) and the APPID into Credentials below."
            ),
            _(
                "Set the application's 授权回调地址 / notify_url of every order (alipay.trade.*.pay) to "
                "%(url)s; Alipay posts the result there and waits for the word success.",
                url=url,
            ),
            _(
                "Either create the order here first (POST /api/v1/orders, unpaid, with external_id = "
                "out_trade_no and channel = %(channel)s), or put the plan's SKU in passback_params "
                "(URL-encoded) and map it below.",
                channel=url.rstrip("/").rsplit("/", 1)[-1],
            ),
            _("Refunds (alipay.trade.refund) notify the same URL; partial refunds are applied one by one."),
        ]
