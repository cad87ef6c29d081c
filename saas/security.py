"""Security headers and rate limits for every response (Flask-Limiter: Redis in production, memory here)."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from saas.extensions import write_intent

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


def webhook_rejection_rate() -> str:
    """Return the per-channel limit on rejected inbound webhook deliveries (`WEBHOOK_REJECTION_LIMIT`)."""
    return str(current_app.config["WEBHOOK_REJECTION_LIMIT"])


def is_rejection(response: Response) -> bool:
    """Tell whether a response refused the request (what the webhook limit counts)."""
    return response.status_code >= 400


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
