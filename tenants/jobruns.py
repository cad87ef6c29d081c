"""Job runs: background work a person waits on, with status, progress and result."""

from __future__ import annotations

import contextvars
import logging
import traceback
from typing import Any

from saas import jobs
from saas.extensions import db
from saas.labels import label
from saas.timeutil import utcnow
from tenants.models import JobRun
from tenants.scoping import current_tenant_id, tenant_bound, tenant_unscoped

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
    run = JobRun(kind=kind, title=title, created_by_id=created_by_id)
    db.session.add(run)
    db.session.commit()
    jobs.enqueue(
        "tenants.jobruns.execute_job_run",
        current_tenant_id(),
        run.id,
        func_path,
        list(args),
        queue=queue,
        timeout=timeout,
    )
    return run


def execute_job_run(tenant_id: int, run_id: int, func_path: str, args: list[Any]) -> None:
    """Job: run `func_path` for a recorded run and store how it ended."""
    with tenant_bound(tenant_id):
        run = db.session.get(JobRun, (tenant_id, run_id))
        if run is None or run.is_finished:
            return  # already done: a repeated delivery of this job changes nothing
        run.status, run.started_at = "running", utcnow()
        db.session.commit()
        token = _running_job.set((tenant_id, run_id))
        try:
            result = jobs.resolve(func_path)(*args)
        except Exception as error:
            db.session.rollback()
            log.exception("job run %s (%s) failed", run_id, func_path)
            _finish(tenant_id, run_id, "failed", error=f"{error}", trace=traceback.format_exc())
            raise
        finally:
            _running_job.reset(token)
        _finish(tenant_id, run_id, "succeeded", result=result if isinstance(result, dict) else {})


def _finish(
    tenant_id: int,
    run_id: int,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    trace: str | None = None,
) -> None:
    with tenant_unscoped():
        run = db.session.get(JobRun, (tenant_id, run_id))
        assert run is not None
        run.status, run.finished_at = status, utcnow()
        run.progress = 100 if status == "succeeded" else run.progress
        run.result = result or {}
        run.error = error
        if trace:
            log.debug("job run %s trace:\n%s", run_id, trace)
        db.session.commit()
    jobs.progress_store().set(str(run_id), run.progress, error or "")


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
        "error": run.error,
        "finished": run.is_finished,
    }
