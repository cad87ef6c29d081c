"""No limit trusts a request header, and no limit lifts while Redis is down.

The client's own `X-Forwarded-For` never picks the address a limit counts; behind `TRUSTED_PROXY_COUNT`
proxies only the addresses they appended do. With Redis unreachable, every limit keeps counting in memory.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import Shop
from tests.saas.test_rate_limits import my_rights_link

Send = Callable[[FlaskClient, dict[str, str]], int]


@pytest.fixture
def proxies() -> int:
    return 0


@pytest.fixture
def app_config(app_config: dict[str, Any], proxies: int) -> dict[str, Any]:
    app_config["TRUSTED_PROXY_COUNT"] = proxies
    return app_config


def login(client: FlaskClient, headers: dict[str, str]) -> int:
    data = {"email": "someone@example.com", "password": "not-the-password"}
    return client.post("/login", data=data, headers=headers).status_code


def forgot(client: FlaskClient, headers: dict[str, str]) -> int:
    return client.post("/password/forgot", data={"email": "someone@example.com"}, headers=headers).status_code


def second_factor(client: FlaskClient, headers: dict[str, str]) -> int:
    return client.post("/login/code", data={"code": "123456"}, headers=headers).status_code


LIMITED: dict[str, tuple[str, Send]] = {
    "login": ("LOGIN_RATE_LIMIT", login),
    "password reset": ("PASSWORD_RESET_RATE_LIMIT", forgot),
    "two-factor code": ("LOGIN_RATE_LIMIT", second_factor),
}


def rotating(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{n + 1}", "X-Real-IP": f"198.51.100.{n + 1}"}


@pytest.mark.parametrize("limit", LIMITED.values(), ids=LIMITED.keys())
def test_a_rotated_forwarded_for_does_not_escape_a_per_address_limit(
    app: Flask, client: FlaskClient, limit: tuple[str, Send]
) -> None:
    setting, send = limit
    app.config[setting] = "3 per minute"
    statuses = [send(client, rotating(n)) for n in range(4)]
    assert statuses[3] == 429 and 429 not in statuses[:3]


def test_a_rotated_forwarded_for_does_not_escape_the_customer_page_limit(
    app: Flask, client: FlaskClient, shop: Shop
) -> None:
    app.config["CUSTOMER_PAGE_RATE_LIMIT"] = "3 per minute"
    path, _grant, _card = my_rights_link(shop)
    assert [client.get(path, headers=rotating(n)).status_code for n in range(4)] == [302, 302, 302, 429]


@pytest.mark.parametrize("proxies", [1])
def test_behind_one_proxy_the_address_it_appended_is_counted(app: Flask, client: FlaskClient) -> None:
    """The client may send any X-Forwarded-For; our proxy appends the peer it saw, and only that counts."""
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    proxy = {"REMOTE_ADDR": "10.0.0.2"}

    def through_proxy(forged: str, client_address: str) -> int:
        headers = {"X-Forwarded-For": f"{forged}, {client_address}"}
        data = {"email": "someone@example.com", "password": "not-the-password"}
        return client.post("/login", data=data, headers=headers, environ_base=proxy).status_code

    assert [through_proxy(f"198.51.100.{n}", "203.0.113.9") for n in range(4)] == [200, 200, 200, 429]
    assert through_proxy("198.51.100.1", "203.0.113.10") == 200  # another client behind the same proxy


@pytest.mark.parametrize("proxies", [1])
def test_behind_a_proxy_the_host_still_comes_from_no_header(app: Flask, client: FlaskClient) -> None:
    seen: dict[str, str] = {}

    @app.get("/__probe")
    def probe() -> str:
        from flask import request

        seen.update(host=request.host, scheme=request.scheme, remote=request.remote_addr or "")
        return "ok"

    headers = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    client.get("/__probe", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert seen == {"host": "quanyi.test", "scheme": "https", "remote": "203.0.113.9"}


@pytest.mark.parametrize(("count", "expected"), [(None, "198.51.100.1"), ("1", "203.0.113.9")])
def test_the_gunicorn_entry_point_trusts_forwarded_for_only_when_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, count: str | None, expected: str
) -> None:
    import importlib
    import sys

    from flask import request

    monkeypatch.setenv("QUANYI_ENV", "testing")
    monkeypatch.setenv("QUANYI_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("TRUSTED_PROXY_COUNT", raising=False)
    if count is not None:
        monkeypatch.setenv("TRUSTED_PROXY_COUNT", count)
    monkeypatch.delitem(sys.modules, "quanyi.wsgi", raising=False)  # the entry point the README serves
    served = importlib.import_module("quanyi.wsgi").app
    served.add_url_rule("/__peer", "peer", lambda: request.remote_addr or "")
    with served.app_context():
        answer = served.test_client().get(
            "/__peer",
            headers={"X-Forwarded-For": "203.0.113.9"},
            environ_base={"REMOTE_ADDR": "198.51.100.1"},
        )
    assert answer.get_data(as_text=True) == expected


def test_the_proxy_count_comes_from_the_environment_and_must_be_a_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from saas.config import ConfigError, load_config

    monkeypatch.setenv("TRUSTED_PROXY_COUNT", "2")
    assert load_config("development", tmp_path, None)["TRUSTED_PROXY_COUNT"] == 2
    monkeypatch.setenv("TRUSTED_PROXY_COUNT", "one")
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_COUNT"):
        load_config("development", tmp_path, None)
    monkeypatch.delenv("TRUSTED_PROXY_COUNT")
    assert load_config("development", tmp_path, None)["TRUSTED_PROXY_COUNT"] == 0


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nothing listens there


@pytest.fixture
def redis_down(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config["REDIS_URL"] = f"redis://127.0.0.1:{unused_port()}/0"
    return app_config


@pytest.mark.parametrize("limit", LIMITED.values(), ids=LIMITED.keys())
def test_limits_hold_while_redis_cannot_be_reached(
    redis_down: dict[str, Any], app: Flask, client: FlaskClient, limit: tuple[str, Send]
) -> None:
    assert app.config["RATELIMIT_STORAGE_URI"].startswith("fallback+redis://127.0.0.1:")
    setting, send = limit
    app.config[setting] = "3 per minute"
    statuses = [send(client, {}) for _ in range(4)]
    assert statuses[3] == 429 and 429 not in statuses[:3]


def test_api_key_limits_hold_while_redis_cannot_be_reached(
    redis_down: dict[str, Any], app: Flask, client: FlaskClient, shop: Shop
) -> None:
    from tenants import services
    from tenants.roles import Role

    app.config["API_RATE_LIMIT"] = "3 per minute"
    with shop.bound():
        _, secret = services.create_api_key(Role.OWNER, "one", [])
    headers = {"Authorization": f"Bearer {secret}"}
    assert [client.get("/api/v1/me", headers=headers).status_code for _ in range(4)] == [200, 200, 200, 429]
