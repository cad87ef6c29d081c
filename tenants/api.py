"""The REST API framework under `/api/v1`: API-key auth, scopes, JSON errors, cursor pagination, OpenAPI.

A package adds a resource with `api_endpoint` on its own blueprint (prefix `/api/v1`); the OpenAPI
document is generated from the registered view functions, so it always matches the code.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Annotated, Any, TypeVar

from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.json_schema import models_json_schema
from sqlalchemy import Select

from saas.bounds import JsonRefused, in_bigint_range, load_json
from saas.errors import ApiError
from saas.extensions import csrf, db
from saas.i18n import follow_tenant_locale
from saas.security import limiter
from tenants.context import bind_request_tenant
from tenants.models import Tenant
from tenants.services import find_api_key, touch_api_key

API_PREFIX = "/api/v1"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class QueryParam:
    """A documented query-string parameter."""

    name: str
    description: str
    type: str = "string"


@dataclass
class ApiOperation:
    """What the OpenAPI document says about one endpoint."""

    method: str
    summary: str
    scope: str | None
    tag: str
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    status: int = 200
    paginated: bool = False
    query: list[QueryParam] = field(default_factory=list)
    errors: tuple[int, ...] = ()


class RequestModel(BaseModel):
    """The base of every request body: a field the model does not know is refused, never ignored.

    Ignored, `{"mode": "now"}` (a misspelt or unsupported field) cancelled at period end instead of now.
    `api_endpoint` accepts only request models built on this base.
    """

    model_config = ConfigDict(extra="forbid")


def _id_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Id = Annotated[str, BeforeValidator(_id_text)]
"""An id in a response: the row's 64-bit integer id, as text (a JavaScript number loses its last digits)."""


class ResponseModel(BaseModel):
    """The base of a response body, built from the ORM row by attribute: `GrantOut.model_validate(grant)`.

    A field named as the row's attribute is copied; `Id` turns an integer id into text; a field whose
    attribute has another name says so with `Field(validation_alias=...)` (the document shows the field's
    own name). Only a field really computed (a URL, a count, a row from elsewhere) needs a mapper function.
    """

    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel):
    """Envelope of a list: items and the cursor of the next page (null at the end)."""

    items: list[Any]
    next_cursor: str | None


class ErrorBody(BaseModel):
    """Every API error: a stable machine code and a human message."""

    code: str
    message: str


def api_blueprint(name: str) -> Blueprint:
    """Return a blueprint for a package's API resources (CSRF-exempt: bearer auth, no cookies)."""
    bp = Blueprint(name, __name__, url_prefix=API_PREFIX)
    csrf.exempt(bp)
    return bp


