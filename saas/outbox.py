"""The outbox: every message to a person is a database record first, sent after the commit, swept if lost.

A message record (an order's delivery, a tenant's other mails, a platform mail) moves
`queued → sent / failed` (or `skipped`: nothing to send it to). It is written in the transaction that
decided to send it; a job carrying only the record's id sends it after the commit; a periodic sweep sends
what is still queued after `OUTBOX_GRACE_SECONDS`, so a job lost with Redis is repaired.

**At-least-once, with a stable Message-ID.** A sender claims a record with one conditional UPDATE
(`claimed_until`), sends, then marks it sent. Two senders never both send a queued record. A sender that dies
after the provider accepted the message but before marking it sent lets the claim lapse, and the sweep
sends it again: a rare duplicate, with the same Message-ID (derived from the record), which mail clients
and providers fold into one. The other choice, at-most-once, would lose the delivery mail in that window:
for the buyer the message is the delivery, so a duplicate is the lesser harm.

The record holds ids and text without secrets. A signed link (reset, invitation, "my rights") is marked
`LINK` in the stored text and built at send time by the link kind registered for it; a job payload holds
the record's id only. The outbox is channel-agnostic: a record names its transport (`mail` now; SMS
registers `sms`), and a batch of records is sent over one transport session (one SMTP connection).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import BigInteger, Index, Integer, String, Text, and_, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import JSON

from saas import jobs
from saas.extensions import db
from saas.ids import new_id
from saas.timeutil import utcnow

log = logging.getLogger(__name__)

OUTBOX_STATUSES = ("queued", "sent", "failed", "skipped")
LINK = "\u27e6link\u27e7"  # ⟦link⟧: where a stored text's signed link goes, built at send time
BACKOFF_SECONDS = (60, 300, 900, 3600, 6 * 3600)


class OutboxColumns:
    """Mixin: the columns that make a record an outbox message (its state, attempts and last error)."""

    status: Mapped[str] = mapped_column(String(12), default="queued")  # one of OUTBOX_STATUSES
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    claimed_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StoredMessageColumns(OutboxColumns):
    """Mixin: a message whose text is written with the record (the signed link, if any, is built later)."""

    kind: Mapped[str] = mapped_column(String(40))
    transport: Mapped[str] = mapped_column(String(12), default="mail")
    recipient: Mapped[str] = mapped_column(Text)  # comma-separated addresses
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    link_kind: Mapped[str] = mapped_column(String(40), default="")
    link_args: Mapped[list[Any]] = mapped_column(JSON, default=list)


@dataclass(frozen=True)
class SmsParts:
    """What an SMS provider needs beside the text: the kind, the tenant's 签名, template code and params."""

    kind: str
    sign_name: str
    template: str
    params: dict[str, str]


@dataclass(frozen=True)
class Outgoing:
    """One message ready for its transport."""

    transport: str
    to: list[str]
    subject: str
    text: str
    message_id: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sms: SmsParts | None = None  # set for the `sms` transport


class Transport(Protocol):
    """Sends messages of one kind of transport; `session()` opens what a batch shares."""

    def session(self) -> AbstractContextManager[Callable[[Outgoing], None]]: ...


@dataclass(frozen=True)
class OutboxKind:
    """A model whose rows are outbox messages, and how to compose one (None: nothing to send)."""

    name: str
    model: Any
    compose: Callable[[Any], Outgoing | None]
    tenant_owned: bool = True


# Message kinds whose stored text is a secret that cannot be rebuilt (a one-time code): erased once the
# record is settled, so the code lives in the database only until it is sent.
SECRET_MESSAGE_KINDS = frozenset({"verification_code"})
_KINDS: dict[str, OutboxKind] = {}
_TRANSPORTS: dict[str, Transport] = {}
_LINKS: dict[str, Callable[..., str]] = {}


def register_kind(kind: OutboxKind) -> None:
    """Make a model's records sendable and sweepable (called where the model is defined)."""
    _KINDS[kind.name] = kind


def register_transport(name: str, transport: Transport) -> None:
    """Register how messages of one transport are sent (`mail` here; SMS later)."""
    _TRANSPORTS[name] = transport


def register_link(name: str, build: Callable[..., str]) -> None:
    """Register a signed-link builder: `build(*link_args)` returns the absolute link (see saas.links)."""
    _LINKS[name] = build


