"""Reconciliation jobs: build a run (detail → files, totals), match a settlement, the monthly schedule.

Jobs take ids, run with the tenant bound (`tenants.jobruns.execute_job_run` binds it) and are idempotent:
a finished run or settlement is left as it is when its job is delivered again.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from reports.reconciliation import exports, services
from reports.reconciliation.models import EXPORT_FORMATS, ReconciliationFile, ReconciliationRun
from saas.auth.models import User
from saas.extensions import db, is_postgres
from saas.links import public_url
from saas.money import to_text
from saas.timeutil import utcnow
from tenants.fanout import for_each_tenant
from tenants.jobruns import report_progress
from tenants.models import Membership, Tenant
from tenants.outbox import queue_mail
from tenants.roles import Role
from tenants.scoping import current_tenant_id, tenant_bound

log = logging.getLogger(__name__)
PROGRESS_EVERY = 20_000
SCHEDULE_DAYS = 3  # the monthly run is made on the 1st; the 2nd and 3rd catch up a missed scheduler


def run_folder(tenant_id: int, run_id: int) -> Path:
    """Return where a run's files live: FILES_DIR/<tenant id>/reconciliation/<run id>/."""
    return Path(current_app.config["FILES_DIR"]) / str(tenant_id) / "reconciliation" / str(run_id)


def _file_name(tenant: Tenant, run: ReconciliationRun, fmt: str) -> str:
    period = run.period_label.replace(" – ", "_")
    channel = "".join(c if c.isalnum() or c in "-_" else "_" for c in (run.channel or "all"))[:40]
    return f"reconciliation-{tenant.slug}-{period}-{channel}.{fmt}"


def _export_context(tenant: Tenant, run: ReconciliationRun) -> exports.ExportContext:
    return exports.ExportContext(
        tenant_name=tenant.name,
        period_label=f"{run.period_label} ({run.starts_on.isoformat()} – {run.ends_on.isoformat()})",
        channel_label=run.channel or _("all channels"),
        currency=run.currency,
        zone=run.time_zone,
        generated_at=utcnow(),
    )


def build_run(run_id: int, formats: list[str] | None = None) -> dict[str, Any]:
    """Job: stream the run's detail once into its files, sum it, store totals and files; mail if scheduled."""
    tenant_id = current_tenant_id()
    run = services.get_run(run_id)
    if run is None or run.is_finished:
        return {"run_id": str(run_id), "skipped": True}
    run.status, run.started_at, run.error = "running", utcnow(), None
    db.session.commit()
    try:
        outcome = _build(tenant_id, run_id, [f for f in (formats or EXPORT_FORMATS) if f in EXPORT_FORMATS])
    except Exception as error:
        db.session.rollback()
        shutil.rmtree(run_folder(tenant_id, run_id), ignore_errors=True)
        failed = services.get_run(run_id)
        if failed is not None:
            failed.status, failed.finished_at, failed.error = "failed", utcnow(), str(error)[:2000]
            db.session.commit()
        raise
    finished = services.get_run(run_id)
    if finished is not None and finished.schedule_key:
        notify_finance(tenant_id, run_id)
    return outcome


def _build(tenant_id: int, run_id: int, formats: list[str]) -> dict[str, Any]:
    if is_postgres():  # one snapshot for the detail, the batches and the counts
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    run = services.get_run(run_id)
    tenant = db.session.get(Tenant, tenant_id)
    assert run is not None and tenant is not None
    folder = run_folder(tenant_id, run_id)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = _export_context(tenant, run)
    writers = [exports.EXPORTERS[fmt](folder / _file_name(tenant, run, fmt), context) for fmt in formats]
    expected = max(1, services.count_detail_rows(run))
    report_progress(1, _("%(rows)d lines to write", rows=expected))
    totals = services.Totals()
    try:
        for line in services.stream_detail(run):
            totals.add(line)
            for writer in writers:
                writer.add(line)
            if totals.line_count % PROGRESS_EVERY == 0:
                report_progress(
                    90 * totals.line_count / expected, _("%(rows)d lines written", rows=totals.line_count)
                )
        keys_by_batch = services.keys_delivered_by_batch(run)
        other_currency = services.other_currency_orders(run)
        report_progress(92, _("Finishing the files"))
        skipped: list[str] = []
        for writer in writers:
            if isinstance(writer, exports.PdfExport) and writer.too_big:
                writer.abort()
                skipped.append("pdf")
                continue
            writer.finish(totals, keys_by_batch)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    db.session.commit()  # end the snapshot before writing
    _store(
        tenant_id,
        run_id,
        [w for w in writers if w.format not in skipped],
        totals,
        keys_by_batch,
        other_currency,
    )
    return {"run_id": str(run_id), **totals.as_dict(), "skipped_formats": skipped}


