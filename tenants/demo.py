"""Demo data: a demo tenant with a member of each role; packages add their own steps."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from saas.auth.models import User
from saas.auth.services import create_user, find_user
from saas.extensions import db
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tenants.scoping import tenant_bound

DEMO_SLUG = "demo"
DEMO_PASSWORD = "quanyi-demo-2026"

# Steps packages add in their init_app; each runs once with the demo tenant bound and commits itself.
DEMO_STEPS: list[Callable[[Tenant], None]] = []


def demo_email(role: Role) -> str:
    return f"{role.value}@demo.quanyi.test"


def create_demo_tenant() -> tuple[Tenant, list[tuple[str, str, str]], bool]:
    """Create the demo tenant unless it exists; return it, the logins, and whether it was created now."""
    logins = [(role.value, demo_email(role), DEMO_PASSWORD) for role in Role]
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
    if tenant is not None:
        return tenant, logins, False
    tenant = Tenant(slug=DEMO_SLUG, name="权益优选 Demo Shop")
    db.session.add(tenant)
    db.session.flush()
    for role in Role:
        user: User | None = find_user(demo_email(role))
        if user is None:
            user = create_user(demo_email(role), f"Demo {role.value}", DEMO_PASSWORD)
            db.session.flush()
        with tenant_bound(tenant.id):
            db.session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=role.value))
    db.session.commit()
    with tenant_bound(tenant.id):
        for step in DEMO_STEPS:
            step(tenant)
    return tenant, logins, True
