"""Tenants, memberships, invitations, API keys, the audit log and job runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from saas.extensions import db
from saas.ids import new_id
from saas.outbox import StoredMessageColumns
from saas.timeutil import utcnow
from tenants.scoping import TenantOwned


class Tenant(db.Model):  # type: ignore[name-defined]
    """A merchant: the unit of isolation. Global table."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    locale: Mapped[str] = mapped_column(String(10), default="zh_CN")
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Membership(db.Model):  # type: ignore[name-defined]
    """A user's role in one tenant. Global table: a user lists the tenants they belong to."""

    __tablename__ = "memberships"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Invitation(TenantOwned, db.Model):  # type: ignore[name-defined]
    """An emailed invitation to join a tenant with a role; the link is signed and used once."""

    __tablename__ = "invitations"

    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class ApiKey(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A tenant API key: the secret is shown once and stored as a SHA-256 hash."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "prefix"), Index("ix_api_keys_prefix", "prefix"))

    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(db.JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditEvent(TenantOwned, db.Model):  # type: ignore[name-defined]
    """Who did what to which object, when, from where, and why."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_created", "tenant_id", "created_at"),)

    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80))
    object_type: Mapped[str | None] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class JobRun(TenantOwned, db.Model):  # type: ignore[name-defined]
    """A background job a person waits on: its status, progress, result or error."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_tenant_status", "tenant_id", "status", "heartbeat_at"),)

    kind: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued/running/succeeded/failed
    progress: Mapped[int] = mapped_column(default=0)
    message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    # The lease: a running run's worker beats every few seconds; a run whose beat is older than
    # JOB_LEASE_SECONDS is dead and marked failed, and can be retried (as attempt + 1) with what it ran.
    heartbeat_at: Mapped[dt.datetime | None]
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    func_path: Mapped[str] = mapped_column(String(200), default="")
    args: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    queue: Mapped[str] = mapped_column(String(20), default="default")
    timeout: Mapped[int] = mapped_column(Integer, default=3600)

    @property
    def is_finished(self) -> bool:
        return self.status in ("succeeded", "failed")


class OutboxMessage(TenantOwned, StoredMessageColumns, db.Model):  # type: ignore[name-defined]
    """A tenant's message that is not an order's delivery: invitations, reminders, receipts, alerts, codes.

    An outbox record (`saas.outbox`): written with the change that decided to send it, then sent once.
    `subject_type`/`subject_id` name what it is about (a subscription, an invitation) for its page.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_tenant_status", "tenant_id", "status", "created_at"),
        Index("ix_outbox_messages_tenant_subject", "tenant_id", "subject_type", "subject_id"),
    )

    subject_type: Mapped[str] = mapped_column(String(40), default="")
    subject_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
