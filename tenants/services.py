"""Tenant use cases: sign-up, team, invitations, API keys, settings. The only place that commits."""

from __future__ import annotations

import hashlib
import re
import secrets
from zoneinfo import available_timezones

from flask import current_app
from flask_babel import gettext as _
from flask_login import current_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select

from saas import outbox
from saas.auth.models import User, normalise_email
from saas.auth.services import create_user, find_user
from saas.extensions import db
from saas.links import public_url
from saas.sms import SmsSettings
from saas.timeutil import utcnow
from tenants import audit, rls
from tenants.models import ApiKey, Invitation, Membership, Tenant
from tenants.outbox import add_mail, send_after_commit
from tenants.roles import PERMISSIONS, Role, has_permission, roles_assignable_by
from tenants.scoping import tenant_bound, user_bound

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
RESERVED_SLUGS = frozenset({"api", "admin", "hooks", "static", "login", "signup", "www"})


class TenantError(ValueError):
    """A user-facing failure of a tenant action."""


# ---------------------------------------------------------------- sign-up and tenants


def check_slug(slug: str) -> str:
    """Validate a tenant slug: lower case letters, digits and dashes, not taken, not reserved."""
    slug = slug.strip().lower()
    if not SLUG_PATTERN.match(slug) or slug in RESERVED_SLUGS:
        raise TenantError(_("Use 3–63 lower-case letters, digits or dashes for the address."))
    if db.session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
        raise TenantError(_("That address is taken."))
    return slug


def sign_up(
    tenant_name: str, slug: str, email: str, name: str, password: str, *, existing_user: User | None = None
) -> tuple[Tenant, User]:
    """Create a merchant: the tenant and its owner (a new user, or the signed-in one)."""
    slug = check_slug(slug)
    user = existing_user or create_user(email, name, password)
    tenant = Tenant(slug=slug, name=tenant_name.strip())
    db.session.add(tenant)
    db.session.flush()
    with tenant_bound(tenant.id):
        db.session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=Role.OWNER))
        audit.record("tenant.created", "tenant", tenant.id, actor=user.email)
    db.session.commit()
    return tenant, user


def tenants_of(user: User) -> list[tuple[Tenant, str]]:
    """Return the tenants a user belongs to, with their role in each."""
    with user_bound(user.id):
        rows = db.session.execute(
            select(Tenant, Membership.role)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .where(Membership.user_id == user.id)
            .order_by(Tenant.name)
        ).all()
    return [(tenant, role) for tenant, role in rows]


def update_settings(
    tenant: Tenant,
    name: str,
    time_zone: str,
    locale: str,
    currency: str,
    require_owner_two_factor: bool = False,
) -> None:
    """Change the tenant's name, time zone, language, currency and owners' two-factor requirement."""
    if time_zone not in available_timezones():
        raise TenantError(_("Unknown time zone."))
    if locale not in current_app.config["LANGUAGES"]:
        raise TenantError(_("Unknown language."))
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise TenantError(_("Currency is a three-letter ISO code such as CNY."))
    changes = {"name": name, "time_zone": time_zone, "locale": locale, "currency": currency}
    before = {key: getattr(tenant, key) for key in changes}
    for key, value in changes.items():
        setattr(tenant, key, value)
    before["require_owner_two_factor"] = bool((tenant.settings or {}).get("require_owner_two_factor"))
    tenant.settings = {**(tenant.settings or {}), "require_owner_two_factor": require_owner_two_factor}
    changes_recorded = {**changes, "require_owner_two_factor": require_owner_two_factor}
    audit.record("tenant.settings_changed", "tenant", tenant.id, before=before, after=changes_recorded)
    db.session.commit()


def update_sms_settings(tenant: Tenant, settings: SmsSettings) -> None:
    """Change the tenant's SMS 签名, template codes and channel choice (audited)."""
    before = SmsSettings.of(tenant.settings).as_dict()
    tenant.settings = {**(tenant.settings or {}), "sms": settings.as_dict()}
    audit.record("tenant.sms_settings_changed", "tenant", tenant.id, before=before, after=settings.as_dict())
    db.session.commit()


# ---------------------------------------------------------------- team


