"""What the edge accepts: ids and numbers a 64-bit column holds, JSON nested no deeper than any real payload.

Checked once, where input enters: the `int` URL converter (a larger id matches no route: 404), the API's
cursors and JSON bodies, the inbound webhooks' bodies and Flask's own `request.get_json`. A value past
these bounds is the sender's error (4xx), never a 500 from the database or the parser.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_babel import lazy_gettext as _l
from werkzeug.routing import IntegerConverter

BIGINT_MAX = 2**63 - 1  # every id, amount and count column is a signed 64-bit integer
BIGINT_MIN = -(2**63)
MAX_JSON_DEPTH = 64  # the deepest real payload (Stripe, Shopify) nests fewer than 10 levels


class JsonRefused(ValueError):
    """A JSON body we refuse: not JSON, nested too deep, or with an integer no column can hold."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def in_bigint_range(value: int) -> bool:
    """Tell whether a signed 64-bit column holds `value`."""
    return BIGINT_MIN <= value <= BIGINT_MAX


def _bounded_int(text: str) -> int:
    value = int(text)
    if not in_bigint_range(value):
        raise JsonRefused("number_out_of_range", str(_l("Numbers must lie between -2^63 and 2^63-1.")))
    return value


def _too_deep(payload: Any) -> bool:
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _nested_too_deep() -> JsonRefused:
    return JsonRefused("too_deep", str(_l("JSON may nest at most %(n)d levels.", n=MAX_JSON_DEPTH)))


def load_json(data: str | bytes) -> Any:
    """Parse JSON within the bounds; JsonRefused (a ValueError) with a code and a translated message."""
    try:
        payload = json.loads(data, parse_int=_bounded_int)
    except JsonRefused:
        raise
    except RecursionError as error:
        raise _nested_too_deep() from error
    except (UnicodeDecodeError, ValueError) as error:
        raise JsonRefused("invalid_json", str(_l("The body is not valid JSON."))) from error
    if _too_deep(payload):
        raise _nested_too_deep()
    return payload


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading request bodies through `load_json` (a refusal is a ValueError: 400)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return load_json(s)


def _at_most(limit: int) -> str:
    """Return a regular expression for the decimal numbers from 0 to `limit` (leading zeros aside)."""
    digits = str(limit)
    shorter = rf"\d{{1,{len(digits) - 1}}}"
    same_length = [
        f"{digits[:i]}[0-{int(d) - 1}]" + (rf"\d{{{len(digits) - i - 1}}}" if i < len(digits) - 1 else "")
        for i, d in enumerate(digits)
        if d != "0"
    ]
    return "(?:" + "|".join([shorter, *same_length, digits]) + ")"


class Int64Converter(IntegerConverter):
    """The `<int:…>` converter, up to the largest id a column holds: a larger one matches no route (404).

    The bound is in the pattern itself, not only in `to_python`: werkzeug answers 405 rather than 404 when
    a rule for another method matched the pattern, and a pattern never runs Python's int() on 5,000 digits.
    """

    regex = _at_most(BIGINT_MAX)

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(map, *args, **kwargs)


def init_app(app: Flask) -> None:
    """Install the bounded `int` converter (before any route is added) and the bounded JSON reader."""
    app.url_map.converters["int"] = Int64Converter
    app.json = BoundedJSONProvider(app)
