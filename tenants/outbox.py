"""The tenant side of the outbox (`saas.outbox`): queue a tenant's mail, send by id, sweep every tenant."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from saas import outbox, shortlinks, sms
from saas.extensions import db
from saas.phones import normalise_phone
from saas.timeutil import utcnow
from tenants.fanout import for_each_tenant
from tenants.models import OutboxMessage, Tenant
from tenants.scoping import current_tenant_id, tenant_bound

log = logging.getLogger(__name__)
SMS_LINK_MAX_AGE = 30 * 86400  # a short link in a stored SMS (reminder, receipt) lasts a month


class SmsCodeLimited(ValueError):
    """Too many verification codes to one phone number (per minute or per day)."""


def _compose_message(record: OutboxMessage) -> outbox.Outgoing | None:
    """Compose a stored record: a mail as stored, an SMS from its kind's template (`saas.sms`)."""
    if record.transport != "sms":
        return outbox.compose_stored(record, "message")
    if not record.body:
        return None  # a settled secret (a code) is erased: nothing to send again
    params = {str(k): str(v) for k, v in json.loads(record.body).items()}
    if record.link_kind:
        params["link"] = shortlinks.short_url(
            record.link_kind, list(record.link_args), max_age=SMS_LINK_MAX_AGE, tenant_id=record.tenant_id
        )
    tenant = db.session.get(Tenant, record.tenant_id)
    message_id = outbox.message_id_of("message", record.tenant_id, record.id)
    return sms.outgoing_sms(
        tenant.settings if tenant else None,
        tenant.locale if tenant else "zh_CN",
        record.kind,
        record.recipient,
        params,
        message_id,
    )


outbox.register_kind(outbox.OutboxKind("message", OutboxMessage, _compose_message))


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


def add_sms(
    phone: str,
    kind: str,
    params: dict[str, str],
    *,
    link: tuple[str, list[Any]] | None = None,
    about: tuple[str, int] | None = None,
) -> OutboxMessage:
    """Add an SMS of one kind (`saas.sms.SMS_KINDS`) to the bound tenant's outbox in the caller's transaction.

    `phone` is normalised here (PhoneInvalid otherwise); `link` = (link kind, args) becomes the `link`
    variable, a short `/m/…` address built at send time. A verification code is limited per phone
    (SmsCodeLimited) and erased from the record once sent. Send it with `send_after_commit`.
    """
    number = normalise_phone(phone)
    if kind not in sms.SMS_KINDS:
        raise ValueError(f"unknown SMS kind {kind!r}")
    if kind == "verification_code":
        _check_code_limit(number)
    record: OutboxMessage = outbox.stored_message(
        OutboxMessage,
        kind,
        number,
        "",
        json.dumps({name: str(value) for name, value in params.items()}, ensure_ascii=False),
        link=link,
        transport="sms",
        subject_type=about[0] if about else "",
        subject_id=about[1] if about else None,
    )
    db.session.add(record)
    return record


def queue_sms(
    phone: str,
    kind: str,
    params: dict[str, str],
    *,
    link: tuple[str, list[Any]] | None = None,
    about: tuple[str, int] | None = None,
) -> int:
    """Record an SMS in the bound tenant's outbox, commit, and send it; return the record's id."""
    record = add_sms(phone, kind, params, link=link, about=about)
    record_id = int(record.id)
    db.session.commit()
    send_after_commit([record_id])
    return record_id


def _check_code_limit(phone: str) -> None:
    """Refuse a code beyond SMS_CODE_PER_MINUTE or SMS_CODE_PER_DAY to this phone in the bound tenant."""
    now = utcnow()
    config = current_app.config
    for window, limit in (
        (dt.timedelta(minutes=1), int(config["SMS_CODE_PER_MINUTE"])),
        (dt.timedelta(days=1), int(config["SMS_CODE_PER_DAY"])),
    ):
        count = db.session.scalar(
            select(func.count()).where(
                OutboxMessage.kind == "verification_code",
                OutboxMessage.transport == "sms",
                OutboxMessage.recipient == phone,
                OutboxMessage.created_at > now - window,
            )
        )
        if (count or 0) >= limit:
            raise SmsCodeLimited(phone)


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
    sent_by_platform = outbox.sweep_platform(moment)
    sent = for_each_tenant(lambda: _sweep_tenant(moment), "sweeping the outbox")
    return {"tenants": len(sent), "sent": sent_by_platform + sum(sent.values())}


def _sweep_tenant(moment: dt.datetime) -> int:
    return sum(outbox.sweep_kind(kind.name, moment) for kind in outbox.kinds(tenant_owned=True))