def members_of(tenant: Tenant) -> list[tuple[User, Membership]]:
    """Return the tenant's members with their memberships."""
    rows = db.session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant.id)
        .order_by(User.email)
    )
    return [(user, membership) for user, membership in rows]


def get_membership(tenant: Tenant, user_id: int) -> Membership | None:
    """Return a user's membership in the tenant."""
    return db.session.get(Membership, (tenant.id, user_id))


def _owner_count(tenant: Tenant) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(Membership.tenant_id == tenant.id, Membership.role == Role.OWNER)
        )
        or 0
    )


def _check_may_manage(actor_role: str, target_role: str, new_role: str | None = None) -> None:
    assignable = roles_assignable_by(actor_role)
    if Role(target_role) not in assignable or (new_role is not None and Role(new_role) not in assignable):
        raise TenantError(_("Only an owner can make or change owners."))


def change_role(
    tenant: Tenant, actor_role: str, user_id: int, new_role: str, reason: str | None = None
) -> None:
    """Give a member another role; the last owner keeps theirs."""
    membership = get_membership(tenant, user_id)
    if membership is None:
        raise TenantError(_("No such member."))
    if new_role not in set(Role):
        raise TenantError(_("Unknown role."))
    _check_may_manage(actor_role, membership.role, new_role)
    if membership.role == Role.OWNER and new_role != Role.OWNER and _owner_count(tenant) == 1:
        raise TenantError(_("The last owner cannot stop being owner; make someone else owner first."))
    old_role = membership.role
    membership.role = new_role
    audit.record("member.role_changed", "user", user_id, reason=reason, before=old_role, after=new_role)
    db.session.commit()


def remove_member(tenant: Tenant, actor_role: str, user_id: int, reason: str | None = None) -> None:
    """Remove a member from the tenant; the last owner cannot leave."""
    membership = get_membership(tenant, user_id)
    if membership is None:
        raise TenantError(_("No such member."))
    if membership.role == Role.OWNER and _owner_count(tenant) == 1:
        raise TenantError(_("The last owner cannot leave; make someone else owner first."))
    _check_may_manage(actor_role, membership.role)
    db.session.delete(membership)
    audit.record("member.removed", "user", user_id, reason=reason, role=membership.role)
    db.session.commit()


# ---------------------------------------------------------------- invitations


def _invitation_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="invitation")


def invitation_url(tenant_id: int | str, invitation_id: int | str) -> str:
    """Sign an invitation link now, on PUBLIC_BASE_URL (built when the mail is sent, never queued)."""
    token = _invitation_serializer().dumps({"t": int(tenant_id), "i": int(invitation_id)})
    return public_url("tenants.accept_invitation", token=token)


outbox.register_link("invitation", invitation_url)


def invite(tenant: Tenant, actor_role: str, email: str, role: str) -> Invitation:
    """Invite someone by email with a role; the mail holds a signed link valid for a week."""
    if role not in set(Role):
        raise TenantError(_("Unknown role."))
    _check_may_manage(actor_role, role)
    email = normalise_email(email)
    existing = find_user(email)
    if existing and get_membership(tenant, existing.id):
        raise TenantError(_("%(email)s is already a member.", email=email))
    invitation = Invitation(email=email, role=role, invited_by_id=_current_user_id())
    db.session.add(invitation)
    db.session.flush()
    audit.record("member.invited", "invitation", invitation.id, email=email, role=role)
    message = add_mail(
        email,
        _("You are invited to %(tenant)s on Quanyi", tenant=tenant.name),
        _(
            "You have been invited to join %(tenant)s as %(role)s.\n\nAccept within 7 days:\n%(link)s",
            tenant=tenant.name,
            role=role,
            link=outbox.LINK,
        ),
        kind="invitation",
        link=("invitation", [tenant.id, invitation.id]),
        about=("invitation", invitation.id),
    )
    message_id = message.id
    db.session.commit()
    send_after_commit([message_id])
    return invitation


def _current_user_id() -> int | None:
    return current_user.id if current_user and current_user.is_authenticated else None


