"""Absolute links: every address a person opens from outside the app is built here, from PUBLIC_BASE_URL.

Never from the request (`Host`, `X-Forwarded-Host`, `url_root`): a header is the sender's to choose, and a
password-reset link that follows it hands the real token to whoever forged it. Jobs have no request at all,
so the same helper serves both: a mail sent by a worker links exactly like one sent from a page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app


class BaseUrlInvalid(ValueError):
    """PUBLIC_BASE_URL is not an http(s) origin with an optional path."""


def normalise_base_url(value: str) -> str:
    """Return `value` as `scheme://host[:port][/path]` without a trailing slash; BaseUrlInvalid otherwise."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BaseUrlInvalid(f"PUBLIC_BASE_URL must be an http(s) address, not {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise BaseUrlInvalid("PUBLIC_BASE_URL takes no query, fragment or credentials")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def public_url(endpoint: str, **values: Any) -> str:
    """Return the absolute address of `endpoint` on PUBLIC_BASE_URL (in a request or a job alike)."""
    parts = urlsplit(current_app.config["PUBLIC_BASE_URL"])
    adapter = current_app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)
    return adapter.build(endpoint, values, force_external=True)
