"""Short links for SMS (billed per 70 characters): `/m/<code>` on PUBLIC_BASE_URL redirects to a signed page.

A row holds a random, unguessable code (12 base-62 characters, about 71 bits), the link kind registered in
`saas.outbox` and its arguments: no token is stored. Opening it signs the target link afresh, so the short
link works exactly as long as the signed page it stands for (`expires_at`, the same lifetime).
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from typing import Any

from flask import Blueprint, abort, redirect
from flask.typing import ResponseReturnValue
from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from saas import outbox
from saas.extensions import db
from saas.links import public_url
from saas.security import customer_page_rate, limiter
from saas.timeutil import utcnow

CODE_ALPHABET = string.ascii_letters + string.digits
CODE_LENGTH = 12

bp = Blueprint("short_links", __name__)


class ShortLink(db.Model):  # type: ignore[name-defined]
    """A short code standing for a signed link (platform table: resolved before any tenant is known)."""

    __tablename__ = "short_links"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    # Whose link it is (for support and erasure); not `tenant_id`, which would scope it to a bound tenant.
    for_tenant_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    link_kind: Mapped[str] = mapped_column(String(40))
    link_args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()


def new_code() -> str:
    """Return a random short code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def short_url(link_kind: str, args: list[Any], *, max_age: int, tenant_id: int | None = None) -> str:
    """Record a short link to `link_kind(*args)` valid `max_age` seconds and commit; return its address."""
    outbox.build_link(link_kind, list(args))  # fail now, not when the customer opens it
    row = ShortLink(
        code=new_code(),
        for_tenant_id=tenant_id,
        link_kind=link_kind,
        link_args=[str(arg) for arg in args],
        expires_at=utcnow() + dt.timedelta(seconds=max_age),
    )
    db.session.add(row)
    db.session.commit()
    return public_url("short_links.follow", code=row.code)


def resolve(code: str) -> str | None:
    """Return the freshly signed address a code stands for, or None when unknown or expired."""
    if len(code) != CODE_LENGTH or any(char not in CODE_ALPHABET for char in code):
        return None
    row = db.session.get(ShortLink, code)
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
    if expires <= utcnow():
        return None
    return outbox.build_link(row.link_kind, list(row.link_args))


@bp.route("/m/<code>")
@limiter.limit(customer_page_rate, methods=["GET"])
def follow(code: str) -> ResponseReturnValue:
    """Redirect a short link to its signed page; 404 when unknown or expired."""
    target = resolve(code)
    if target is None:
        abort(404)
    return redirect(target, code=302)
