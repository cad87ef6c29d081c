"""The permission matrix: one table in code, rendered into the README (tests keep them equal)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l


class Role(StrEnum):
    """A member's role in one tenant."""

    OWNER = "owner"
    ADMIN = "admin"
    OPERATOR = "operator"
    FINANCE = "finance"
    ANALYST = "analyst"
    SUPPORT = "support"


# permission -> (what it allows, the roles that have it)
PERMISSIONS: dict[str, tuple[Any, frozenset[Role]]] = {}  # Any: a lazily translated description


def _grant(name: str, description: Any, *roles: Role) -> str:
    PERMISSIONS[name] = (description, frozenset(roles))
    return name


_ALL = tuple(Role)
_O, _A, _OP, _F, _AN, _S = (Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.FINANCE, Role.ANALYST, Role.SUPPORT)

TENANT_VIEW = _grant("tenant.view", _l("open the tenant's back office"), *_ALL)
CATALOG_VIEW = _grant("catalog.view", _l("read rights, bundles, plans and stock levels"), *_ALL)
CATALOG_MANAGE = _grant("catalog.manage", _l("create and edit rights, bundles and plans"), _O, _A, _OP)
INVENTORY_MANAGE = _grant(
    "inventory.manage", _l("import card keys, void keys, set stock alerts"), _O, _A, _OP
)
INVENTORY_REVEAL = _grant("inventory.reveal", _l("reveal one card key in full (audited)"), _O, _A, _OP)
CHANNELS_VIEW = _grant(
    "channels.view", _l("read channels, SKU mappings and the webhook inbox"), _O, _A, _OP, _F
)
CHANNELS_MANAGE = _grant("channels.manage", _l("connect channels, map SKUs, replay deliveries"), _O, _A, _OP)
ORDERS_VIEW = _grant("orders.view", _l("look orders, customers and grants up"), _O, _A, _OP, _F, _AN, _S)
ORDERS_MANAGE = _grant("orders.manage", _l("enter orders by hand or CSV, resend deliveries"), _O, _A, _F, _S)
ORDERS_REFUND = _grant("orders.refund", _l("refund orders, lines or grants"), _O, _A, _F, _S)
SUBSCRIPTIONS_CANCEL = _grant(
    "subscriptions.cancel", _l("cancel or resume a subscription for a customer"), _O, _A, _S
)
REPORTS_VIEW = _grant("reports.view", _l("read dashboards"), _O, _A, _OP, _F, _AN)
REPORTS_EXPORT = _grant("reports.export", _l("run reconciliation and export reports"), _O, _A, _F)
TEAM_VIEW = _grant("team.view", _l("see the team"), *_ALL)
TEAM_MANAGE = _grant("team.manage", _l("invite members, change roles, remove members"), _O, _A)
AUDIT_VIEW = _grant("audit.view", _l("browse the audit log"), _O, _A)
SETTINGS_MANAGE = _grant("settings.manage", _l("change tenant settings"), _O, _A)
API_KEYS_MANAGE = _grant("api_keys.manage", _l("create and revoke API keys"), _O, _A)
CAMPAIGNS_VIEW = _grant(
    "campaigns.view", _l("read partner campaigns, their figures and statements"), _O, _A, _OP, _F, _AN
)
CAMPAIGNS_MANAGE = _grant(
    "campaigns.manage", _l("create partner campaigns, export their codes, void codes"), _O, _A, _OP
)
CAMPAIGNS_PARTNER = _grant(
    "campaigns.partner", _l("issue and claim campaign codes through the partner API"), _O, _A
)


def has_permission(role: str, permission: str) -> bool:
    """Tell whether `role` holds `permission`; unknown permissions are a programming error."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return Role(role) in PERMISSIONS[permission][1]


def permissions_of(role: str) -> list[str]:
    """Return the permissions a role holds, in matrix order."""
    return [name for name, (_, roles) in PERMISSIONS.items() if Role(role) in roles]


def roles_assignable_by(role: str) -> list[Role]:
    """Return the roles a member with `role` may give; only an owner makes owners."""
    if role == Role.OWNER:
        return list(Role)
    if role == Role.ADMIN:
        return [r for r in Role if r != Role.OWNER]
    return []


def matrix_markdown() -> str:
    """Render the matrix as the Markdown table kept in the README."""
    head = "| permission | allows | " + " | ".join(r.value for r in Role) + " |"
    rule = "|---|---|" + "---|" * len(Role)
    with force_locale("en"):  # the README is in English
        rows = [
            f"| `{name}` | {desc} | " + " | ".join("✓" if r in roles else "" for r in Role) + " |"
            for name, (desc, roles) in PERMISSIONS.items()
        ]
    return "\n".join([head, rule, *rows])
