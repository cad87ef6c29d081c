"""Helpers for the portal tests: the SMS folder, codes read from messages, sign-in as a customer would."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from orders.delivery import my_rights_token
from tests.factories import Shop

CODE_IN_TEXT = re.compile(r"\b(\d{6})\b")


def sms_files(app: Flask) -> list[dict[str, Any]]:
    """Every SMS the file outbox wrote, oldest first."""
    folder = Path(app.config["SMS_DIR"])
    paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []
    return [json.loads(p.read_text("utf-8")) for p in paths]


def sms_to(app: Flask, phone: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [m for m in sms_files(app) if m["to"] == phone and (kind is None or m["kind"] == kind)]


def last_code_by_sms(app: Flask, phone: str) -> str:
    message = sms_to(app, phone, "verification_code")[-1]
    return str(message["params"]["code"])


def portal(shop: Shop) -> str:
    return f"/shop/{shop.slug}/my"


def ask_code(client: FlaskClient, shop: Shop, address: str, ip: str = "198.51.100.7") -> Any:
    return client.post(f"{portal(shop)}/code", data={"address": address}, environ_base={"REMOTE_ADDR": ip})


def enter_code(client: FlaskClient, shop: Shop, address: str, code: str) -> Any:
    return client.post(f"{portal(shop)}/verify", data={"address": address, "code": code})


def sign_in_by_sms(app: Flask, client: FlaskClient, shop: Shop, phone: str) -> None:
    assert ask_code(client, shop, phone).status_code == 302
    response = enter_code(client, shop, phone, last_code_by_sms(app, phone))
    assert response.status_code == 302 and response.headers["Location"].endswith(portal(shop))


def open_link(client: FlaskClient, shop: Shop, customer_id: int) -> Any:
    """Open the signed "my rights" link of a message (signs in, then lands on the portal)."""
    return client.get(f"/my/{my_rights_token(shop.tenant.id, customer_id)}", follow_redirects=True)


def page_text(client: FlaskClient, shop: Shop) -> str:
    response = client.get(portal(shop))
    assert response.status_code == 200
    return str(response.get_data(as_text=True))
