"""WeChat Pay v3, Alipay and Youzan notifications, signed and encrypted here as the platforms publish it.

Keys are generated in the tests (never real ones). Everything is computed with `cryptography`, hashlib and
urllib from the published algorithms, not with the code under test:

- WeChat Pay: SHA256withRSA over "{timestamp}\\n{nonce}\\n{body}\\n", base64; the resource is
  AEAD_AES_256_GCM under the APIv3 key, ciphertext base64 with the tag appended.
- Alipay: RSA2 over the sorted `k=v&…` of every parameter but sign and sign_type; the form is URL-encoded
  in its charset.
- Youzan: Event-Sign = md5(client_id + body + client_secret), hex.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import itertools
import json
import os
import time
from typing import Any
from urllib.parse import quote, urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from integrations import channels
from integrations.channels import ChannelSettings
from integrations.models import Channel
from tests.integrations.factories import Delivery

_serial = itertools.count(1)
MCH_ID = "1900000109"
APP_ID = "wx8888888888888888"
API_V3_KEY = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"  # 32 characters
PUB_KEY_ID = "PUB_KEY_ID_0119000001092026120400000001"
CERT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
ALIPAY_APP_ID = "2021004100000001"
YOUZAN_CLIENT_ID = "c0ffee0123456789ab"
YOUZAN_SECRET = "youzan-client-secret-0123456789"
YOUZAN_KDT_ID = "91001234"


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """Return a 2048-bit RSA key generated for this test run, one per name."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(name: str) -> str:
    return (
        rsa_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def bare_public_key(name: str) -> str:
    """The public key as the Alipay console shows it: base64 of the DER, no PEM armour."""
    der = (
        rsa_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode()


def certificate_pem(name: str) -> str:
    """A self-signed certificate for the key, standing in for a WeChat Pay platform certificate."""
    key = rsa_key(name)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int(CERT_SERIAL, 16))
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def rsa_sign(name: str, message: bytes) -> str:
    signature = rsa_key(name).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def make_platform_channel(kind: str, credentials: dict[str, Any], **settings: Any) -> Channel:
    channel, _secret = channels.create_channel(
        kind, ChannelSettings(name=f"{kind} 测试渠道", **settings), credentials=credentials
    )
    return channel


# ---------------------------------------------------------------- WeChat Pay v3


def wechat_credentials(key: str = "wechat-platform", api_v3_key: str = API_V3_KEY) -> dict[str, Any]:
    return {
        "mch_id": MCH_ID,
        "app_id": APP_ID,
        "api_v3_key": api_v3_key,
        "platform_public_key": public_pem(key),
        "platform_public_key_id": PUB_KEY_ID,
    }


def wechat_transaction(
    out_trade_no: str, total: int, *, attach: str = "", openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
) -> dict[str, Any]:
    return {
        "appid": APP_ID,
        "mchid": MCH_ID,
        "out_trade_no": out_trade_no,
        "transaction_id": f"42000012{next(_serial):012d}",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": attach,
        "success_time": "2026-12-04T20:00:00+08:00",
        "payer": {"openid": openid},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
    }


def wechat_refund(out_trade_no: str, refund: int, total: int, out_refund_no: str) -> dict[str, Any]:
    return {
        "mchid": MCH_ID,
        "out_trade_no": out_trade_no,
        "transaction_id": "4200000000000000000000000001",
        "out_refund_no": out_refund_no,
        "refund_id": f"50000000{next(_serial):022d}",
        "refund_status": "SUCCESS",
        "success_time": "2026-12-04T21:00:00+08:00",
        "user_received_account": "招商银行信用卡0403",
        "amount": {"total": total, "refund": refund, "payer_total": total, "payer_refund": refund},
    }


def wechat_encrypt(resource: dict[str, Any], api_v3_key: str, original_type: str) -> dict[str, Any]:
    nonce = base64.b32encode(os.urandom(10)).decode()[:12]
    associated_data = original_type
    plain = json.dumps(resource, ensure_ascii=False).encode()
    ciphertext = AESGCM(api_v3_key.encode()).encrypt(nonce.encode(), plain, associated_data.encode())
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def wechat_notification(
    resource: dict[str, Any],
    event_type: str = "TRANSACTION.SUCCESS",
    *,
    key: str = "wechat-platform",
    serial: str = PUB_KEY_ID,
    api_v3_key: str = API_V3_KEY,
    timestamp: int | None = None,
    notification_id: str | None = None,
    tamper: bool = False,
    signature: str | None = None,
) -> Delivery:
    original_type = "refund" if event_type.startswith("REFUND") else "transaction"
    document = {
        "id": notification_id or f"EV-2026120420{next(_serial):06d}",
        "create_time": "2026-12-04T20:00:01+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功" if original_type == "transaction" else "退款成功",
        "resource": wechat_encrypt(resource, api_v3_key, original_type),
    }
    body = json.dumps(document, ensure_ascii=False).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = base64.b32encode(os.urandom(20)).decode()
    signed = rsa_sign(key, stamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n")
    if tamper:
        body = body.replace(b'"summary"', b'"Summary"')
    return Delivery(
        body,
        {
            "Content-Type": "application/json",
            "Wechatpay-Timestamp": stamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature": signature or signed,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        },
    )


# ---------------------------------------------------------------- Alipay


def alipay_credentials(key: str = "alipay-platform", app_id: str = ALIPAY_APP_ID) -> dict[str, Any]:
    return {"app_id": app_id, "alipay_public_key": bare_public_key(key)}


def alipay_fields(out_trade_no: str, total: str, **extra: str) -> dict[str, str]:
    number = next(_serial)
    fields = {
        "notify_time": "2026-12-04 20:00:05",
        "notify_type": "trade_status_sync",
        "notify_id": f"ac05099524730693a8b330c5ecf72da{number:06d}",
        "charset": "utf-8",
        "version": "1.0",
        "app_id": ALIPAY_APP_ID,
        "trade_no": f"2026120422001{number:013d}",
        "out_trade_no": out_trade_no,
        "buyer_id": "2088102122524333",
        "seller_id": "2088101106499364",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": total,
        "receipt_amount": total,
        "subject": "影音畅享包 月卡",
        "gmt_create": "2026-12-04 19:59:50",
        "gmt_payment": "2026-12-04 20:00:00",
    }
    fields.update(extra)
    return fields


def alipay_notification(
    fields: dict[str, str],
    *,
    key: str = "alipay-platform",
    charset: str = "utf-8",
    tamper: dict[str, str] | None = None,
) -> Delivery:
    fields = dict(fields, charset=charset)
    content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type") and v)
    signed = dict(fields, sign_type="RSA2", sign=rsa_sign(key, content.encode(charset)))
    signed.update(tamper or {})
    body = urlencode(signed, encoding=charset).encode("ascii")
    return Delivery(body, {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"})


# ---------------------------------------------------------------- Youzan


def youzan_credentials(secret: str = YOUZAN_SECRET) -> dict[str, Any]:
    return {"client_id": YOUZAN_CLIENT_ID, "client_secret": secret, "kdt_id": YOUZAN_KDT_ID}


def youzan_trade(tid: str, payment: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "full_order_info": {
            "order_info": {
                "tid": tid,
                "status": "WAIT_SELLER_SEND_GOODS",
                "created": "2026-12-04 19:59:00",
                "pay_time": "2026-12-04 20:00:00",
            },
            "buyer_info": {"buyer_phone": "13800138000", "fans_nickname": "有赞买家", "yz_open_id": "yz-1"},
            "pay_info": {"payment": payment, "total_fee": payment, "post_fee": "0.00", "transaction": ["T1"]},
            "orders": lines,
        }
    }


def youzan_push(
    kind: str,
    msg: dict[str, Any],
    *,
    business_id: str = "",
    secret: str = YOUZAN_SECRET,
    kdt_id: str = YOUZAN_KDT_ID,
    msg_id: str | None = None,
    tamper: bool = False,
) -> Delivery:
    document = {
        "client_id": YOUZAN_CLIENT_ID,
        "id": business_id,
        "kdt_id": int(kdt_id),
        "kdt_name": "权益测试店",
        "mode": 1,
        "msg": quote(json.dumps(msg, ensure_ascii=False)),
        "msg_id": msg_id or f"youzan-msg-{next(_serial)}",
        "sendCount": 0,
        "status": "TRADE_PAID" if kind == "trade_TradePaid" else "",
        "test": False,
        "type": kind,
        "version": int(time.time()),
    }
    body = json.dumps(document, ensure_ascii=False).encode()
    sign = hashlib.md5(YOUZAN_CLIENT_ID.encode() + body + secret.encode()).hexdigest()
    if tamper:
        body = body.replace(b'"mode": 1', b'"mode": 2')
    return Delivery(
        body,
        {
            "Content-Type": "application/json",
            "Event-Sign": sign,
            "Event-Type": kind,
            "Client-Id": YOUZAN_CLIENT_ID,
        },
    )