def build_link(name: str, args: list[Any]) -> str:
    """Build a registered signed link now (a short link resolves through this)."""
    return _LINKS[name](*args)


def kinds(*, tenant_owned: bool) -> list[OutboxKind]:
    """Return the registered outbox models, tenant-owned or platform."""
    return [kind for kind in _KINDS.values() if kind.tenant_owned == tenant_owned]


def kind_named(name: str) -> OutboxKind:
    """Return a registered outbox model by name."""
    return _KINDS[name]


def message_id_of(kind: str, tenant_id: int | None, record_id: int) -> str:
    """Return the stable Message-ID of a record: every send of it carries the same one."""
    sender = str(current_app.config.get("MAIL_FROM", ""))
    domain = sender.rsplit("@", 1)[-1].strip(" >") if "@" in sender else "quanyi.local"
    return f"<{kind}.{tenant_id or 0}.{record_id}@{domain}>"


def compose_stored(record: Any, kind: str) -> Outgoing:
    """Compose a stored-text record, building its signed link now."""
    text = record.body
    if record.link_kind:
        text = text.replace(LINK, _LINKS[record.link_kind](*record.link_args))
    return Outgoing(
        record.transport,
        [address.strip() for address in record.recipient.split(",") if address.strip()],
        record.subject,
        text,
        message_id_of(kind, getattr(record, "tenant_id", None), record.id),
    )


def stored_message(
    model: Any,
    kind: str,
    to: list[str] | str,
    subject: str,
    body: str,
    *,
    link: tuple[str, list[Any]] | None = None,
    transport: str = "mail",
    **columns: Any,
) -> Any:
    """Build a stored-text record (not yet added). `body` holds `LINK` where `link` (kind, args) goes."""
    recipients = [to] if isinstance(to, str) else list(to)
    if "\n" in subject or "\r" in subject:
        raise ValueError("a mail subject is one line")
    if link is not None and link[0] not in _LINKS:
        raise ValueError(f"unknown link kind {link[0]!r}")
    return model(
        kind=kind,
        transport=transport,
        recipient=",".join(recipients),
        subject=subject[:300],
        body=body,
        link_kind=link[0] if link else "",
        link_args=[str(arg) for arg in link[1]] if link else [],
        status="queued" if recipients else "skipped",
        **columns,
    )


# ---------------------------------------------------------------- sending


