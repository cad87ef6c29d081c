"""Fault-test fixtures: a Redis of our own that a test may kill, and the services these tests need."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import postgres_url, redis_url


def require_services() -> None:
    """Skip unless PostgreSQL and Redis are configured (fail instead when QUANYI_REQUIRE_SERVICES=1)."""
    if not postgres_url() or not redis_url():
        pytest.skip("TEST_DATABASE_URL and TEST_REDIS_URL are not set")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A throwaway redis-server on a free port (never the shared one): started, SIGKILLed, restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start redis-server and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from redis import Redis

        deadline = time.monotonic() + 10
        while True:
            try:
                if Redis.from_url(self.url, socket_connect_timeout=0.2).ping():
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # waiting for a process to listen, not for the app

    def kill(self) -> None:
        """SIGKILL the server, as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A running private Redis, killed after the test whatever happened."""
    require_services()
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()
