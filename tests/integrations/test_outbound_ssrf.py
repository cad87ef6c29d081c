"""Outbound webhooks never reach into our network (SSRF): checked on save, before each send, on connect."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask_babel import force_locale
from sqlalchemy import select

from saas.config import BaseConfig, DevelopmentConfig, ProductionConfig
from saas.extensions import db
from tests.factories import Shop
from tests.integrations.test_outbound import Receiver
from tests.integrations.test_outbound import receiver as receiver  # the fixture

REAL_GETADDRINFO = socket.getaddrinfo
PUBLIC = "93.184.215.14"


@pytest.fixture(autouse=True)
def private_targets_refused(app: Flask) -> Iterator[None]:
    """Refuse private targets as production does (other outbound tests allow loopback); speak English."""
    app.config["OUTBOUND_WEBHOOKS_ALLOW_PRIVATE"] = False
    with force_locale("en"):
        yield


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A DNS we control: names in the dict resolve to their addresses, everything else as usual."""
    names: dict[str, list[str]] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in names:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
                for a in names[host]
            ]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def endpoint_count(shop: Shop) -> int:
    from integrations.models import WebhookEndpoint

    with shop.bound():
        return len(list(db.session.scalars(select(WebhookEndpoint.id))))


REFUSED = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "https://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
    "http://100.64.0.1/hook",  # carrier-grade NAT, not global
    "http://0.0.0.0:8000/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    f"https://user:secret@{PUBLIC}/hook",
    f"https://token@{PUBLIC}/hook",
    "http://no-such-host.invalid/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_an_endpoint_into_our_network_or_with_credentials_is_refused_and_not_saved(
    shop: Shop, url: str
) -> None:
    from integrations import outbound

    with shop.bound(), pytest.raises(outbound.EndpointError):
        outbound.create_endpoint(url, ["order.fulfilled"])
    assert endpoint_count(shop) == 0


def test_a_public_endpoint_is_accepted(shop: Shop, dns: dict[str, list[str]]) -> None:
    from integrations import outbound

    dns["hooks.merchant.example"] = [PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    with shop.bound():
        outbound.create_endpoint(f"https://{PUBLIC}/hook", ["order.fulfilled"])
        outbound.create_endpoint("https://hooks.merchant.example/quanyi", ["order.fulfilled"])
    assert endpoint_count(shop) == 2


def test_a_name_with_one_private_address_among_public_ones_is_refused(
    shop: Shop, dns: dict[str, list[str]]
) -> None:
    from integrations import outbound

    dns["mixed.merchant.example"] = [PUBLIC, "10.1.2.3"]
    with shop.bound(), pytest.raises(outbound.EndpointError, match="not on the public internet"):
        outbound.create_endpoint("https://mixed.merchant.example/hook", ["order.fulfilled"])


def test_a_name_that_later_resolves_into_our_network_is_not_sent_to(
    shop: Shop, dns: dict[str, list[str]], receiver: Receiver
) -> None:
    from integrations import outbound
    from integrations.models import OutboundDelivery

    port = receiver.server.server_port
    dns["rebind.merchant.example"] = [PUBLIC]
    with shop.bound():
        endpoint, _secret = outbound.create_endpoint(f"http://rebind.merchant.example:{port}/hook", ["*"])
        dns["rebind.merchant.example"] = ["127.0.0.1"]  # where our receiver listens
        outcome = outbound.send_test(endpoint)
        (delivery,) = db.session.scalars(select(OutboundDelivery))
        error = delivery.last_error
    assert receiver.received == []
    assert outcome == "retrying" and error is not None and "not on the public internet" in error


def test_the_connection_itself_refuses_a_non_public_peer(receiver: Receiver) -> None:
    from integrations import outbound

    status, error = outbound.post(receiver.url, b"{}", {"Content-Type": "application/json"})
    assert status is None and error is not None and "non-public" in error
    assert receiver.received == []


def test_with_private_targets_allowed_the_local_receiver_gets_it(app: Flask, receiver: Receiver) -> None:
    from integrations import outbound

    app.config["OUTBOUND_WEBHOOKS_ALLOW_PRIVATE"] = True
    status, error = outbound.post(receiver.url, b"{}", {}, allow_private=True)
    assert (status, error) == (200, None) and len(receiver.received) == 1


def test_credentials_in_the_url_are_refused_even_where_private_targets_are_allowed(
    app: Flask, shop: Shop
) -> None:
    from integrations import outbound

    app.config["OUTBOUND_WEBHOOKS_ALLOW_PRIVATE"] = True
    with shop.bound(), pytest.raises(outbound.EndpointError, match="passwords"):
        outbound.create_endpoint("http://admin:admin@127.0.0.1:9/hook", ["*"])


@pytest.mark.parametrize("config", [BaseConfig, DevelopmentConfig, ProductionConfig])
def test_only_the_test_configuration_allows_private_targets(config: type[BaseConfig]) -> None:
    assert config.OUTBOUND_WEBHOOKS_ALLOW_PRIVATE is False