def _claim(model: Any, ids: list[int], now: dt.datetime) -> list[int]:
    """Claim queued, unclaimed records with one conditional UPDATE; return the ids this caller won."""
    lease = now + dt.timedelta(seconds=int(current_app.config["OUTBOX_CLAIM_SECONDS"]))
    rows = db.session.execute(
        update(model)
        .where(
            model.id.in_(ids),
            model.status == "queued",
            or_(model.claimed_until.is_(None), model.claimed_until < now),
        )
        .values(claimed_until=lease, attempts=model.attempts + 1)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    won = [int(record_id) for record_id in rows.scalars()]
    db.session.commit()
    return won


def _settle(model: Any, record_id: int, error: str | None, *, skipped: bool = False) -> None:
    """Mark a claimed record sent (or skipped), or back to queued with a backoff, or failed at the limit."""
    now = utcnow()
    record = db.session.scalar(
        select(model).where(model.id == record_id).execution_options(populate_existing=True)
    )
    if record is None:
        return
    if error is None:
        record.status = "skipped" if skipped else "sent"
        record.sent_at = None if skipped else now
        record.last_error = ""
    elif record.attempts >= int(current_app.config["OUTBOX_MAX_ATTEMPTS"]):
        record.status, record.last_error = "failed", error[:2000]
    else:
        wait = BACKOFF_SECONDS[min(record.attempts, len(BACKOFF_SECONDS)) - 1]
        record.next_attempt_at = now + dt.timedelta(seconds=wait)
        record.last_error = error[:2000]
    record.claimed_until = None
    if record.status != "queued" and getattr(record, "kind", "") in SECRET_MESSAGE_KINDS:
        record.body = ""
    db.session.commit()


SEND_CHUNK = 50  # records read, sent and marked together
SEND_THREADS = 4  # transport sessions (SMTP connections) a large batch is sent over in parallel
PARALLEL_FROM = 20  # a batch this large is sent in SEND_THREADS threads; smaller ones in order, in one


def send_records(kind_name: str, ids: list[int]) -> int:
    """Claim and send records of one outbox model (the tenant bound for tenant-owned ones); return sent.

    Records are read and composed SEND_CHUNK at a time with one query, sent over one transport session
    (one SMTP connection) or, for a large batch, over SEND_THREADS sessions in parallel, and the chunk's
    sent records are marked with one UPDATE: a crash repeats at most the chunk in flight (with the same
    Message-ID, see above). No transaction is held while sending.
    """
    kind = _KINDS[kind_name]
    won = _claim(kind.model, ids, utcnow()) if ids else []
    threads = SEND_THREADS if len(won) >= PARALLEL_FROM else 1
    sent = 0
    for at in range(0, len(won), SEND_CHUNK):
        chunk = won[at : at + SEND_CHUNK]
        composed, skipped, failed = _compose_chunk(kind, chunk)
        db.session.rollback()  # end the read before the network
        errors = _deliver(composed, threads)
        failed.update(errors)
        for record_id in skipped:
            _settle(kind.model, record_id, None, skipped=True)
        for record_id, error in failed.items():
            log.warning("outbox %s %s not sent: %s", kind_name, record_id, error)
            _settle(kind.model, record_id, error)
        done = [record_id for record_id, _outgoing in composed if record_id not in errors]
        _settle_sent(kind.model, done)
        sent += len(done)
    return sent


def _compose_chunk(
    kind: OutboxKind, chunk: list[int]
) -> tuple[list[tuple[int, Outgoing]], list[int], dict[int, str]]:
    """Read a chunk of claimed records with one query and compose each: (composed, skipped, failed)."""
    records = {
        record.id: record
        for record in db.session.scalars(
            select(kind.model).where(kind.model.id.in_(chunk)).execution_options(populate_existing=True)
        )
    }
    composed: list[tuple[int, Outgoing]] = []
    skipped: list[int] = []
    failed: dict[int, str] = {}
    for record_id in chunk:
        record = records.get(record_id)
        try:
            outgoing = kind.compose(record) if record is not None else None
        except Exception as error:  # one message's failure is its record's, not the batch's
            failed[record_id] = f"{type(error).__name__}: {error}"
            continue
        if outgoing is None or not outgoing.to:
            skipped.append(record_id)
        else:
            composed.append((record_id, outgoing))
    return composed, skipped, failed


def _deliver(composed: list[tuple[int, Outgoing]], threads: int) -> dict[int, str]:
    """Send composed messages over transport sessions (`threads` in parallel); return the failures."""
    if threads <= 1 or len(composed) < 2:
        return _send_over_sessions(composed)
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run(part: list[tuple[int, Outgoing]]) -> dict[int, str]:
        with app.app_context():
            return _send_over_sessions(part)

    parts = [composed[n::threads] for n in range(threads) if composed[n::threads]]
    errors: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="quanyi-send") as pool:
        for found in pool.map(run, parts):
            errors.update(found)
    return errors


def _send_over_sessions(composed: list[tuple[int, Outgoing]]) -> dict[int, str]:
    """Send messages in order, one session per transport; return {record id: error} of the failures."""
    errors: dict[int, str] = {}
    sessions: dict[str, Any] = {}
    with _sessions() as open_session:
        for record_id, outgoing in composed:
            try:
                if outgoing.transport not in sessions:
                    sessions[outgoing.transport] = open_session(outgoing.transport)
                sessions[outgoing.transport](outgoing)
            except Exception as error:
                errors[record_id] = f"{type(error).__name__}: {error}"
    return errors


