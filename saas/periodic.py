"""Periodic jobs, declared as data by the package that owns each, and the loop that enqueues them when due.

Each package registers its jobs in its `init_app` (`register_periodic_job(app, PeriodicJob(...))`); the
scheduler enqueues what is registered on the app it runs in. The shell names no domain job.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask

from saas import jobs
from saas.extensions import write_intent
from saas.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """A job enqueued every `every_seconds`; the function takes no arguments and fans out per tenant."""

    name: str
    func_path: str
    every_seconds: int
    queue: str = "default"


PERIODIC_JOBS: Registry[PeriodicJob] = Registry("quanyi.periodic_jobs")


def register_periodic_job(app: Flask, job: PeriodicJob) -> None:
    """Have the scheduler enqueue `job` on `app` every `job.every_seconds`."""
    PERIODIC_JOBS.register(app, job.name, job)


def known_periodic_jobs(app: Flask | None = None) -> list[PeriodicJob]:
    """Return the periodic jobs of `app` (default: the current one); a path that does not resolve raises."""
    registered = PERIODIC_JOBS.all(app)
    for job in registered:
        jobs.resolve(job.func_path)
    return registered


def due_slot(job: PeriodicJob, now: float) -> int:
    """Return the number of the time slot `now` falls in; one run per slot."""
    return int(now // job.every_seconds)


def run_scheduler(app: Flask, stop: threading.Event, tick_seconds: float = 15.0) -> None:
    """Enqueue each periodic job once per slot until `stop` is set.

    With Redis, a `SET NX` per (job, slot) makes the enqueue exactly-once across many workers.
    """
    last_slot: dict[str, int] = {}
    while not stop.is_set():
        now = time.time()
        with app.app_context(), write_intent():  # enqueueing may record the job: a writer on SQLite
            for job in known_periodic_jobs(app):
                slot = due_slot(job, now)
                if last_slot.get(job.name) == slot:
                    continue
                last_slot[job.name] = slot
                if app.config["JOBS_MODE"] == "rq":
                    claimed = jobs.redis_connection(app).set(
                        f"quanyi:periodic:{job.name}:{slot}", "1", nx=True, ex=job.every_seconds * 2
                    )
                    if not claimed:
                        continue
                try:
                    jobs.enqueue(job.func_path, queue=job.queue, timeout=max(job.every_seconds, 180))
                except Exception:
                    log.exception("could not enqueue periodic job %s", job.name)
        stop.wait(tick_seconds)


def start_in_process_scheduler(app: Flask) -> threading.Event:
    """Start the scheduler in a daemon thread (embedded default); returns the event that stops it."""
    stop = threading.Event()
    threading.Thread(target=run_scheduler, args=(app, stop), daemon=True, name="quanyi-periodic").start()
    return stop


def init_app(app: Flask) -> None:
    """Register the shell's periodic job; embedded default: start the scheduler on the first request."""
    register_periodic_job(
        app, PeriodicJob("forget-stale-login-attempts", "saas.auth.tasks.forget_stale_login_attempts", 3600)
    )
    if app.config["JOBS_MODE"] != "thread" or not app.config["PERIODIC_JOBS_ENABLED"]:
        return
    started: list[threading.Event] = []

    @app.before_request
    def _start_scheduler_once() -> None:
        if not started:
            started.append(start_in_process_scheduler(app))
