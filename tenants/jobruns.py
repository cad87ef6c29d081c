"""Job runs: background work a person waits on, with status, progress and result, under a lease.

A running run's worker beats (`heartbeat_at`) every few seconds from a thread beside the work. A run whose
beat is older than JOB_LEASE_SECONDS is dead (its worker was killed, its machine lost): the periodic reaper
marks it failed with `WORKER_LOST`, its page says so, and it can be retried as the next attempt. Each
attempt writes only while it is the run's current attempt, so a late finish of a dead attempt changes
nothing.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _
from sqlalchemy import func, update

from saas import jobs
from saas.extensions import db
from saas.labels import label
from saas.timeutil import utcnow
from tenants.fanout import for_each_tenant
from tenants.models import JobRun
from tenants.scoping import current_tenant_id, tenant_bound

WORKER_LOST = "worker lost: no heartbeat within the lease"
QUEUED_LEASES = 5  # a run queued this many leases ago and not started is queued again

log = logging.getLogger(__name__)
_running_job: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("job_run", default=None)


def start_job_run(
    kind: str,
    title: str,
    func_path: str,
    *args: Any,
    queue: str = "default",
    timeout: int = 3600,
    created_by_id: int | None = None,
) -> JobRun:
    """Record a job run, commit, then enqueue `func_path(*args)` to be executed under it.

    The function runs with the tenant bound and may call `report_progress`; its return value (a dict)
    becomes the run's result.
    """
    run = JobRun(
        kind=kind,
        title=title,
        created_by_id=created_by_id,
        func_path=func_path,
        args=list(args),
        queue=queue,
        timeout=timeout,
    )
    db.session.add(run)
    db.session.commit()
    _enqueue(run)
    return run


def _enqueue(run: JobRun) -> None:
    jobs.enqueue(
        "tenants.jobruns.execute_job_run",
        run.tenant_id,
        run.id,
        run.func_path,
        list(run.args or []),
        run.attempt,
        queue=run.queue,
        timeout=run.timeout,
    )


def retry_job_run(run: JobRun) -> JobRun:
    """Start a failed run again as its next attempt (with what it ran), and return it."""
    if run.status != "failed" or not run.func_path:
        raise ValueError("only a failed run can be retried")
    run.attempt += 1
    run.status, run.progress, run.error, run.message = "queued", 0, None, None
    run.started_at = run.finished_at = run.heartbeat_at = None
    db.session.commit()
    _enqueue(run)
    return run


def execute_job_run(tenant_id: int, run_id: int, func_path: str, args: list[Any], attempt: int = 1) -> None:
    """Job: run `func_path` for a recorded run under a lease, and store how it ended."""
    with tenant_bound(tenant_id):
        now = utcnow()
        started = db.session.execute(
            update(JobRun)
            .where(JobRun.id == run_id, JobRun.status == "queued", JobRun.attempt == attempt)
            .values(status="running", started_at=now, heartbeat_at=now)
            .returning(JobRun.id)
            .execution_options(synchronize_session=False)
        ).first()
        db.session.commit()
        if started is None:
            return  # running elsewhere, done, or superseded: a repeated delivery of this job changes nothing
        token = _running_job.set((tenant_id, run_id))
        try:
            with _heartbeat(current_app._get_current_object(), tenant_id, run_id, attempt):  # type: ignore[attr-defined]
                result = jobs.resolve(func_path)(*args)
        except Exception as error:
            db.session.rollback()
            log.exception("job run %s (%s) failed", run_id, func_path)
            _finish(
                tenant_id, run_id, "failed", error=f"{error}", trace=traceback.format_exc(), attempt=attempt
            )
            raise
        finally:
            _running_job.reset(token)
        _finish(
            tenant_id, run_id, "succeeded", result=result if isinstance(result, dict) else {}, attempt=attempt
        )


def _beat_seconds(app: Flask) -> float:
    return max(0.05, int(app.config["JOB_LEASE_SECONDS"]) / 6)


@contextmanager
def _heartbeat(app: Flask, tenant_id: int, run_id: int, attempt: int) -> Iterator[None]:
    """Beat for a running attempt from a thread of its own until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(_beat_seconds(app)):
            try:
                with app.app_context(), tenant_bound(tenant_id):
                    db.session.execute(
                        update(JobRun)
                        .where(JobRun.id == run_id, JobRun.attempt == attempt, JobRun.status == "running")
                        .values(heartbeat_at=utcnow())
                        .execution_options(synchronize_session=False)
                    )
                    db.session.commit()
            except Exception:  # a missed beat is retried on the next; the lease allows several
                log.warning("job run %s: heartbeat failed", run_id, exc_info=True)

    thread = threading.Thread(target=beat, daemon=True, name=f"quanyi-heartbeat-{run_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def reap_dead_runs(now: dt.datetime | None = None) -> int:
    """In the bound tenant: fail every running run whose heartbeat is older than the lease; return how many.

    A run still queued long after it was (last) queued may have lost its job with Redis: it is queued
    again (a run starts once, by a conditional UPDATE, so a second copy of its job changes nothing).
    """
    moment = now or utcnow()
    lease = int(current_app.config["JOB_LEASE_SECONDS"])
    lapsed = moment - dt.timedelta(seconds=lease)
    _requeue_lost(moment - dt.timedelta(seconds=QUEUED_LEASES * lease), moment)
    rows = db.session.execute(
        update(JobRun)
        .where(JobRun.status == "running", JobRun.heartbeat_at < lapsed)
        .values(status="failed", finished_at=moment, error=WORKER_LOST)
        .returning(JobRun.id)
        .execution_options(synchronize_session=False)
    )
    dead = [int(run_id) for run_id in rows.scalars()]
    db.session.commit()
    for run_id in dead:
        log.warning("job run %s: %s", run_id, WORKER_LOST)
        jobs.progress_store().set(str(run_id), 0, WORKER_LOST)
    return len(dead)


def _requeue_lost(before: dt.datetime, now: dt.datetime) -> None:
    rows = db.session.execute(
        update(JobRun)
        .where(
            JobRun.status == "queued",
            JobRun.func_path != "",
            func.coalesce(JobRun.heartbeat_at, JobRun.created_at) < before,
        )
        .values(heartbeat_at=now)  # for a queued run: when it was last queued
        .returning(JobRun.id)
        .execution_options(synchronize_session=False)
    )
    lost = [int(run_id) for run_id in rows.scalars()]
    db.session.commit()
    for run_id in lost:
        run = db.session.get(JobRun, (current_tenant_id(), run_id))
        if run is not None:
            log.warning("job run %s: still queued; queueing it again", run_id)
            try:
                _enqueue(run)
            except Exception:  # the queue is still down: the next reaper run tries again
                log.warning("job run %s: could not queue it again", run_id, exc_info=True)


def reap_dead_runs_everywhere(now: dt.datetime | None = None) -> int:
    """Periodic: mark dead job runs failed in every tenant; return how many."""
    return sum(for_each_tenant(lambda: reap_dead_runs(now), "reaping dead job runs").values())


def error_text(error: str | None) -> str | None:
    """Return a run's error as a person reads it (the lost-worker case in their language)."""
    if error == WORKER_LOST:
        return _(
            "The worker running this job stopped (no heartbeat for %(s)s seconds). Nothing it did was kept; "
            "start it again.",
            s=current_app.config["JOB_LEASE_SECONDS"],
        )
    return error


def _finish(
    tenant_id: int,
    run_id: int,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    trace: str | None = None,
    attempt: int | None = None,
) -> None:
    with tenant_bound(tenant_id):
        run = db.session.get(JobRun, (tenant_id, run_id), populate_existing=True)
        assert run is not None
        if attempt is not None and (run.attempt != attempt or run.is_finished):
            db.session.commit()
            return  # reaped as dead, or retried meanwhile: this attempt's ending is no longer the run's
        run.status, run.finished_at = status, utcnow()
        run.progress = 100 if status == "succeeded" else run.progress
        run.result = result or {}
        run.error = error
        if trace:
            log.debug("job run %s trace:\n%s", run_id, trace)
        db.session.commit()
    jobs.progress_store().set(str(run_id), run.progress, error or "")


def current_job_run_id() -> int | None:
    """Inside a job run: return its id (None outside one)."""
    running = _running_job.get()
    return running[1] if running is not None else None


def report_progress(percent: float, message: str = "") -> None:
    """Inside a job run: publish progress (0–100) and a short message for the person waiting."""
    running = _running_job.get()
    if running is not None:
        jobs.progress_store().set(str(running[1]), int(percent), message)


def live_status(run: JobRun) -> dict[str, Any]:
    """Return what the progress component shows: status, percent, message, result or error."""
    percent, message = run.progress, run.message or ""
    if run.status == "running":
        live = jobs.progress_store().get(str(run.id))
        if live is not None:
            percent, message = live
    return {
        "id": str(run.id),
        "kind": run.kind,
        "title": run.title,
        "status": run.status,
        "status_label": label("job_status", run.status),
        "progress": percent,
        "message": message,
        "result": run.result,
        "error": error_text(run.error),
        "finished": run.is_finished,
        "retryable": run.status == "failed" and bool(run.func_path),
    }