def _settle_sent(model: Any, ids: list[int]) -> None:
    """Mark claimed records sent with one UPDATE (and erase the text of secret kinds); commits."""
    if not ids:
        return
    db.session.execute(
        update(model)
        .where(model.id.in_(ids))
        .values(status="sent", sent_at=utcnow(), last_error="", claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    if hasattr(model, "body") and hasattr(model, "kind"):
        db.session.execute(
            update(model)
            .where(model.id.in_(ids), model.kind.in_(sorted(SECRET_MESSAGE_KINDS)))
            .values(body="")
            .execution_options(synchronize_session=False)
        )
    db.session.commit()


@contextmanager
def _sessions() -> Iterator[Callable[[str], Callable[[Outgoing], None]]]:
    """Open transport sessions on demand and close them all at the end of the batch."""
    stack: list[AbstractContextManager[Callable[[Outgoing], None]]] = []

    def open_session(name: str) -> Callable[[Outgoing], None]:
        manager = _TRANSPORTS[name].session()
        send = manager.__enter__()
        stack.append(manager)
        return send

    try:
        yield open_session
    finally:
        for manager in reversed(stack):
            try:
                manager.__exit__(None, None, None)
            except Exception:
                log.warning("closing a transport session failed", exc_info=True)


def due_ids(kind_name: str, now: dt.datetime, *, limit: int = 500) -> list[int]:
    """Return records to sweep: queued past the grace period (or due for a retry) and not claimed."""
    model = _KINDS[kind_name].model
    grace = now - dt.timedelta(seconds=int(current_app.config["OUTBOX_GRACE_SECONDS"]))
    rows = db.session.scalars(
        select(model.id)
        .where(
            model.status == "queued",
            or_(
                and_(model.next_attempt_at.is_(None), model.created_at <= grace),
                model.next_attempt_at <= now,
            ),
            or_(model.claimed_until.is_(None), model.claimed_until < now),
        )
        .order_by(model.created_at)
        .limit(limit)
    )
    found = [int(record_id) for record_id in rows]
    db.session.commit()
    return found


SWEEP_BATCH = 500
SWEEP_BATCHES_PER_RUN = 4  # a run stays well inside its job timeout; the next minute's run goes on


def sweep_kind(kind_name: str, now: dt.datetime | None = None) -> int:
    """Send due records of one model (within the bound tenant for tenant-owned ones); return how many.

    At most SWEEP_BATCHES_PER_RUN batches: a sweep killed by its job timeout in the middle of a send would
    leave claimed records to be sent again once their claim lapses.
    """
    total = 0
    for _batch in range(SWEEP_BATCHES_PER_RUN):
        ids = due_ids(kind_name, now or utcnow(), limit=SWEEP_BATCH)
        if not ids:
            break
        total += send_records(kind_name, ids)
        if len(ids) < SWEEP_BATCH:
            break
    return total


# ---------------------------------------------------------------- platform messages (no tenant)


class PlatformMessage(StoredMessageColumns, db.Model):  # type: ignore[name-defined]
    """A mail about a user's account (a password reset): the platform's, not a tenant's."""

    __tablename__ = "platform_messages"
    __table_args__ = (Index("ix_platform_messages_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, default=new_id)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


register_kind(
    OutboxKind("platform", PlatformMessage, lambda r: compose_stored(r, "platform"), tenant_owned=False)
)


def queue_platform_mail(
    to: str, subject: str, body: str, *, kind: str, link: tuple[str, list[Any]] | None = None, **cols: Any
) -> int:
    """Record a platform mail in the session and commit; send it after the commit. Returns its id."""
    record = stored_message(PlatformMessage, kind, to, subject, body, link=link, **cols)
    record.id = record.id or new_id()
    db.session.add(record)
    db.session.commit()
    send_soon("platform", None, [record.id])
    return int(record.id)


def send_soon(kind_name: str, tenant_id: int | None, ids: list[int]) -> None:
    """After the commit: queue one job to send these records; if queueing fails, the sweep sends them."""
    ids = [int(i) for i in ids if i]
    if not ids:
        return
    try:
        if _KINDS[kind_name].tenant_owned:
            jobs.enqueue("tenants.outbox.send_job", tenant_id, kind_name, ids, queue="mail", timeout=600)
        else:
            jobs.enqueue("saas.outbox.send_job", kind_name, ids, queue="mail", timeout=600)
    except Exception:  # Redis down: the records are durable and the sweep sends them after the grace
        log.warning("could not queue outbox %s %s; the sweep will send them", kind_name, ids, exc_info=True)


def send_job(kind_name: str, ids: list[int]) -> int:
    """Job: send platform outbox records by id (tenant-owned ones go through `tenants.outbox.send_job`)."""
    return send_records(kind_name, ids)


def sweep_platform(now: dt.datetime | None = None) -> int:
    """Send the platform's due records (no tenant)."""
    return sum(sweep_kind(kind.name, now) for kind in kinds(tenant_owned=False))
