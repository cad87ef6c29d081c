"""Catalog use cases: rights, bundles and plans. Validate, act, audit, commit once.

Inventory use cases (imports, voids, reveals, expiry) are in `catalog.inventory`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlparse

from flask_babel import gettext as _
from sqlalchemy import Select, func, or_, select

from catalog import keyring
from catalog.models import (
    BUNDLE_STATUSES,
    CODE_ALPHABET,
    DEFAULT_FAMILY_MEMBERS,
    FULFILMENT_KINDS,
    PERIOD_UNITS,
    Bundle,
    BundleItem,
    CardKey,
    Plan,
    Right,
)
from catalog.stock import check_low_stock
from saas import money
from saas.extensions import db
from saas.timeutil import utcnow
from tenants import audit
from tenants.scoping import current_tenant_id

CURRENCY = re.compile(r"^[A-Z]{3}$")
CODE_PREFIX = re.compile(r"^[A-Z0-9-]{0,12}$")
RIGHT_FIELDS = (
    "name",
    "provider",
    "description",
    "kind",
    "face_value",
    "unit_cost",
    "currency",
    "validity_days",
    "reusable",
    "max_deliveries",
    "code_prefix",
    "code_length",
    "topup_settings",
    "link_url",
)
BUNDLE_FIELDS = ("name", "description", "cover_text")
PLAN_FIELDS = (
    "name",
    "period_unit",
    "period_days",
    "price",
    "list_price",
    "currency",
    "renewable",
    "purchase_limit",
    "family_sharing",
    "family_max_members",
    "position",
)
TOPUP_ACCOUNT_TYPES = ("mobile", "qq", "email", "account")


class CatalogError(ValueError):
    """A user-facing refusal of a catalog action; the message says what to change."""


# ---------------------------------------------------------------- small checks


def read_amount(text: str | int | None, currency: str | None, *, optional: bool = False) -> int | None:
    """Read an amount typed in major units as minor units of `currency` (blank: None if optional).

    `saas.money.parse` does the reading; this only turns its refusal into the catalog's CatalogError.
    """
    try:
        amount = money.parse_optional(text, currency or "")
    except money.MoneyError as error:
        raise CatalogError(str(error)) from error
    if amount is None and not optional:
        raise CatalogError(_("Enter an amount."))
    return amount


def _check_currency(value: Any) -> str:
    currency = str(value or "").strip().upper()
    if not CURRENCY.match(currency):
        raise CatalogError(_("Currency is a three-letter ISO code such as CNY."))
    return currency


def _check_name(value: Any) -> str:
    name = str(value or "").strip()
    if not name or len(name) > 120:
        raise CatalogError(_("Give a name of 1–120 characters."))
    return name


def _check_whole(value: Any, label: str, *, minimum: int = 0, maximum: int = 10**12) -> int:
    """Read a required whole number within bounds; CatalogError otherwise."""
    if value is None or value == "":
        raise CatalogError(_("%(f)s is required.", f=label))
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError as error:
            raise CatalogError(_("%(f)s must be a whole number.", f=label)) from error
    if not minimum <= value <= maximum:
        raise CatalogError(_("%(f)s must be between %(a)s and %(b)s.", f=label, a=minimum, b=maximum))
    return int(value)


def _check_optional_whole(value: Any, label: str, *, minimum: int = 0, maximum: int = 10**12) -> int | None:
    """Read an optional whole number (empty means None) within bounds."""
    if value is None or value == "":
        return None
    return _check_whole(value, label, minimum=minimum, maximum=maximum)


def generate_code(prefix: str, length: int) -> str:
    """Return a cryptographically random redemption code: prefix + `length` characters of CODE_ALPHABET."""
    return prefix + "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


# ---------------------------------------------------------------- rights


def _right_values(fields: dict[str, Any], current: Right | None) -> dict[str, Any]:
    """Merge `fields` over the right's current values and validate the result."""
    values = (
        {name: getattr(current, name) for name in RIGHT_FIELDS}
        if current
        else {
            "provider": "",
            "description": "",
            "face_value": 0,
            "unit_cost": 0,
            "currency": "CNY",
            "validity_days": None,
            "reusable": False,
            "max_deliveries": 1,
            "code_prefix": "",
            "code_length": 12,
            "topup_settings": {},
            "link_url": "",
        }
    )
    values.update({k: v for k, v in fields.items() if k in RIGHT_FIELDS})
    values["name"] = _check_name(values.get("name"))
    values["provider"] = str(values.get("provider") or "").strip()[:120]
    values["description"] = str(values.get("description") or "").strip()
    if values.get("kind") not in FULFILMENT_KINDS:
        raise CatalogError(_("Choose how the right is fulfilled: card key, code, top-up or link."))
    values["face_value"] = _check_whole(values["face_value"], _("Face value"))
    values["unit_cost"] = _check_whole(values["unit_cost"], _("Unit cost"))
    values["currency"] = _check_currency(values["currency"])
    values["validity_days"] = _check_optional_whole(
        values["validity_days"], _("Validity"), minimum=1, maximum=36500
    )
    values["reusable"] = bool(values["reusable"]) and values["kind"] == "card_key"
    values["max_deliveries"] = _check_whole(
        values["max_deliveries"] or 1, _("Deliveries per key"), minimum=1, maximum=10000
    )
    if values["reusable"] and values["max_deliveries"] < 2:
        raise CatalogError(_("A reusable key is delivered at least twice; raise the deliveries per key."))
    if not values["reusable"]:
        values["max_deliveries"] = 1
    _check_kind_settings(values)
    return values


