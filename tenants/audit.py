"""The audit log: every state change that matters leaves a row with actor, time, place and reason."""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context, request
from flask_login import current_user

from saas.extensions import db
from tenants.models import AuditEvent


def current_actor() -> tuple[int | None, str]:
    """Describe who acts now: the signed-in user, the API key, or the system."""
    if has_request_context():
        api_key = g.get("api_key")
        if api_key is not None:
            return None, f"api key {api_key.name} ({api_key.prefix})"
        if current_user and current_user.is_authenticated:
            return current_user.id, str(current_user.email)
        actor = g.get("actor")
        if actor:
            return None, str(actor)
    return None, "system"


def record(
    action: str,
    object_type: str | None = None,
    object_id: int | str | None = None,
    *,
    reason: str | None = None,
    actor: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit event to the session; it is committed with the change it describes."""
    user_id, label = current_actor()
    event = AuditEvent(
        actor_user_id=user_id,
        actor=actor or label,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        ip=request.remote_addr if has_request_context() else None,
        reason=reason or None,
        details=details,
    )
    db.session.add(event)
    return event
