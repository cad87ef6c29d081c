"""微信支付 WeChat Pay API v3: payment (TRANSACTION.SUCCESS) and refund (REFUND.SUCCESS) notifications.

Signature: `Wechatpay-Signature` is base64 SHA256withRSA over "{Wechatpay-Timestamp}\\n{Wechatpay-Nonce}\\n
{raw body}\\n", made with the key `Wechatpay-Serial` names: the platform public key (`PUB_KEY_ID_…`) or,
for merchants still on platform certificates, a certificate's serial (both may be configured while a
merchant migrates). Timestamps more than 5 minutes off are refused, and so are WeChat's signature probes
(`WECHATPAY/SIGNTEST/…`). WeChat resends a notification (same `id`) whenever an answer takes over 5 s, so
the inbox dedupes on `id`. The `resource` is AEAD_AES_256_GCM under the 32-byte APIv3 key with its nonce
and associated data: the endpoint opens it before storing (a delivery that will not open is answered
4xx, so WeChat retries it once the key is fixed) and processing opens it again from the stored raw body.
Amounts are integers in fen. Answers: 204 when stored, 4xx `{"code": "FAIL", "message": …}` otherwise.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from integrations.adapters import platform_keys
from integrations.adapters.base import (
    ChannelAdapter,
    Envelope,
    Event,
    ExternalCustomer,
    Ignored,
    InvalidCredentials,
    InvalidDelivery,
    OrderPaid,
    RefundReported,
    attached_line,
    header,
    load_json,
    parse_time,
    text,
)

TOLERANCE_SECONDS = 300
SIGNATURE_PROBE = "WECHATPAY/SIGNTEST/"
API_V3_KEY_BYTES = 32


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """Return what WeChat Pay signs: "{timestamp}\\n{nonce}\\n{body}\\n"."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def key_for_serial(credentials: dict[str, Any], serial: str) -> str | None:
    """Return the key (PEM text) the `Wechatpay-Serial` names: the public key id or a certificate serial."""
    if serial and serial == credentials.get("platform_public_key_id"):
        return str(credentials.get("platform_public_key") or "") or None
    for certificate in credentials.get("platform_certificates") or []:
        if str(certificate.get("serial", "")).upper() == serial.upper():
            return str(certificate.get("pem") or "") or None
    return None


def decrypt_resource(resource: dict[str, Any], api_v3_key: str) -> bytes:
    """Open an AEAD_AES_256_GCM resource with the APIv3 key; InvalidTag or ValueError if it will not."""
    key = api_v3_key.encode()
    if len(key) != API_V3_KEY_BYTES:
        raise ValueError("the APIv3 key is not 32 bytes")
    return AESGCM(key).decrypt(
        str(resource.get("nonce") or "").encode(),
        base64.b64decode(str(resource.get("ciphertext") or ""), validate=True),
        str(resource.get("associated_data") or "").encode() or None,
    )