def authenticate_request() -> None:
    """Resolve the API key from `Authorization: Bearer …` and bind its tenant (DESIGN law 2)."""
    header = request.headers.get("Authorization", "")
    scheme, _space, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "unauthorized", _("Send an API key as 'Authorization: Bearer <key>'."))
    key = find_api_key(secret.strip())
    if key is None:
        raise ApiError(401, "unauthorized", _("The API key is unknown or revoked."))
    tenant = db.session.get(Tenant, key.tenant_id)
    if tenant is None:
        raise ApiError(401, "unauthorized", _("The API key's tenant no longer exists."))
    g.api_key = key
    follow_tenant_locale()  # the API speaks the tenant's language, whatever the client's headers say
    bind_request_tenant(tenant)
    touch_api_key(key)


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against `model`; 422 with the field errors otherwise."""
    try:
        payload = load_json(request.get_data(cache=True))
    except JsonRefused as refused:
        raise ApiError(400, refused.code, refused.message) from refused
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", _("The body must be a JSON object."))
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        details = {"errors": [{"loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]}
        unknown = [
            ".".join(str(part) for part in e["loc"]) for e in error.errors() if e["type"] == "extra_forbidden"
        ]
        if unknown:
            fields = ", ".join(unknown)
            message = _("Unknown fields: %(fields)s. The body does not match the schema.", fields=fields)
        else:
            message = _("The body does not match the schema.")
        raise ApiError(422, "invalid", message, details) from error


def api_endpoint(
    bp: Blueprint,
    rule: str,
    method: str,
    *,
    summary: str,
    scope: str | None,
    tag: str,
    request_model: type[BaseModel] | None = None,
    response_model: type[BaseModel] | None = None,
    status: int = 200,
    paginated: bool = False,
    query: list[QueryParam] | None = None,
    errors: tuple[int, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., ResponseReturnValue]]:
    """Register an authenticated API endpoint.

    The view receives the validated body as `body` when `request_model` is given, and returns a pydantic
    model, a list of them with a cursor (`(items, next_cursor)` when `paginated`), or None for 204.
    """
    operation = ApiOperation(
        method.upper(),
        summary,
        scope,
        tag,
        request_model,
        response_model,
        status,
        paginated,
        list(query or []),
        errors,
    )

    if request_model is not None and not issubclass(request_model, RequestModel):
        raise TypeError(f"{request_model.__name__} must be a tenants.api.RequestModel (unknown fields: 422)")

    def decorate(func: Callable[..., Any]) -> Callable[..., ResponseReturnValue]:
        @wraps(func)
        def view(**kwargs: Any) -> ResponseReturnValue:
            authenticate_request()
            if scope is not None and scope not in g.api_key.scopes:
                raise ApiError(403, "forbidden", _("This API key lacks the scope %(scope)r.", scope=scope))
            if request_model is not None:
                kwargs["body"] = parse_body(request_model)
            result = func(**kwargs)
            return _render(result, operation)

        limited: Any = limiter.limit(_api_rate, key_func=_api_key_identity)(view)
        limited.api_operation = operation
        limited.required_permission = scope
        bp.add_url_rule(rule, endpoint=func.__name__, view_func=limited, methods=[operation.method])
        return limited

    return decorate


def _api_rate() -> str:
    return str(current_app.config["API_RATE_LIMIT"])


def _api_key_identity() -> str:
    """Rate-limit per API key (its public prefix), falling back to the address for anonymous calls."""
    secret = request.headers.get("Authorization", "").partition(" ")[2].strip()
    if secret.startswith("qy_") and secret.count("_") >= 2:
        return "api-key:" + secret[3:].split("_", 1)[0]
    return "api-ip:" + (request.remote_addr or "")


def _render(result: Any, operation: ApiOperation) -> ResponseReturnValue:
    if result is None:
        return "", 204
    if operation.paginated:
        items, next_cursor = result
        return jsonify(
            {"items": [item.model_dump(mode="json") for item in items], "next_cursor": next_cursor}
        ), operation.status
    if isinstance(result, BaseModel):
        return jsonify(result.model_dump(mode="json")), operation.status
    return jsonify(result), operation.status


# ---------------------------------------------------------------- cursor pagination


def encode_cursor(last_id: int) -> str:
    """Opaque cursor for 'after this id'."""
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Read a cursor; 400 when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        if not text.isdigit() or not in_bigint_range(value := int(text)):
            raise ValueError("not one of our ids")
        return value
    except (ValueError, UnicodeDecodeError) as error:
        message = _("The cursor is not valid; start again without one.")
        raise ApiError(400, "invalid_cursor", message) from error


def page_limit() -> int:
    """Read `limit` (1–200, default from config)."""
    raw = request.args.get("limit")
    if raw is None:
        return int(current_app.config["API_PAGE_SIZE"])
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise ApiError(400, "invalid_limit", _("limit must be a whole number from 1 to 200."))
    return int(raw)


def paginate(statement: Select[Any], id_column: Any) -> tuple[list[Any], str | None]:
    """Run `statement` newest first, one page after `?cursor=`; return rows and the next cursor."""
    limit = page_limit()
    cursor = request.args.get("cursor")
    if cursor:
        statement = statement.where(id_column < decode_cursor(cursor))
    rows = list(db.session.scalars(statement.order_by(id_column.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


PAGINATION_PARAMS = [
    QueryParam("cursor", "the next_cursor of the previous page"),
    QueryParam("limit", "items per page, 1–200", "integer"),
]


# ---------------------------------------------------------------- OpenAPI

_RULE_VARIABLE = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def openapi_document(app: Flask) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document from every registered API endpoint."""
    operations: list[tuple[str, str, ApiOperation]] = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)  # None for a build-only rule (the webhook URL)
        operation: ApiOperation | None = getattr(view, "api_operation", None)
        if operation is not None:
            operations.append((_RULE_VARIABLE.sub(r"{\1}", rule.rule), rule.endpoint, operation))
    models = {m for _, _, op in operations for m in (op.request_model, op.response_model) if m} | {ErrorBody}
    _, schema = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, endpoint, op in sorted(operations):
        paths.setdefault(path, {})[op.method.lower()] = _operation_object(path, endpoint, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Quanyi API",
            "version": "1.0.0",
            "description": "The tenant REST API. Authenticate with `Authorization: Bearer <api key>`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation_object(path: str, endpoint: str, op: ApiOperation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
        for name in re.findall(r"{([a-z_]+)}", path)
    ]
    for param in [*op.query, *(PAGINATION_PARAMS if op.paginated else [])]:
        parameters.append(
            {
                "name": param.name,
                "in": "query",
                "required": False,
                "description": param.description,
                "schema": {"type": param.type},
            }
        )
    error = {"content": {"application/json": {"schema": _ref(ErrorBody)}}}
    responses: dict[str, Any] = {
        "401": {"description": "missing or invalid API key", **error},
        "403": {"description": "the key lacks the scope", **error},
    }
    for status in op.errors:
        responses[str(status)] = {"description": "error", **error}
    if op.request_model is not None:
        responses["400"] = {"description": "the body is not JSON", **error}
        responses["422"] = {"description": _("The body does not match the schema."), **error}
    if op.response_model is None:
        responses[str(op.status)] = {"description": "done"}
    elif op.paginated:
        page_schema = {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref(op.response_model)},
                "next_cursor": {"type": ["string", "null"]},
            },
        }
        responses[str(op.status)] = {
            "description": "a page",
            "content": {"application/json": {"schema": page_schema}},
        }
    else:
        responses[str(op.status)] = {
            "description": "ok",
            "content": {"application/json": {"schema": _ref(op.response_model)}},
        }
    obj: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if op.scope:
        obj["description"] = f"Needs the scope `{op.scope}`."
    if op.request_model is not None:
        obj["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.request_model)}},
        }
    return obj