def _check_kind_settings(values: dict[str, Any]) -> None:
    kind = values["kind"]
    values["code_prefix"] = str(values.get("code_prefix") or "").strip().upper()
    if not CODE_PREFIX.match(values["code_prefix"]):
        raise CatalogError(_("A code prefix has up to 12 letters, digits or dashes."))
    values["code_length"] = _check_whole(
        values.get("code_length") or 12, _("Code length"), minimum=6, maximum=32
    )
    settings = dict(values.get("topup_settings") or {})
    if kind == "topup":
        if not str(settings.get("adapter") or "").strip():
            raise CatalogError(_("Name the supplier adapter of a top-up right."))
        if settings.get("account_type", "mobile") not in TOPUP_ACCOUNT_TYPES:
            raise CatalogError(_("The account type is one of %(t)s.", t=", ".join(TOPUP_ACCOUNT_TYPES)))
        settings = {
            "adapter": str(settings["adapter"]).strip(),
            "product_code": str(settings.get("product_code") or "").strip(),
            "account_type": settings.get("account_type", "mobile"),
        }
    values["topup_settings"] = settings if kind == "topup" else {}
    values["link_url"] = str(values.get("link_url") or "").strip()
    if kind == "link":
        parts = urlparse(values["link_url"])
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CatalogError(_("A link right needs an http(s) address."))


def create_right(fields: dict[str, Any]) -> Right:
    """Create a right from validated fields."""
    values = _right_values(fields, None)
    keyring.ensure_tenant_keys()  # every tenant with a catalog can take card keys
    right = Right(**values)
    db.session.add(right)
    db.session.flush()
    audit.record("catalog.right_created", "right", right.id, name=right.name, kind=right.kind)
    db.session.commit()
    return right


def update_right(right: Right, fields: dict[str, Any]) -> Right:
    """Change a right; its kind is fixed once card keys were imported for it."""
    values = _right_values(fields, right)
    if values["kind"] != right.kind and _has_card_keys(right.id):
        raise CatalogError(_("This right has card keys; its fulfilment kind cannot change."))
    changed = {name: value for name, value in values.items() if getattr(right, name) != value}
    for name, value in changed.items():
        setattr(right, name, value)
    if changed:
        audit.record("catalog.right_updated", "right", right.id, changed=sorted(changed))
    db.session.commit()
    return right


