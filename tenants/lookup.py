"""Scoped getters: one of the bound tenant's rows by id, or 404 — for pages and for the API.

Like the Flask tutorial's `get_post(id)` and Redash's `get_object_or_404`. The key is the bound tenant
and the id (`(tenant_id, id)`, law 1), so another tenant's row is never found: it answers 404, as a row
that does not exist does. `within` names the parent the row must belong to (`channel_id=…`), so a nested
URL with another parent's child is 404 too.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import abort

from saas.errors import ApiError
from saas.extensions import db
from saas.labels import LazyLabel
from tenants.scoping import current_tenant_id

M = TypeVar("M")


def find(model: type[M], object_id: int, **within: Any) -> M | None:
    """Return the bound tenant's `model` row `object_id` (belonging to `within`), or None."""
    found = db.session.get(model, (current_tenant_id(), object_id))
    if found is None or any(getattr(found, name) != value for name, value in within.items()):
        return None
    return found


def get_or_404(model: type[M], object_id: int, **within: Any) -> M:
    """Return the bound tenant's `model` row `object_id` for a page, or answer 404."""
    found = find(model, object_id, **within)
    if found is None:
        abort(404)
    return found


def api_get_or_404(model: type[M], object_id: int, message: str | LazyLabel, **within: Any) -> M:
    """Return the bound tenant's `model` row `object_id` for the API, or answer its 404 (`not_found`).

    `message` says what is missing, in the reader's language (a lazy `_l(…)` constant is translated here).
    """
    found = find(model, object_id, **within)
    if found is None:
        raise ApiError(404, "not_found", str(message))
    return found
