"""Test factories: tenants with a member per role, logins, objects created inside a tenant."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from flask.testing import FlaskClient

from saas.auth.models import User
from saas.auth.services import create_user
from saas.extensions import db
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tenants.scoping import tenant_bound

PASSWORD = "correct-horse-battery"


@dataclass
class Shop:
    """A tenant and one user per role."""

    tenant: Tenant
    members: dict[str, User] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return self.tenant.slug

    @property
    def owner(self) -> User:
        return self.members[Role.OWNER]

    @contextmanager
    def bound(self) -> Iterator[None]:
        """Act inside this tenant (as a job would)."""
        with tenant_bound(self.tenant.id):
            yield


def make_user(email_address: str, name: str = "") -> User:
    user = create_user(email_address, name or email_address.split("@")[0], PASSWORD)
    db.session.commit()
    return user


def make_shop(slug: str) -> Shop:
    """Create a tenant with a member of every role: `<role>@<slug>.test`."""
    tenant = Tenant(
        slug=slug, name=f"{slug.title()} Rights Co.", locale="en"
    )  # its customers' mails in English
    db.session.add(tenant)
    db.session.flush()
    shop = Shop(tenant)
    for role in Role:
        user = create_user(f"{role.value}@{slug}.test", f"{slug} {role.value}", PASSWORD)
        db.session.flush()
        with tenant_bound(tenant.id):
            db.session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=role.value))
        shop.members[role.value] = user
    db.session.commit()
    return shop


def login(client: FlaskClient, user: User, password: str = PASSWORD) -> None:
    """Sign `user` in through the real login form."""
    response = client.post("/login", data={"email": user.email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)


class Outbox:
    """Read the mails the app wrote to its mail folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def messages(self) -> list[EmailMessage]:
        if not self.folder.exists():
            return []
        paths = sorted(self.folder.glob("*.eml"))
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]  # type: ignore[misc]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if address in str(m["To"])]

    @staticmethod
    def body(message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())