def set_low_stock_threshold(right: Right, threshold: int | None) -> str | None:
    """Set (or clear, with None) the stock level below which the right raises an alert."""
    if right.kind != "card_key":
        raise CatalogError(_("Only card-key rights have stock."))
    right.low_stock_threshold = _check_optional_whole(threshold, _("Threshold"), maximum=10**9)
    audit.record("inventory.alert_threshold_set", "right", right.id, threshold=right.low_stock_threshold)
    db.session.commit()
    return check_low_stock(right.id)


def _has_card_keys(right_id: int) -> bool:
    return db.session.scalar(select(CardKey.id).where(CardKey.right_id == right_id).limit(1)) is not None


def rights_query(q: str = "", kind: str = "") -> Select[tuple[Right]]:
    """Return the statement listing rights matching a search (name or provider) and kind."""
    statement = select(Right)
    if q:
        pattern = f"%{q.strip()}%"
        statement = statement.where(or_(Right.name.ilike(pattern), Right.provider.ilike(pattern)))
    if kind in FULFILMENT_KINDS:
        statement = statement.where(Right.kind == kind)
    return statement


def list_rights(q: str = "", kind: str = "") -> list[Right]:
    """Return the rights matching a search, by name."""
    return list(db.session.scalars(rights_query(q, kind).order_by(Right.name, Right.id)))


# ---------------------------------------------------------------- bundles


def _bundle_values(fields: dict[str, Any], current: Bundle | None) -> dict[str, Any]:
    values = (
        {name: getattr(current, name) for name in BUNDLE_FIELDS}
        if current
        else {"description": "", "cover_text": ""}
    )
    values.update({k: v for k, v in fields.items() if k in BUNDLE_FIELDS and v is not None})
    values["name"] = _check_name(values.get("name"))
    values["description"] = str(values.get("description") or "").strip()
    values["cover_text"] = str(values.get("cover_text") or "").strip()
    if len(values["cover_text"]) > 200:
        raise CatalogError(_("Keep the cover text under 200 characters."))
    return values


def _check_editable(bundle: Bundle) -> None:
    if bundle.status == "archived":
        raise CatalogError(_("An archived bundle is kept as it was; clone it to make a new one."))


def create_bundle(fields: dict[str, Any]) -> Bundle:
    """Create a draft bundle."""
    bundle = Bundle(status="draft", **_bundle_values(fields, None))
    db.session.add(bundle)
    db.session.flush()
    audit.record("catalog.bundle_created", "bundle", bundle.id, name=bundle.name)
    db.session.commit()
    return bundle


def update_bundle(bundle: Bundle, fields: dict[str, Any]) -> Bundle:
    """Change a bundle's name, description or cover text (sold orders keep their snapshot)."""
    _check_editable(bundle)
    values = _bundle_values(fields, bundle)
    changed = {name: value for name, value in values.items() if getattr(bundle, name) != value}
    for name, value in changed.items():
        setattr(bundle, name, value)
    if changed:
        audit.record("catalog.bundle_updated", "bundle", bundle.id, changed=sorted(changed))
    db.session.commit()
    return bundle


def _right_or_error(right_id: Any) -> Right:
    try:
        key = (current_tenant_id(), int(right_id))
    except (TypeError, ValueError) as error:
        raise CatalogError(_("Choose a right.")) from error
    right = db.session.get(Right, key)
    if right is None:
        raise CatalogError(_("No such right."))
    return right


