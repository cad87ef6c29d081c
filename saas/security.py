"""Security headers and rate limits for every response (Flask-Limiter: Redis in production, memory here)."""

from __future__ import annotations

import logging
import math
import threading
import time

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse

from saas.extensions import write_intent

log = logging.getLogger(__name__)

limiter = Limiter(key_func=get_remote_address, headers_enabled=True)

# No inline script anywhere (app.js is the only script); plotly needs inline styles for its SVG.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def customer_page_rate() -> str:
    """Return the per-address limit on viewing the customer pages (`CUSTOMER_PAGE_RATE_LIMIT`)."""
    return str(current_app.config["CUSTOMER_PAGE_RATE_LIMIT"])


def customer_action_rate() -> str:
    """Return the per-address limit on each customer action: reveal, redeem, codes, cancel."""
    return str(current_app.config["CUSTOMER_ACTION_RATE_LIMIT"])


class RejectionLimit:
    """Refuse a caller for the rest of a window once `limit` of its requests were rejected in that window.

    Accepted requests cost nothing: only rejections are counted, in the limiter's storage (Redis in
    production, shared by all server processes), and a caller found over the limit is remembered in this
    process until its window ends. So a flood of forged webhooks is cut off while a flash sale of genuine
    ones is never refused (WooCommerce does not retry a refused delivery: it would be a lost order).
    """

    def __init__(self, config_key: str, scope: str) -> None:
        self.config_key = config_key
        self.scope = scope
        self._refused_until: dict[str, float] = {}  # caller -> time.time() its window ends
        self._lock = threading.Lock()

    def retry_after(self, caller: str) -> int | None:
        """Seconds until `caller` may be heard again, or None when it may be heard now."""
        with self._lock:
            until = self._refused_until.get(caller)
            if until is None:
                return None
            wait = until - time.time()
            if wait <= 0:
                del self._refused_until[caller]
                return None
        return max(1, math.ceil(wait))

    def count_rejection(self, caller: str) -> None:
        """Count one rejected request of `caller`; once over the limit, refuse it until the window ends."""
        item = parse(str(current_app.config[self.config_key]))
        try:
            strategy = limiter.limiter
            strategy.hit(item, self.scope, caller)
            stats = strategy.get_window_stats(item, self.scope, caller)
        except Exception:  # the storage is down: a Redis outage must not turn away genuine deliveries
            log.warning("could not count a rejected request of %s for %s", caller, self.scope, exc_info=True)
            return
        if stats.remaining <= 0:
            with self._lock:
                if len(self._refused_until) > 10_000:
                    self._refused_until.clear()
                self._refused_until[caller] = stats.reset_time


def add_security_headers(response: Response) -> Response:
    """Set CSP, frame denial, no sniffing, a strict referrer policy, and HSTS over https in production."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config["ENV_NAME"] == "production":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.path.startswith(("/my/", "/t/", "/account", "/login")):
        headers.setdefault("Cache-Control", "no-store")
    return response


def _declare_write_intent() -> None:
    """Requests that may write (not GET/HEAD, or any API call) take SQLite's write lock up front."""
    if request.method not in ("GET", "HEAD", "OPTIONS") or request.path.startswith("/api/"):
        g.write_intent = write_intent()
        g.write_intent.__enter__()


def _end_write_intent(exc: BaseException | None) -> None:
    intent = g.pop("write_intent", None)
    if intent is not None:
        intent.__exit__(None, None, None)


def init_app(app: Flask) -> None:
    """Bind the rate limiter (Redis when configured) and the security headers."""
    app.before_request(_declare_write_intent)
    app.teardown_request(_end_write_intent)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)  # a Redis outage must not take the site down
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)
    app.after_request(add_security_headers)
