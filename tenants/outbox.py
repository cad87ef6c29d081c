"""The tenant side of the outbox (`saas.outbox`): queue a tenant's mail, send by id, sweep every tenant."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select

from saas import outbox
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.models import OutboxMessage, Tenant
from tenants.scoping import current_tenant_id, tenant_bound

log = logging.getLogger(__name__)

outbox.register_kind(
    outbox.OutboxKind("message", OutboxMessage, lambda record: outbox.compose_stored(record, "message"))
)


def add_mail(
    to: list[str] | str,
    subject: str,
    body: str,
    *,
    kind: str,
    link: tuple[str, list[Any]] | None = None,
    about: tuple[str, int] | None = None,
) -> OutboxMessage:
    """Add a mail to the bound tenant's outbox in the caller's transaction (send it with `send_after_commit`).

    `body` holds `saas.outbox.LINK` where the signed link `link` = (link kind, args) goes: the link is built
    when the mail is sent, so no token is stored or queued.
    """
    record: OutboxMessage = outbox.stored_message(
        OutboxMessage,
        kind,
        to,
        subject,
        body,
        link=link,
        subject_type=about[0] if about else "",
        subject_id=about[1] if about else None,
    )
    db.session.add(record)
    return record


def queue_mail(
    to: list[str] | str,
    subject: str,
    body: str,
    *,
    kind: str,
    link: tuple[str, list[Any]] | None = None,
    about: tuple[str, int] | None = None,
) -> int:
    """Record a mail in the bound tenant's outbox, commit, and send it; return the record's id."""
    record = add_mail(to, subject, body, kind=kind, link=link, about=about)
    record_id = int(record.id)
    db.session.commit()
    send_after_commit([record_id])
    return record_id


def send_after_commit(ids: list[int], kind_name: str = "message") -> None:
    """Queue the sending of committed records of the bound tenant (the sweep sends them if this is lost)."""
    outbox.send_soon(kind_name, current_tenant_id(), ids)


def send_job(tenant_id: int, kind_name: str, ids: list[int]) -> int:
    """Job: send a tenant's outbox records by id."""
    with tenant_bound(tenant_id):
        return outbox.send_records(kind_name, ids)


def sweep_everywhere(now: dt.datetime | None = None) -> dict[str, int]:
    """Periodic: send what is still queued past the grace period, in every tenant and the platform's.

    A mail job lost with Redis, or a worker killed mid-send, is repaired here. One tenant's failure does not
    stop the others; it is raised at the end so the job shows as failed.
    """
    moment = now or utcnow()
    totals = {"tenants": 0, "sent": outbox.sweep_platform(moment)}
    tenant_ids = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id)))
    db.session.commit()
    failed: list[int] = []
    for tenant_id in tenant_ids:
        with tenant_bound(tenant_id):
            try:
                for kind in outbox.kinds(tenant_owned=True):
                    totals["sent"] += outbox.sweep_kind(kind.name, moment)
                totals["tenants"] += 1
            except Exception:
                db.session.rollback()
                log.exception("sweeping the outbox of tenant %s failed", tenant_id)
                failed.append(tenant_id)
    if failed:
        raise RuntimeError(f"sweeping the outbox failed for tenants {failed}")
    return totals
