"""An authenticated crawl with hostile input: every form gets an XSS payload, no page breaks or echoes it raw.

The crawl walks every back-office route of the app (see tests/routes.py), so new pages are covered without
anyone remembering to add them.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from flask import Flask

from tests.factories import Shop, login
from tests.routes import build_url, object_values, tenant_routes

PAYLOAD = "<script>alert('qy')</script>\"'><img src=x onerror=alert(1)>"
RAW_MARKERS = ("<script>alert('qy')", "<img src=x onerror=alert(1)>")


class FormParser(HTMLParser):
    """Collect the POST forms of a page with their fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self._form: dict[str, object] | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and attributes.get("method", "get").lower() == "post":
            self._form = {
                "action": attributes.get("action", ""),
                "fields": {},
                "multipart": "multipart" in attributes.get("enctype", ""),
            }
            self.forms.append(self._form)
        if self._form is None:
            return
        fields: dict[str, str] = self._form["fields"]  # type: ignore[assignment]
        name = attributes.get("name")
        if tag == "input" and name:
            kind = attributes.get("type", "text")
            if kind in ("text", "search", "url", "tel", "") or kind == "textarea":
                fields[name] = PAYLOAD
            elif kind == "email":
                fields[name] = "x@y.test"
            elif kind == "number":
                fields[name] = "1"
            elif kind in ("hidden", "checkbox", "radio"):
                fields.setdefault(name, attributes.get("value", "y"))
            elif kind in ("password",):
                fields[name] = "a-long-enough-password"
        elif tag == "textarea" and name:
            fields[name] = PAYLOAD
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and self._select not in fields:
            fields[self._select] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def pages(app: Flask, shop: Shop) -> list[str]:
    return [
        build_url(app, route, shop.slug, object_values(route, shop))
        for route in tenant_routes(app)
        if route.method == "GET"
    ]


@pytest.mark.parametrize("role", ["owner"])
def test_hostile_input_in_every_form_is_escaped_everywhere_and_breaks_nothing(
    app: Flask, shop: Shop, role: str
) -> None:
    client = app.test_client()
    login(client, shop.members[role])
    urls = pages(app, shop)
    for url in urls:
        page = client.get(url)
        assert page.status_code < 500, f"GET {url} crashed"
        parser = FormParser()
        parser.feed(page.get_data(as_text=True))
        for form in parser.forms:
            action = str(form["action"]) or url
            if action.endswith("/logout"):
                continue
            response = client.post(action, data=form["fields"])
            assert response.status_code < 500, f"POST {action} (from {url}) crashed with hostile input"
            assert not any(m in response.get_data(as_text=True) for m in RAW_MARKERS), (
                f"POST {action} echoed it raw"
            )
    for url in urls:
        body = client.get(url).get_data(as_text=True)
        assert not any(marker in body for marker in RAW_MARKERS), f"{url} shows the payload unescaped"
