"""What the webhook endpoint needs to know about a channel, kept in this process for a few seconds.

A delivery must be verified before anything is stored, and verifying needs the channel's tenant, kind, status
and opened secrets: three reads (channel, tenant data key, RLS binding) per delivery during a flash sale.
Entries live `WEBHOOK_TARGET_SECONDS` (5 s by default): a pause or a secret change made in this process
applies at once (the channels service calls `forget`), one made in another server process within those
seconds. A rotated-out secret stops verifying exactly when its overlap ends (checked on every delivery).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

from flask import current_app

from integrations import secretbox
from integrations.adapters import adapter_for
from integrations.models import Channel
from saas.extensions import db
from tenants import rls
from tenants.scoping import tenant_bound

_LIMIT = 100_000


@dataclass
class HookTarget:
    """A channel as its webhook URL sees it: whose it is, whether it takes deliveries, how they are signed."""

    tenant_id: int
    id: int
    public_id: str
    kind: str
    active: bool
    secret: bytes | None
    previous_secret: bytes | None  # verifies until previous_secret_until (a rotation's overlap)
    previous_secret_until: dt.datetime | None
    last_delivery_at: dt.datetime | None
    fresh_until: float  # time.monotonic()

    def secrets_at(self, now: dt.datetime) -> list[bytes]:
        """Return the secrets a delivery may be signed with at `now`."""
        found = [self.secret] if self.secret else []
        if self.previous_secret and self.previous_secret_until and self.previous_secret_until > now:
            found.append(self.previous_secret)
        return found


_targets: dict[str, HookTarget] = {}
_lock = threading.Lock()


def lookup(public_id: str) -> HookTarget | None:
    """Return the channel a webhook URL names, in whichever tenant it is; None when no channel takes it."""
    if not 8 <= len(public_id) <= 40:
        return None
    with _lock:
        known = _targets.get(public_id)
    if known is not None and known.fresh_until > time.monotonic():
        return known
    target = _load(public_id)
    with _lock:
        if len(_targets) > _LIMIT:
            _targets.clear()
        if target is None:
            _targets.pop(public_id, None)
        else:
            _targets[public_id] = target
    return target


def forget(public_id: str) -> None:
    """Drop what this process knows of a channel (its status, secrets or kind changed)."""
    with _lock:
        _targets.pop(public_id, None)


def remember_delivery(target: HookTarget, at: dt.datetime) -> None:
    """Note that the channel's last delivery time was written (so it is not written again for a while)."""
    target.last_delivery_at = at


def _load(public_id: str) -> HookTarget | None:
    owner = rls.channel_owner(public_id)  # the narrow path: the public id is all we know
    if owner is None:
        return None
    tenant_id, channel_id = owner
    with tenant_bound(tenant_id):
        channel = db.session.get(Channel, (tenant_id, channel_id))
        if channel is None or not adapter_for(channel.kind).takes_webhooks:
            return None
        secret, previous = _opened_secrets(channel)
        target = HookTarget(
            tenant_id=channel.tenant_id,
            id=channel.id,
            public_id=channel.public_id,
            kind=channel.kind,
            active=channel.is_active,
            secret=secret,
            previous_secret=previous,
            previous_secret_until=channel.previous_secret_expires_at,
            last_delivery_at=channel.last_delivery_at,
            fresh_until=time.monotonic() + float(current_app.config["WEBHOOK_TARGET_SECONDS"]),
        )
        db.session.commit()  # end the read transaction before the delivery's own
    return target


def stored_secrets(channel: Channel) -> list[bytes]:
    """Return the channel's current and previous secrets, opened, whatever the overlap (to read stored
    deliveries: a notification received during an overlap is still processed after it ends)."""
    return [secret for secret in _opened_secrets(channel) if secret]


def _opened_secrets(channel: Channel) -> tuple[bytes | None, bytes | None]:
    """Return the channel's current and previous secrets, opened (None where there is none)."""

    def opened(blob: bytes | None) -> bytes | None:
        return secretbox.open_sealed(channel.tenant_id, "channel", channel.id, blob) if blob else None

    return opened(channel.secret_ciphertext), opened(channel.previous_secret_ciphertext)
