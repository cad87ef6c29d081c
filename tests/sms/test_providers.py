"""Aliyun and Tencent Cloud SMS: a local server stands in for each cloud and checks the signature the product
sends against the cloud's published algorithm, recomputed here independently. Never the network."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from orders.models import Delivery
from saas.extensions import db
from tests.factories import Shop, login
from tests.orders.factories import add_keys, make_product, place_order

SECRET = "s3cr/et+key"  # characters that must be percent-encoded in the URL


class Cloud:
    """A stand-in provider: records each request and answers with `answer`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {})


@pytest.fixture
def cloud() -> Iterator[tuple[Cloud, str]]:
    state = Cloud()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": self.rfile.read(length) if length else b"",
                }
            )
            status, body = state.answer
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _templates(shop: Shop) -> None:
    shop.tenant.settings = {
        **shop.tenant.settings,
        "sms": {"sign_name": "权益小铺", "templates": {"delivery": "SMS_123456"}},
    }
    db.session.commit()


def _order(shop: Shop, external_id: str) -> int:
    with shop.bound():
        _templates(shop)
        product = make_product()
        add_keys(product.right, 1)
        return place_order(product, external_id, paid=True, email=None).id


def aliyun_encode(value: str) -> str:
    """Aliyun's percentEncode, as its documentation builds it from a form encoder."""
    return quote_plus(value, encoding="utf-8").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


@pytest.fixture
def aliyun_app_config(app_config: dict[str, Any], cloud: tuple[Cloud, str]) -> dict[str, Any]:
    app_config["SMS_URL"] = f"aliyun://LTAIkey:{quote_plus(SECRET)}@?endpoint={cloud[1]}"
    return app_config


@pytest.fixture
def tencent_app_config(app_config: dict[str, Any], cloud: tuple[Cloud, str]) -> dict[str, Any]:
    app_config["SMS_URL"] = (
        f"tencent://AKIDsecretid:{quote_plus(SECRET)}@?sdk_app_id=1400006666&sign_name=默认签名"
        f"&endpoint={cloud[1]}"
    )
    return app_config


def test_aliyun_receives_a_correctly_signed_send_sms(
    cloud: tuple[Cloud, str], app_config: dict[str, Any], aliyun_app_config: dict[str, Any], shop: Shop
) -> None:
    state, _ = cloud
    state.answer = (200, {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0"})
    order_id = _order(shop, "ALI-1")
    (request,) = state.requests
    assert request["method"] == "GET"
    params = dict(parse_qsl(urlsplit(request["path"]).query, keep_blank_values=True))
    signature = params.pop("Signature")
    canonical = "&".join(f"{aliyun_encode(k)}={aliyun_encode(params[k])}" for k in sorted(params))
    to_sign = "GET&" + aliyun_encode("/") + "&" + aliyun_encode(canonical)
    expected = base64.b64encode(hmac.new((SECRET + "&").encode(), to_sign.encode(), hashlib.sha1).digest())
    assert signature == expected.decode()
    assert params["Action"] == "SendSms" and params["Version"] == "2017-05-25"
    assert params["AccessKeyId"] == "LTAIkey" and params["SignatureMethod"] == "HMAC-SHA1"
    assert params["PhoneNumbers"] == "13800000000" and params["SignName"] == "权益小铺"
    assert params["TemplateCode"] == "SMS_123456"
    template = json.loads(params["TemplateParam"])
    assert template["order"] == "ALI-1" and "/m/" in template["link"]
    with shop.bound():
        (log,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order_id))
        assert (log.method, log.status, log.attempts) == ("sms", "sent", 1)


def test_a_refusing_provider_leaves_the_attempt_and_its_error_on_the_order(
    cloud: tuple[Cloud, str],
    app_config: dict[str, Any],
    aliyun_app_config: dict[str, Any],
    shop: Shop,
    client: FlaskClient,
) -> None:
    state, _ = cloud
    state.answer = (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控"})
    order_id = _order(shop, "ALI-2")
    with shop.bound():
        (log,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order_id))
        assert (log.status, log.attempts) == ("queued", 1)  # retried later by the sweep
        assert "isv.BUSINESS_LIMIT_CONTROL" in log.last_error
    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/orders/{order_id}").get_data(as_text=True)
    assert "isv.BUSINESS_LIMIT_CONTROL" in page and "+8613800000000" in page


def test_tencent_receives_a_correctly_signed_send_sms(
    cloud: tuple[Cloud, str], tencent_app_config: dict[str, Any], app: Flask, shop: Shop
) -> None:
    state, _ = cloud
    state.answer = (
        200,
        {"Response": {"SendStatusSet": [{"Code": "Ok", "SerialNo": "2028:1"}], "RequestId": "r-1"}},
    )
    assert app.config["SMS_URL"].startswith("tencent://")
    order_id = _order(shop, "TC-1")
    (sent,) = state.requests
    headers, body = sent["headers"], sent["body"]
    assert sent["method"] == "POST" and headers["x-tc-action"] == "SendSms"
    assert headers["x-tc-version"] == "2021-01-11"
    timestamp = int(headers["x-tc-timestamp"])
    date = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")
    canonical_headers = f"content-type:{headers['content-type']}\nhost:{headers['host']}\n"
    canonical = f"POST\n/\n\n{canonical_headers}\ncontent-type;host\n{hashlib.sha256(body).hexdigest()}"
    scope = f"{date}/sms/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = hmac.new(("TC3" + SECRET).encode(), date.encode(), hashlib.sha256).digest()
    key = hmac.new(key, b"sms", hashlib.sha256).digest()
    key = hmac.new(key, b"tc3_request", hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert headers["authorization"] == (
        f"TC3-HMAC-SHA256 Credential=AKIDsecretid/{scope}, SignedHeaders=content-type;host, "
        f"Signature={signature}"
    )
    payload = json.loads(body)
    assert payload["PhoneNumberSet"] == ["+8613800000000"] and payload["SmsSdkAppId"] == "1400006666"
    assert payload["SignName"] == "权益小铺" and payload["TemplateId"] == "SMS_123456"
    shop_name, order, link = payload["TemplateParamSet"]  # positional: {1} {2} {3}
    assert order == "TC-1" and "/m/" in link and shop_name == shop.tenant.name
    with shop.bound():
        (log,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order_id))
        assert (log.method, log.status) == ("sms", "sent")


def test_tencent_errors_are_the_records_error(
    cloud: tuple[Cloud, str], tencent_app_config: dict[str, Any], shop: Shop
) -> None:
    state, _ = cloud
    state.answer = (200, {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "x"}}})
    order_id = _order(shop, "TC-2")
    with shop.bound():
        (log,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order_id))
        assert log.status == "queued" and "AuthFailure.SignatureFailure" in log.last_error


def test_without_templates_a_phone_only_customer_is_not_texted_by_a_real_provider(
    cloud: tuple[Cloud, str], app_config: dict[str, Any], aliyun_app_config: dict[str, Any], shop: Shop
) -> None:
    state, _ = cloud
    with shop.bound():
        product = make_product()
        add_keys(product.right, 1)
        order_id = place_order(product, "ALI-3", paid=True, email=None).id
        (log,) = db.session.scalars(select(Delivery).where(Delivery.order_id == order_id))
        assert log.status == "skipped" and log.method == "page"
    assert state.requests == []
