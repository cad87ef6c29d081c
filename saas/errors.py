"""Error pages for the back office and JSON errors (`code`, `message`) for the API and webhooks."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy.exc import DataError
from werkzeug.exceptions import BadRequest, HTTPException

from saas.extensions import db

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An API failure with a stable machine `code`, a human `message` and an HTTP status."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
}


def wants_json() -> bool:
    """Tell whether this request is answered in JSON (the API and the webhooks)."""
    return request.path.startswith(("/api/", "/hooks/"))


def _api_error(error: ApiError) -> ResponseReturnValue:
    body: dict[str, object] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    return jsonify(body), error.status


def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    if wants_json():
        response = jsonify({"code": HTTP_CODES.get(status, "error"), "message": error.description})
        if error.response is not None:
            for header in ("Retry-After", "Allow", "WWW-Authenticate"):
                if header in error.response.headers:
                    response.headers[header] = error.response.headers[header]
        return response, status
    return render_template("saas/error.html", status=status, error=error), status


def _number_out_of_range(error: Exception) -> ResponseReturnValue:
    """Answer 400 for a number a 64-bit column cannot hold that got past the checks at the edge.

    The edge (saas/bounds.py) refuses such ids and numbers in paths, cursors and JSON; this catches the
    rest (an id typed into a form or a search box, a sum of two large amounts) so that it is still the
    sender's error, never a 500. Any other database error is re-raised untouched.
    """
    if isinstance(error, DataError) and getattr(error.orig, "sqlstate", None) != NUMERIC_OUT_OF_RANGE:
        raise error
    db.session.rollback()  # the failed statement's transaction is unusable, and the error page may read
    log.warning("refused a number out of range: %s %s", request.method, request.path, exc_info=error)
    return _http_error(BadRequest(_("A number is too large.")))


NUMERIC_OUT_OF_RANGE = "22003"  # PostgreSQL's SQLSTATE; SQLite's driver raises OverflowError instead


def init_app(app: Flask) -> None:
    """Register the error handlers."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OverflowError, _number_out_of_range)
    app.register_error_handler(DataError, _number_out_of_range)