def put_bundle_item(bundle: Bundle, right_id: Any, quantity: Any) -> BundleItem:
    """Put a right in the bundle with a quantity (or change the quantity if it is there)."""
    _check_editable(bundle)
    right = _right_or_error(right_id)
    count = _check_whole(quantity, _("Quantity"), minimum=1, maximum=1000)
    item = db.session.scalar(
        select(BundleItem).where(BundleItem.bundle_id == bundle.id, BundleItem.right_id == right.id)
    )
    if item is None:
        position = (
            db.session.scalar(
                select(func.count()).select_from(BundleItem).where(BundleItem.bundle_id == bundle.id)
            )
            or 0
        )
        item = BundleItem(bundle_id=bundle.id, right_id=right.id, quantity=count, position=position)
        db.session.add(item)
    else:
        item.quantity = count
    audit.record("catalog.bundle_item_set", "bundle", bundle.id, right_id=str(right.id), quantity=count)
    db.session.commit()
    return item


def set_bundle_items(bundle: Bundle, items: list[tuple[Any, Any]]) -> None:
    """Replace the bundle's contents with (right id, quantity) pairs, in order."""
    _check_editable(bundle)
    checked = []
    for right_id, quantity in items:
        right = _right_or_error(right_id)
        checked.append((right.id, _check_whole(quantity, _("Quantity"), minimum=1, maximum=1000)))
    if len({right_id for right_id, _q in checked}) != len(checked):
        raise CatalogError(_("List each right once, with its quantity."))
    for item in db.session.scalars(select(BundleItem).where(BundleItem.bundle_id == bundle.id)):
        db.session.delete(item)
    db.session.flush()
    for position, (right_id, quantity) in enumerate(checked):
        db.session.add(
            BundleItem(bundle_id=bundle.id, right_id=right_id, quantity=quantity, position=position)
        )
    audit.record(
        "catalog.bundle_items_replaced", "bundle", bundle.id, items=[[str(r), q] for r, q in checked]
    )
    db.session.commit()


def remove_bundle_item(bundle: Bundle, right_id: int) -> None:
    """Take a right out of the bundle."""
    _check_editable(bundle)
    item = db.session.scalar(
        select(BundleItem).where(BundleItem.bundle_id == bundle.id, BundleItem.right_id == right_id)
    )
    if item is None:
        raise CatalogError(_("That right is not in this bundle."))
    db.session.delete(item)
    audit.record("catalog.bundle_item_removed", "bundle", bundle.id, right_id=str(right_id))
    db.session.commit()


def change_bundle_status(bundle: Bundle, status: str) -> Bundle:
    """Move a bundle draft → active → archived; an active bundle needs rights and a plan."""
    allowed = {"draft": ("active", "archived"), "active": ("archived",), "archived": ()}
    if status not in BUNDLE_STATUSES or status not in allowed[bundle.status]:
        raise CatalogError(_("A %(a)s bundle cannot become %(b)s.", a=bundle.status, b=status))
    if status == "active" and (not bundle.items() or not bundle.plans()):
        raise CatalogError(_("Add at least one right and one plan before activating the bundle."))
    before = bundle.status
    bundle.status = status
    if status == "active":
        bundle.activated_at = utcnow()
    else:
        bundle.archived_at = utcnow()
    audit.record(
        f"catalog.bundle_{'activated' if status == 'active' else 'archived'}",
        "bundle",
        bundle.id,
        before=before,
        after=status,
    )
    db.session.commit()
    return bundle


def clone_bundle(bundle: Bundle) -> Bundle:
    """Copy a bundle with its rights and plans into a new draft."""
    copy = Bundle(
        name=f"{bundle.name} {_('(copy)')}"[:120],
        description=bundle.description,
        cover_text=bundle.cover_text,
        status="draft",
        cloned_from_id=bundle.id,
    )
    db.session.add(copy)
    db.session.flush()
    for item, _right in bundle.items():
        db.session.add(
            BundleItem(
                bundle_id=copy.id, right_id=item.right_id, quantity=item.quantity, position=item.position
            )
        )
    for plan in bundle.plans():
        db.session.add(Plan(bundle_id=copy.id, **{name: getattr(plan, name) for name in PLAN_FIELDS}))
    audit.record("catalog.bundle_cloned", "bundle", copy.id, source=str(bundle.id))
    db.session.commit()
    return copy