def _store(
    tenant_id: int,
    run_id: int,
    writers: list[Any],
    totals: services.Totals,
    keys_by_batch: list[dict[str, Any]],
    other_currency: int,
) -> None:
    root = Path(current_app.config["FILES_DIR"])
    db.session.execute(delete(ReconciliationFile).where(ReconciliationFile.run_id == run_id))
    for writer in writers:
        path: Path = writer.path
        db.session.add(
            ReconciliationFile(
                run_id=run_id,
                format=writer.format,
                filename=path.name,
                path=str(path.relative_to(root)),
                size=path.stat().st_size,
                sha256=exports.file_sha256(path),
                row_count=writer.rows,
            )
        )
    run = services.get_run(run_id)
    assert run is not None
    for name, value in totals.as_dict().items():
        setattr(run, name, value)
    run.keys_by_batch = keys_by_batch
    run.other_currency_orders = other_currency
    run.status, run.finished_at = "succeeded", utcnow()
    db.session.commit()


# ---------------------------------------------------------------- mail


def finance_recipients(tenant_id: int) -> list[str]:
    """Return the addresses of the tenant's finance members (its owners when it has none)."""
    for roles in ((Role.FINANCE.value,), (Role.OWNER.value,)):
        emails = db.session.scalars(
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == tenant_id, Membership.role.in_(roles))
            .order_by(User.email)
        ).all()
        if emails:
            return [str(e) for e in emails]
    return []


def run_url(tenant: Tenant, run_id: int) -> str:
    """Return the run's back-office address on PUBLIC_BASE_URL."""
    return public_url("reconciliation.run", tenant_slug=tenant.slug, reconciliation_run_id=run_id)


def notify_finance(tenant_id: int, run_id: int) -> None:
    """Mail finance a link to the finished run (never the file: it stays behind the login)."""
    tenant = db.session.get(Tenant, tenant_id)
    run = services.get_run(run_id)
    if tenant is None or run is None:
        return
    link = run_url(tenant, run_id)
    subject = f"[{tenant.name}] 对账单 {run.period_label} 已生成 / Reconciliation {run.period_label} is ready"
    text = "\n".join(
        [
            f"{tenant.name} 的 {run.period_label} 对账单已生成。",
            f"The reconciliation of {tenant.name} for {run.period_label} is ready.",
            "",
            f"订单 Orders: {run.order_count}",
            f"净额 Net: {to_text(run.net, run.currency)} {run.currency}",
            f"毛利 Gross profit: {to_text(run.gross_profit, run.currency)} {run.currency}",
            "",
            f"查看与下载 View and download (sign-in required): {link}",
        ]
    )
    for address in finance_recipients(tenant_id):
        queue_mail(address, subject, text, kind="reconciliation_ready", about=("reconciliation_run", run_id))


# ---------------------------------------------------------------- the monthly schedule


def _due_period(tenant: Tenant, now: dt.datetime) -> services.Period | None:
    local = now.astimezone(ZoneInfo(tenant.time_zone))
    if local.day > SCHEDULE_DAYS:
        return None
    period = services.previous_month(now, tenant.time_zone)
    if tenant.created_at >= period.end:
        return None  # the tenant did not exist during that month
    return period


def schedule_monthly_reconciliation(tenant_id: int, now: dt.datetime | None = None) -> int | None:
    """Create last month's run for one tenant on its first day of month; return the run id if made now.

    Unique per tenant-month (`schedule_key`): a second call, or a second scheduler, makes nothing.
    """
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        return None
    period = _due_period(tenant, now or utcnow())
    if period is None:
        return None
    key = f"monthly:{period.label}"
    with tenant_bound(tenant_id):
        exists = db.session.scalar(select(ReconciliationRun.id).where(ReconciliationRun.schedule_key == key))
        if exists is not None:
            return None
        try:
            run = services.create_run(
                services.RunRequest(period, None, EXPORT_FORMATS, schedule_key=key),
                created_by="system (monthly schedule)",
            )
        except IntegrityError:
            db.session.rollback()  # another scheduler made it a moment ago
            return None
        return run.id


def schedule_monthly_reconciliation_everywhere() -> int:
    """Periodic job: make every tenant's monthly run that is due; return how many were made."""
    now = utcnow()
    made = for_each_tenant(
        lambda: schedule_monthly_reconciliation(current_tenant_id(), now), "monthly reconciliation"
    )
    return sum(1 for run_id in made.values() if run_id is not None)
