"""The getting-started checklist: items that tick themselves as the work gets done."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from saas.extensions import db
from saas.registry import Registry
from tenants.models import Invitation, Membership
from tenants.scoping import current_tenant_id


@dataclass(frozen=True)
class ChecklistItem:
    """One step for a new tenant; `is_done` runs with the tenant bound, `endpoint` is where to do it."""

    key: str
    label: object
    endpoint: str | None
    is_done: Callable[[], bool]


def _never() -> bool:
    return False


def _team_invited() -> bool:
    members = db.session.scalar(select(func.count()).where(Membership.tenant_id == current_tenant_id())) or 0
    invited = db.session.scalar(select(func.count()).select_from(Invitation)) or 0
    return members > 1 or invited > 0


# The steps, in order. Packages replace the placeholders with real checks on the app they are given
# (`register_checklist_item` in their init_app).
CHECKLIST: dict[str, ChecklistItem] = {
    "bundle": ChecklistItem("bundle", _l("Create a rights bundle"), None, _never),
    "keys": ChecklistItem("keys", _l("Import card keys"), None, _never),
    "channel": ChecklistItem("channel", _l("Connect a sales channel"), None, _never),
    "team": ChecklistItem("team", _l("Invite your team"), "tenant.team", _team_invited),
}


CHECKLIST_ITEMS: Registry[ChecklistItem] = Registry("quanyi.checklist")


def register_checklist_item(app: Flask, key: str, endpoint: str, is_done: Callable[[], bool]) -> None:
    """Let a package say, on `app`, where a step is done and how to tell it is."""
    CHECKLIST_ITEMS.register(app, key, ChecklistItem(key, CHECKLIST[key].label, endpoint, is_done))


def checklist_status() -> list[tuple[ChecklistItem, bool]]:
    """Return each step with whether it is done, for the current tenant."""
    items = [CHECKLIST_ITEMS.get(key) or placeholder for key, placeholder in CHECKLIST.items()]
    return [(item, item.is_done()) for item in items]