def open_invitation(token: str) -> tuple[Tenant, Invitation]:
    """Return the tenant and pending invitation named by a signed link."""
    try:
        data = _invitation_serializer().loads(token, max_age=current_app.config["INVITATION_MAX_AGE"])
    except SignatureExpired as exc:
        raise TenantError(_("This invitation has expired; ask for a new one.")) from exc
    except BadSignature as exc:
        raise TenantError(_("This invitation link is not valid.")) from exc
    tenant = db.session.get(Tenant, data["t"])
    with tenant_bound(data["t"]):  # the signed link names the tenant
        invitation = db.session.get(Invitation, (data["t"], data["i"]))
    if tenant is None or invitation is None or invitation.revoked_at or invitation.accepted_at:
        raise TenantError(_("This invitation is no longer open."))
    return tenant, invitation


def accept_invitation(
    token: str, user: User | None, name: str = "", password: str = ""
) -> tuple[Tenant, User]:
    """Join the tenant: as the signed-in user, or as a new account created with the invited email."""
    tenant, invitation = open_invitation(token)
    if user is None:
        user = find_user(invitation.email) or create_user(invitation.email, name, password)
        if not user.check_password(password):
            raise TenantError(_("An account with this email exists; log in first, then open the link again."))
    elif user.email != invitation.email:
        raise TenantError(
            _("This invitation was sent to %(email)s; log in with that account.", email=invitation.email)
        )
    db.session.flush()
    with tenant_bound(tenant.id):
        if get_membership(tenant, user.id) is None:
            db.session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=invitation.role))
        invitation.accepted_at = utcnow()
        audit.record("member.joined", "user", user.id, actor=user.email, role=invitation.role)
    db.session.commit()
    return tenant, user


def pending_invitations() -> list[Invitation]:
    """Return the current tenant's open invitations."""
    return list(
        db.session.scalars(
            select(Invitation)
            .where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
            .order_by(Invitation.created_at.desc())
        )
    )


def revoke_invitation(invitation: Invitation) -> None:
    """Close an invitation so its link stops working."""
    invitation.revoked_at = utcnow()
    audit.record("member.invitation_revoked", "invitation", invitation.id, email=invitation.email)
    db.session.commit()


# ---------------------------------------------------------------- API keys

API_KEY_PREFIX = "qy_"


def hash_api_secret(secret: str) -> str:
    """Hash an API secret; it has 256 bits of entropy, so a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(actor_role: str, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create a key with scopes the creator holds; returns it and the secret, shown only once."""
    name = name.strip()
    if not name:
        raise TenantError(_("Give the key a name."))
    unknown = [scope for scope in scopes if scope not in PERMISSIONS]
    if unknown:
        raise TenantError(_("Unknown scopes: %(s)s", s=", ".join(unknown)))
    beyond = [scope for scope in scopes if not has_permission(actor_role, scope)]
    if beyond:
        raise TenantError(_("You cannot grant scopes you do not hold: %(s)s", s=", ".join(beyond)))
    prefix = secrets.token_hex(6)
    secret = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        name=name,
        prefix=prefix,
        secret_hash=hash_api_secret(secret),
        scopes=sorted(set(scopes)),
        created_by_id=_current_user_id(),
    )
    db.session.add(key)
    db.session.flush()
    audit.record("api_key.created", "api_key", key.id, name=name, scopes=key.scopes)
    db.session.commit()
    return key, secret


def find_api_key(secret: str) -> ApiKey | None:
    """Return the active key a bearer secret belongs to, in any tenant."""
    if not secret.startswith(API_KEY_PREFIX) or secret.count("_") < 2:
        return None
    prefix = secret[len(API_KEY_PREFIX) :].split("_", 1)[0]
    digest = hash_api_secret(secret)
    for tenant_id in rls.api_key_tenants(prefix):  # the narrow path: only the tenants of this prefix
        with tenant_bound(tenant_id):
            candidates = db.session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).all()
            for key in candidates:
                if secrets.compare_digest(key.secret_hash, digest) and key.is_active:
                    return key
    return None


def touch_api_key(key: ApiKey) -> None:
    """Record the key's last use (at most once a minute, to spare writes)."""
    now = utcnow()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        key.last_used_at = now
        db.session.commit()


def list_api_keys() -> list[ApiKey]:
    """Return the current tenant's keys, newest first."""
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))


def revoke_api_key(key: ApiKey) -> None:
    """Revoke a key at once; requests with it get 401."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record("api_key.revoked", "api_key", key.id, name=key.name)
        db.session.commit()
