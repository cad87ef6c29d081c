"""Demo data: a demo tenant with a member of each role; packages add their own steps."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy import select

from saas.auth.models import User
from saas.auth.services import create_user, find_user
from saas.extensions import db
from saas.registry import Registry
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tenants.scoping import tenant_bound

DEMO_SLUG = "demo"
DEMO_PASSWORD = "quanyi-demo-2026"

DemoStep = Callable[[Tenant], None]
# Steps packages register on the app in their init_app; each runs once with the demo tenant bound and
# commits itself, in registration order (inner packages first).
DEMO_STEPS: Registry[DemoStep] = Registry("quanyi.demo_steps")


def register_demo_step(app: Flask, step: DemoStep) -> None:
    """Have `quanyi demo` run `step` on a new demo tenant of `app`."""
    DEMO_STEPS.register(app, f"{step.__module__}.{step.__qualname__}", step)


DemoLogin = tuple[str, str, str | None]  # role, email, password (None: the user kept its own)


def demo_email(role: Role) -> str:
    """Return the demo login of `role`: at example.com, which the login form accepts in every mode."""
    return f"{role.value}@demo.example.com"


def _legacy_demo_email(role: Role) -> str:
    # Until 2026-12 the demo used the reserved .test domain, which production's login form refuses.
    return f"{role.value}@demo.quanyi.test"


def _demo_user(role: Role, password: str) -> tuple[User, bool]:
    """Return the demo user of `role` (moving one from the old `.test` address) and whether it is new."""
    user = find_user(demo_email(role))
    if user is None and (user := find_user(_legacy_demo_email(role))) is not None:
        user.email = demo_email(role)
    if user is not None:
        return user, False
    user = create_user(demo_email(role), f"Demo {role.value}", password)
    db.session.flush()
    return user, True


def create_demo_tenant(
    password: str = DEMO_PASSWORD,
) -> tuple[Tenant, list[tuple[str, str, str | None]], bool]:
    """Create the demo tenant unless it exists; return it, the logins, and whether it was created now.

    Each login is (role, email, password); the password is None for a user that existed already and kept
    its own. Every member of each role is there afterwards, whatever an earlier run left.
    """
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
    created = tenant is None
    if tenant is None:
        tenant = Tenant(slug=DEMO_SLUG, name="权益优选 Demo Shop")
        db.session.add(tenant)
        db.session.flush()
    logins: list[DemoLogin] = []
    for role in Role:
        user, new = _demo_user(role, password)
        logins.append((role.value, user.email, password if new else None))
        with tenant_bound(tenant.id):  # memberships are under row-level security
            member = db.session.scalar(
                select(Membership).where(Membership.tenant_id == tenant.id, Membership.user_id == user.id)
            )
            if member is None:
                db.session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=role.value))
    db.session.commit()
    if created:
        with tenant_bound(tenant.id):
            for step in DEMO_STEPS.all():
                step(tenant)
    return tenant, logins, created