def bundles_query(q: str = "", status: str = "") -> Select[tuple[Bundle]]:
    """Return the statement listing bundles matching a search and status."""
    statement = select(Bundle)
    if q:
        pattern = f"%{q.strip()}%"
        statement = statement.where(or_(Bundle.name.ilike(pattern), Bundle.description.ilike(pattern)))
    if status in BUNDLE_STATUSES:
        statement = statement.where(Bundle.status == status)
    return statement


def list_bundles(q: str = "", status: str = "") -> list[Bundle]:
    """Return the bundles matching a search: active first, then drafts, then archived; by name."""
    order = {"active": 0, "draft": 1, "archived": 2}
    return sorted(db.session.scalars(bundles_query(q, status)), key=lambda b: (order[b.status], b.name, b.id))


# ---------------------------------------------------------------- plans


def _plan_values(fields: dict[str, Any], current: Plan | None) -> dict[str, Any]:
    values = (
        {name: getattr(current, name) for name in PLAN_FIELDS}
        if current
        else {
            "period_days": None,
            "list_price": None,
            "currency": "CNY",
            "renewable": True,
            "purchase_limit": None,
            "family_sharing": False,
            "family_max_members": DEFAULT_FAMILY_MEMBERS,
            "position": 0,
        }
    )
    values.update({k: v for k, v in fields.items() if k in PLAN_FIELDS})
    values["name"] = _check_name(values.get("name"))
    if values.get("period_unit") not in PERIOD_UNITS:
        raise CatalogError(_("The period is a month, a quarter, a year or a number of days."))
    if values["period_unit"] == "days":
        values["period_days"] = _check_whole(values.get("period_days"), _("Days"), minimum=1, maximum=3660)
    else:
        values["period_days"] = None
    price = values["price"] = _check_whole(values.get("price"), _("Price"))
    list_price = values["list_price"] = _check_optional_whole(values.get("list_price"), _("List price"))
    if list_price is not None and list_price < price:
        raise CatalogError(_("The list price (划线价) is at least the price."))
    values["currency"] = _check_currency(values.get("currency"))
    values["renewable"] = bool(values.get("renewable"))
    values["purchase_limit"] = _check_optional_whole(
        values.get("purchase_limit"), _("Purchase limit"), minimum=1, maximum=10**6
    )
    values["family_sharing"] = bool(values.get("family_sharing"))
    values["family_max_members"] = _check_whole(
        values.get("family_max_members") or DEFAULT_FAMILY_MEMBERS, _("Family members"), minimum=1, maximum=10
    )
    values["position"] = _check_whole(values.get("position") or 0, _("Position"), maximum=10**6)
    return values


def create_plan(bundle: Bundle, fields: dict[str, Any]) -> Plan:
    """Add a plan (tier) to a bundle."""
    _check_editable(bundle)
    plan = Plan(bundle_id=bundle.id, **_plan_values(fields, None))
    db.session.add(plan)
    db.session.flush()
    audit.record(
        "catalog.plan_created",
        "plan",
        plan.id,
        bundle_id=str(bundle.id),
        price=plan.price,
        currency=plan.currency,
    )
    db.session.commit()
    return plan


def update_plan(plan: Plan, fields: dict[str, Any]) -> Plan:
    """Change a plan; orders already sold keep the snapshot they took, and the version goes up."""
    bundle = db.session.get(Bundle, (plan.tenant_id, plan.bundle_id))
    assert bundle is not None
    _check_editable(bundle)
    values = _plan_values(fields, plan)
    changed = {name: value for name, value in values.items() if getattr(plan, name) != value}
    for name, value in changed.items():
        setattr(plan, name, value)
    if changed:
        plan.version += 1
        audit.record("catalog.plan_updated", "plan", plan.id, changed=sorted(changed), version=plan.version)
    db.session.commit()
    return plan


def bundle_count() -> int:
    """Return how many bundles the tenant has (the getting-started checklist)."""
    return db.session.scalar(select(func.count()).select_from(Bundle)) or 0
