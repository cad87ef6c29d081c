"""Browser tests: the app served on loopback, driven by Playwright in Debian's headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from quanyi.app import create_app
from saas.extensions import db

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def browser_app(directory: Path) -> Flask:
    """Return the app with CSRF on and an empty schema, its files under `directory`."""
    app = create_app(
        {
            "ENV_NAME": "testing",
            "DATABASE_URL": f"sqlite:///{directory / 'browser.sqlite3'}",
            "MAIL_DIR": str(directory / "mail"),
            "FILES_DIR": str(directory / "files"),
            "SERVER_NAME": None,
            "WTF_CSRF_ENABLED": True,
        }
    )
    with app.app_context():
        db.create_all()
    return app


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """Serve `app` with a real HTTP server on a free loopback port; yield its base URL."""
    port = _free_port()
    app.config["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"  # the links in mails and pages lead here
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def live_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Flask, str]]:
    """The app with CSRF on, served by a real HTTP server on a free loopback port."""
    monkeypatch.setenv("QUANYI_INSTANCE_PATH", str(tmp_path / "instance"))
    app = browser_app(tmp_path)
    with served(app) as base:
        yield app, base


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A fresh headless Chromium page; fails in CI (QUANYI_REQUIRE_BROWSER=1) when Chromium is missing."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("QUANYI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is required for the browser tests (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-US")
        page = context.new_page()
        page.set_default_timeout(15000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
