"""Security headers and rate limits for every response (Flask-Limiter: Redis in production, memory here)."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from werkzeug.middleware.proxy_fix import ProxyFix

from saas.extensions import write_intent

log = logging.getLogger(__name__)

# The address is the TCP peer's unless TRUSTED_PROXY_COUNT proxies stand in front (see `trust_proxies`):
# a client's own X-Forwarded-For never picks the bucket it is counted in.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)


class RedisWithLocalFallback(Storage):
    """Rate-limit counters in Redis, and in this process's memory while Redis cannot be reached.

    Flask-Limiter's own fallback swaps every limit for a separate fallback list (empty here), so an outage
    lifted every limit. This storage keeps each limit and only moves its counting into memory: per process
    while Redis is down (a limit is then at most one allowance per server process), back to Redis
    `RETRY_SECONDS` after the last failure. Used through the `fallback+redis://…` storage URI.
    """

    STORAGE_SCHEME = ["fallback+redis", "fallback+rediss"]
    RETRY_SECONDS = 5.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        options.setdefault("socket_connect_timeout", 1)  # a black-holed Redis must not stall every request
        options.setdefault("socket_timeout", 1)
        self.redis = RedisStorage((uri or "").removeprefix("fallback+"), **options)
        self.local = MemoryStorage()
        self._redis_down_until = 0.0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ()  # nothing escapes: a failure of Redis is answered from memory

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= self._redis_down_until:
            try:
                return getattr(self.redis, method)(*args, **kwargs)
            except Exception:
                if self._redis_down_until == 0.0 or time.monotonic() >= self._redis_down_until:
                    log.warning("rate limits counted in this process: Redis is unreachable", exc_info=True)
                self._redis_down_until = time.monotonic() + self.RETRY_SECONDS
        return getattr(self.local, method)(*args, **kwargs)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return int(self._call("incr", key, expiry, amount=amount))

    def get(self, key: str) -> int:
        return int(self._call("get", key))

    def get_expiry(self, key: str) -> float:
        return float(self._call("get_expiry", key))

    def check(self) -> bool:
        return True  # always able to count, in Redis or in memory

    def reset(self) -> int | None:
        self.local.reset()
        result: int | None = self._call("reset")
        return result

    def clear(self, key: str) -> None:
        self.local.clear(key)
        self._call("clear", key)


def trust_proxies(app: Flask) -> None:
    """Read the client address and scheme from X-Forwarded-For/-Proto only behind TRUSTED_PROXY_COUNT proxies.

    With 0 (the default) the TCP peer is the client: a header it sends itself cannot rotate its address
    past the per-address limits. Behind N proxies ProxyFix takes the N-th address from the right, the one
    the outermost proxy we run wrote. The host is never taken from a header (links use PUBLIC_BASE_URL).
    """
    proxies = int(app.config.get("TRUSTED_PROXY_COUNT") or 0)
    if proxies < 0:
        raise ValueError("TRUSTED_PROXY_COUNT must be 0 or more")
    if proxies:  # outermost, so every middleware and view sees the same client address
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]


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
    """Bind the rate limiter (Redis when configured, memory while it is down) and the security headers."""
    app.before_request(_declare_write_intent)
    app.teardown_request(_end_write_intent)
    redis_url = str(app.config.get("REDIS_URL") or "")
    storage = f"fallback+{redis_url}" if redis_url.startswith(("redis://", "rediss://")) else redis_url
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage or "memory://")
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)  # a Redis outage must not take the site down
    limiter.init_app(app)
    app.after_request(add_security_headers)
