"""API resources of the tenant shell: the key itself, the audit log, and the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from sqlalchemy import select

from tenants import roles
from tenants.api import (
    PAGINATION_PARAMS,
    Id,
    QueryParam,
    ResponseModel,
    api_blueprint,
    api_endpoint,
    openapi_document,
    paginate,
)
from tenants.context import current_tenant
from tenants.models import AuditEvent

bp = api_blueprint("tenants_api")
docs_bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")


class TenantOut(ResponseModel):
    id: Id
    slug: str
    name: str
    time_zone: str
    currency: str


class MeOut(BaseModel):
    """The calling API key: its tenant and scopes."""

    key_name: str
    key_prefix: str
    scopes: list[str]
    tenant: TenantOut


class AuditEventOut(ResponseModel):
    id: Id
    created_at: dt.datetime
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    ip: str | None
    reason: str | None
    details: dict[str, Any]


@api_endpoint(
    bp, "/me", "GET", summary="Describe the calling API key", scope=None, tag="tenant", response_model=MeOut
)
def me() -> MeOut:
    tenant = current_tenant()
    return MeOut(
        key_name=g.api_key.name,
        key_prefix=g.api_key.prefix,
        scopes=g.api_key.scopes,
        tenant=TenantOut.model_validate(tenant),
    )


@api_endpoint(
    bp,
    "/audit-events",
    "GET",
    summary="List audit events, newest first",
    scope=roles.AUDIT_VIEW,
    tag="tenant",
    response_model=AuditEventOut,
    paginated=True,
    query=[QueryParam("action", "only actions starting with this")],
)
def list_audit_events() -> tuple[list[AuditEventOut], str | None]:
    statement = select(AuditEvent)
    action = request.args.get("action")
    if action:
        statement = statement.where(AuditEvent.action.startswith(action))
    events, next_cursor = paginate(statement, AuditEvent.id)
    return [AuditEventOut.model_validate(e) for e in events], next_cursor


@docs_bp.route("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3 document, generated from the registered endpoints."""
    return jsonify(openapi_document(current_app))


__all__ = ["PAGINATION_PARAMS", "bp", "docs_bp"]