class WeChatPayAdapter(ChannelAdapter):
    slug = "wechatpay"
    label = _l("WeChat Pay")
    signature_header = "Wechatpay-Signature"
    ref_kinds = ("sku",)
    credential_fields = (
        "mch_id",
        "app_id",
        "api_v3_key",
        "platform_public_key",
        "platform_public_key_id",
        "platform_certificates",
    )
    default_fee_bp = 60  # 0.6 %, WeChat Pay's standard rate for most categories

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        signature = header(headers, "wechatpay-signature") or ""
        timestamp = header(headers, "wechatpay-timestamp") or ""
        nonce = header(headers, "wechatpay-nonce") or ""
        serial = (header(headers, "wechatpay-serial") or "").strip()
        if not signature or signature.startswith(SIGNATURE_PROBE) or not nonce or not serial:
            return False
        if not timestamp.isdigit() or len(timestamp) > 12 or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
            return False
        message = signed_message(timestamp, nonce, body)
        for secret in secrets:
            credentials = platform_keys.credentials_of(secret) or {}
            key = key_for_serial(credentials, serial)
            if key and platform_keys.verify_rsa_sha256(key, message, signature):
                return True
        return False

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        payload = load_json(body)
        notification_id = text(payload.get("id"), 120)
        if not notification_id:
            raise InvalidDelivery(_("The notification has no id."))
        resource = payload.get("resource")
        if not isinstance(resource, dict) or not resource.get("ciphertext"):
            raise InvalidDelivery(_("The notification has no encrypted resource."))
        return Envelope(text(payload.get("event_type"), 80), f"wechatpay:{notification_id}")

    def describe_with(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes]) -> Envelope:
        envelope = self.describe(headers, body)
        resource = self.contents(body, secrets)["resource"]
        return Envelope(
            envelope.topic, envelope.dedupe_key, None, text(resource.get("out_trade_no"), 128) or None
        )

    def contents(self, body: bytes, secrets: list[bytes]) -> dict[str, Any]:
        payload = load_json(body)
        resource = payload.get("resource")
        if not isinstance(resource, dict):
            raise InvalidDelivery(_("The notification has no encrypted resource."))
        for secret in secrets:
            credentials = platform_keys.credentials_of(secret) or {}
            try:
                plain = decrypt_resource(resource, str(credentials.get("api_v3_key") or ""))
            except (InvalidTag, ValueError, TypeError, binascii.Error):
                continue
            try:
                opened = json.loads(plain)
            except ValueError as error:
                raise InvalidDelivery(_("The decrypted resource is not JSON.")) from error
            if not isinstance(opened, dict):
                raise InvalidDelivery(_("The decrypted resource is not JSON."))
            self._check_merchant(opened, credentials)
            return {**payload, "resource": opened}
        raise InvalidDelivery(
            _("The resource does not decrypt with this channel's APIv3 key (check the key set here)."), 400
        )

    def _check_merchant(self, resource: dict[str, Any], credentials: dict[str, Any]) -> None:
        for field, configured in (("mchid", "mch_id"), ("appid", "app_id")):
            got, want = text(resource.get(field), 64), text(credentials.get(configured), 64)
            if got and want and got != want:
                raise InvalidDelivery(
                    _(
                        "The notification is for %(field)s %(got)s; this channel is set up for %(want)s.",
                        field=field,
                        got=got,
                        want=want,
                    )
                )

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        resource = payload.get("resource") or {}
        if topic == "TRANSACTION.SUCCESS":
            return [self._paid(resource)]
        if topic == "REFUND.SUCCESS":
            return [self._refund(resource)]
        return [Ignored(_("WeChat Pay notification %(type)s is not used.", type=topic or "?"))]

    def _paid(self, resource: dict[str, Any]) -> Event:
        if resource.get("trade_state", "SUCCESS") != "SUCCESS":
            return Ignored(_("trade_state %(s)s: not paid.", s=text(resource.get("trade_state"), 40)))
        out_trade_no = text(resource.get("out_trade_no"), 128)
        if not out_trade_no:
            raise InvalidDelivery(_("The payment has no out_trade_no."))
        amount = resource.get("amount") or {}
        total = amount.get("total")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise InvalidDelivery(_("amount.total must be a whole number of fen."))
        payer = resource.get("payer") or {}
        return OrderPaid(
            external_id=out_trade_no,
            currency=text(amount.get("currency"), 3).upper() or "CNY",
            total=total,
            lines=[attached_line(resource.get("attach"), total, text(resource.get("description"), 200))],
            customer=ExternalCustomer(external_id=text(payer.get("openid"), 128) or None),
            placed_at=parse_time(resource.get("success_time")),
            payment_reference=text(resource.get("transaction_id"), 128) or None,
        )

    def _refund(self, resource: dict[str, Any]) -> Event:
        out_trade_no = text(resource.get("out_trade_no"), 128)
        refund_id = text(resource.get("out_refund_no") or resource.get("refund_id"), 100)
        refund = (resource.get("amount") or {}).get("refund")
        if not out_trade_no or not refund_id:
            raise InvalidDelivery(_("The refund has no out_trade_no or out_refund_no."))
        if isinstance(refund, bool) or not isinstance(refund, int) or refund < 0:
            raise InvalidDelivery(_("amount.refund must be a whole number of fen."))
        return RefundReported(out_trade_no, refund_id, refund, _("refunded through WeChat Pay"))

    def reply(self, status: int, answer: dict[str, Any]) -> tuple[int, str, bytes] | None:
        if status < 400:
            return 204, "", b""
        message = str(answer.get("message") or answer.get("code") or "refused")
        body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode()
        return status, "application/json", body

    def check_credentials(self, credentials: dict[str, Any]) -> dict[str, Any]:
        cleaned: dict[str, Any] = {
            "mch_id": platform_keys.required_text(credentials, "mch_id", 32),
            "app_id": platform_keys.required_text(credentials, "app_id", 64),
            "api_v3_key": platform_keys.required_text(credentials, "api_v3_key", 64),
        }
        if len(cleaned["api_v3_key"].encode()) != API_V3_KEY_BYTES:
            raise InvalidCredentials(str(_l("credentials.api_v3_key is the 32-character APIv3 key.")))
        if credentials.get("platform_public_key") or credentials.get("platform_public_key_id"):
            key_id = platform_keys.required_text(credentials, "platform_public_key_id", 64)
            if not key_id.startswith("PUB_KEY_ID_"):
                raise InvalidCredentials(
                    str(_l("credentials.platform_public_key_id starts with PUB_KEY_ID_."))
                )
            cleaned["platform_public_key_id"] = key_id
            cleaned["platform_public_key"] = platform_keys.checked_key(
                credentials.get("platform_public_key"), "credentials.platform_public_key"
            )
        certificates = credentials.get("platform_certificates") or []
        if not isinstance(certificates, list) or len(certificates) > 10:
            raise InvalidCredentials(str(_l("credentials.platform_certificates is a list of {serial, pem}.")))
        cleaned_certificates = []
        for certificate in certificates:
            if not isinstance(certificate, dict):
                raise InvalidCredentials(
                    str(_l("credentials.platform_certificates is a list of {serial, pem}."))
                )
            cleaned_certificates.append(
                {
                    "serial": platform_keys.required_text(certificate, "serial", 64).upper(),
                    "pem": platform_keys.checked_key(certificate.get("pem"), "platform_certificates[].pem"),
                }
            )
        if cleaned_certificates:
            cleaned["platform_certificates"] = cleaned_certificates
        if "platform_public_key" not in cleaned and not cleaned_certificates:
            raise InvalidCredentials(
                str(
                    _l(
                        "Give the WeChat Pay public key (platform_public_key and platform_public_key_id), "
                        "or platform_certificates, or both while migrating."
                    )
                )
            )
        return cleaned

    def credentials_hint(self, credentials: dict[str, Any]) -> str:
        return text(credentials.get("mch_id"), 16)

    def setup_steps(self, url: str) -> list[str]:
        return [
            _(
                "In the WeChat Pay merchant platform (pay.weixin.qq.com), open 账户中心 → API安全: set the "
                "APIv3 key (32 characters) and download the WeChat Pay public key (微信支付公钥) with its "
                "id PUB_KEY_ID_…; enter them, your 商户号 mch_id and your AppID under Credentials below."
            ),
            _(
                "Merchants still on platform certificates (平台证书): add each certificate's serial and PEM "
                "as well; both verify while you migrate."
            ),
            _(
                "When your checkout places an order (JSAPI, Native, H5 or App 下单), set notify_url to "
                "%(url)s and out_trade_no to your order number.",
                url=url,
            ),
            _(
                "Either create the order here first (POST /api/v1/orders, unpaid, with external_id = "
                "out_trade_no and channel = %(channel)s), or put the plan's SKU in attach and map it below.",
                channel=url.rstrip("/").rsplit("/", 1)[-1],
            ),
            _(
                "Refunds (申请退款) with the same notify_url send REFUND.SUCCESS here; partial refunds are "
                "applied one by one."
            ),
        ]
