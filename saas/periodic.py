"""Periodic jobs, declared as data in this one place, and the loop that enqueues them when due."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask

from saas import jobs
from saas.extensions import write_intent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """A job enqueued every `every_seconds`; the function takes no arguments and fans out per tenant."""

    name: str
    func_path: str
    every_seconds: int
    queue: str = "default"


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob("forget-stale-login-attempts", "saas.auth.tasks.forget_stale_login_attempts", 3600),
    PeriodicJob("expire-card-keys", "catalog.tasks.expire_card_keys_everywhere", 3600),
    PeriodicJob("release-expired-reservations", "orders.tasks.release_expired_reservations_everywhere", 60),
    PeriodicJob("subscription-reminders", "orders.subscriptions.tasks.send_reminders_everywhere", 900),
    PeriodicJob("subscription-lifecycle", "orders.subscriptions.tasks.expire_subscriptions_everywhere", 900),
    PeriodicJob(
        "webhook-inbox-and-outbound-retries", "integrations.tasks.process_pending_inbox_everywhere", 60
    ),
    PeriodicJob("outbox-sweep", "tenants.outbox.sweep_everywhere", 60, "mail"),
    PeriodicJob("job-run-leases", "tenants.jobruns.reap_dead_runs_everywhere", 60),
    PeriodicJob(
        "refresh-dashboard-rollups", "reports.rollup_tasks.refresh_rollups_everywhere", 300, "reports"
    ),
    PeriodicJob(
        "monthly-reconciliation",
        "reports.reconciliation.tasks.schedule_monthly_reconciliation_everywhere",
        3600,
        "reports",
    ),
)


def known_periodic_jobs() -> list[PeriodicJob]:
    """Return the periodic jobs; a path that does not resolve is a bug and raises here (tested)."""
    for job in PERIODIC_JOBS:
        jobs.resolve(job.func_path)
    return list(PERIODIC_JOBS)


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
            for job in known_periodic_jobs():
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
    """In the embedded default, start the periodic scheduler with the first request."""
    if app.config["JOBS_MODE"] != "thread" or not app.config["PERIODIC_JOBS_ENABLED"]:
        return
    started: list[threading.Event] = []

    @app.before_request
    def _start_scheduler_once() -> None:
        if not started:
            started.append(start_in_process_scheduler(app))
