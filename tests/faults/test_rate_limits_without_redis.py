"""Redis is SIGKILLed while it counts the rate limits: the limits go on, counted in this process."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from tests.faults.conftest import PrivateRedis


@pytest.fixture
def app_config(app_config: dict[str, Any], private_redis: PrivateRedis) -> dict[str, Any]:
    app_config["REDIS_URL"] = private_redis.url
    return app_config


def wrong_login(client: FlaskClient) -> int:
    data = {"email": "someone@example.com", "password": "not-the-password"}
    return client.post("/login", data=data).status_code


def test_login_limit_counts_in_redis_then_in_memory_once_redis_is_killed(
    app: Flask, client: FlaskClient, private_redis: PrivateRedis
) -> None:
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    assert [wrong_login(client) for _ in range(2)] == [200, 200]
    assert any(b"LIMITS" in key for key in Redis.from_url(private_redis.url).keys("*"))  # counted in Redis

    private_redis.kill()
    during_outage = [wrong_login(client) for _ in range(5)]
    # Memory starts counting afresh: one allowance of this process, then refused, never open.
    assert during_outage == [200, 200, 200, 429, 429]
