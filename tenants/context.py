"""Resolve the current tenant once per request (DESIGN law 2) and check permissions."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, current_app, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.util import identity_key

from saas.extensions import db, login_manager
from saas.i18n import set_tenant_locale
from tenants.models import Membership, Tenant
from tenants.roles import has_permission
from tenants.scoping import bind_tenant, bound_tenant_id, unbind_tenant, user_bound

F = TypeVar("F", bound=Callable[..., Any])


def current_tenant() -> Tenant:
    """Return the tenant of this request (404 outside a tenant's URL space)."""
    tenant = g.get("tenant")
    if tenant is None:
        abort(404)
    return tenant


def current_role() -> str:
    """Return the signed-in member's role in the current tenant."""
    return str(g.membership.role)


def can(permission: str) -> bool:
    """Tell whether the current member (or API key) holds `permission` in the current tenant."""
    membership = g.get("membership")
    if membership is not None:
        return has_permission(membership.role, permission)
    api_key = g.get("api_key")
    return api_key is not None and permission in api_key.scopes


def requires(permission: str) -> Callable[[F], F]:
    """Guard a back-office view: members without `permission` get 403. Every tenant view declares one."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not can(permission):
                abort(403)
            return view(*args, **kwargs)

        guarded.required_permission = permission  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def bind_request_tenant(tenant: Tenant) -> None:
    """Make `tenant` the request's tenant and scope every read and write to it until the request ends.

    Called once per request by whatever resolved the tenant: the URL's slug and the member
    (`_resolve_tenant`), the API key (`tenants.api`), a customer's signed link (`orders.my_rights`,
    `orders.subscriptions.customer`). The binding is undone at teardown (`_unbind`).
    """
    g.tenant = tenant
    g.tenant_token = bind_tenant(tenant.id)


def bound_tenant_locale() -> str | None:
    """Return the language setting of the tenant bound to this context, or None."""
    tenant_id = bound_tenant_id()
    if tenant_id is None:
        return None
    tenant = g.get("tenant")
    if tenant is not None and tenant.id == tenant_id and "locale" in tenant.__dict__:
        return str(tenant.locale)
    loaded = db.session.identity_map.get(identity_key(Tenant, tenant_id))
    if loaded is not None and "locale" in loaded.__dict__:
        return str(loaded.locale)
    query = select(Tenant.locale).where(Tenant.id == tenant_id)
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            # On a connection of its own: the session's may be busy streaming a COPY (a card-key import
            # translating its progress), and a query there would wait for that COPY forever.
            with db.engine.connect() as connection:
                return connection.scalar(query)
        # On SQLite in the session's own transaction (another connection would wait on the write lock),
        # without flushing: a message may be translated halfway through a unit of work, or after it failed.
        with db.session.no_autoflush:
            return db.session.scalar(query)
    except SQLAlchemyError:
        return None


def _pull_tenant_slug(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values and "tenant_slug" in values:
        g.tenant_slug = values.pop("tenant_slug")


def _add_tenant_slug(endpoint: str, values: dict[str, Any]) -> None:
    tenant = g.get("tenant")
    if (
        tenant is not None
        and "tenant_slug" not in values
        and current_app.url_map.is_endpoint_expecting(endpoint, "tenant_slug")
    ):
        values["tenant_slug"] = tenant.slug


def _resolve_tenant() -> Any:
    """Load the tenant named in the URL and the user's membership in it; not a member means 404."""
    slug = g.get("tenant_slug")
    if slug is None:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    with user_bound(current_user.id):  # PostgreSQL shows a user their own memberships only
        row = db.session.execute(
            select(Tenant, Membership)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .where(Tenant.slug == slug, Membership.user_id == current_user.id)
        ).first()
    if row is None:
        abort(404)
    g.membership = row.Membership
    bind_request_tenant(row.Tenant)
    if _owner_needs_second_factor(row.Tenant, row.Membership.role):
        flash(
            _(
                "%(tenant)s asks its owners to use two-factor authentication; turn it on to continue.",
                tenant=row.Tenant.name,
            ),
            "error",
        )
        return redirect(url_for("auth.two_factor_setup"))
    return None


def _owner_needs_second_factor(tenant: Tenant, role: str) -> bool:
    required = bool((tenant.settings or {}).get("require_owner_two_factor"))
    return required and role == "owner" and not current_user.has_two_factor


def _unbind(exc: BaseException | None) -> None:
    token = g.pop("tenant_token", None)
    if token is not None:
        unbind_tenant(token)


def client_ip() -> str | None:
    """Return the caller's address (forwarded headers count only behind TRUSTED_PROXY_COUNT proxies)."""
    return request.remote_addr


def init_app(app: Flask) -> None:
    """Install the per-request tenant resolution."""
    set_tenant_locale(app, bound_tenant_locale)
    app.url_value_preprocessor(_pull_tenant_slug)
    app.url_defaults(_add_tenant_slug)
    app.before_request(_resolve_tenant)
    app.teardown_request(_unbind)
