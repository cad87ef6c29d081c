"""Background jobs: RQ on Redis in production, a thread in this process by default, inline in tests.

Jobs are named by dotted path (`"catalog.tasks.import_batch"`) so an inner package can start outer work
without importing it. They take ids, never objects; they run inside an app context; enqueue them only
after the commit that made their input visible.

A job enqueued with `coalesce=<key>` is not queued again while one with the same key waits to start: the
waiting one reads its input when it starts, so it will see whatever the later callers committed. Used by
the webhook endpoint, where a flash sale would otherwise queue one job per delivery.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, has_app_context
from redis import Redis
from rq import Queue, Retry, Worker

from saas.extensions import write_intent

log = logging.getLogger(__name__)

QUEUES = ("default", "imports", "fulfilment", "integrations", "reports", "mail")
RETRY_INTERVALS = (10, 60, 300, 1800)
COALESCE_SECONDS = 60  # a coalesced job lost from the queue blocks its key at most this long
# Seconds between two enqueues of one coalesced job by one process (RQ mode). At 0.01 s the enqueuing
# thread cost 0.05 ms of CPU per webhook delivery during a flash sale (a Redis call 100 times a second).
COALESCE_TICK = 0.1
SCHEDULER_STOP_SECONDS = 5  # a stopping worker waits this long for RQ's scheduler process, then kills it


@dataclass(frozen=True)
class JobSpec:
    """What to run and how: a dotted function path, its arguments, queue, timeout and retries."""

    func_path: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    queue: str = "default"
    timeout: int = 180
    retries: int = 0
    coalesce: str | None = None


def resolve(func_path: str) -> Callable[..., Any]:
    """Import the function named by a dotted path."""
    module_name, _, attr = func_path.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def enqueue(
    func_path: str,
    *args: Any,
    queue: str = "default",
    timeout: int = 180,
    retries: int = 0,
    coalesce: str | None = None,
    **kwargs: Any,
) -> None:
    """Run `func_path(*args, **kwargs)` in the background according to `JOBS_MODE`.

    With `coalesce`, nothing is queued while a job with the same key waits to start.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    spec = JobSpec(func_path, args, tuple(sorted(kwargs.items())), queue, timeout, retries, coalesce)
    runner: JobRunner = current_app.extensions["quanyi.jobs"]
    runner.submit(spec)


def run_job(
    func_path: str, args: tuple[Any, ...], kwargs: dict[str, Any], coalesce: str | None = None
) -> Any:
    """Entry point of every job: call the function inside an app context.

    `coalesce` is the key of an RQ job enqueued with one: it is released as the job starts.
    """
    if has_app_context():
        return _run_started(func_path, args, kwargs, coalesce)
    with worker_app().app_context():
        return _run_started(func_path, args, kwargs, coalesce)


def _run_started(func_path: str, args: tuple[Any, ...], kwargs: dict[str, Any], coalesce: str | None) -> Any:
    if coalesce is not None:  # from now on a new caller needs a new job: this one may have read already
        redis_connection().delete(waiting_key(coalesce))
    with write_intent():
        return resolve(func_path)(*args, **kwargs)


_worker_app: list[Flask] = []


def register_worker_app(app: Flask) -> None:
    """Make `app` the one this process's RQ jobs run in (`quanyi worker` registers the app it was handed)."""
    _worker_app[:] = [app]


def worker_app() -> Flask:
    """Return the app registered for this worker process; nothing here builds one (no factory import)."""
    if not _worker_app:
        raise RuntimeError("no app registered for RQ jobs: run them with `quanyi worker`")
    return _worker_app[0]


class JobRunner:
    """Base: how a JobSpec gets executed."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def submit(self, spec: JobSpec) -> None:
        raise NotImplementedError

    def release(self, coalesce: str) -> None:
        """A job enqueued with this coalescing key is starting (nothing waits: inline jobs start at once)."""


class InlineRunner(JobRunner):
    """Run at once, in the caller's app context (tests)."""

    def submit(self, spec: JobSpec) -> None:
        run_job(spec.func_path, spec.args, dict(spec.kwargs))


class ThreadRunner(JobRunner):
    """Run in a background thread of this process (the embedded default: no Redis needed)."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        # One job at a time: SQLite has one writer, and the embedded default is for one merchant.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quanyi-job")
        self._waiting: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, spec: JobSpec) -> None:
        if spec.coalesce is not None:
            with self._lock:
                if spec.coalesce in self._waiting:
                    return
                self._waiting.add(spec.coalesce)
        self.executor.submit(self._run, spec)

    def release(self, coalesce: str) -> None:
        with self._lock:
            self._waiting.discard(coalesce)

    def _run(self, spec: JobSpec) -> None:
        if spec.coalesce is not None:  # starting: a new caller needs a new job (this one may have read)
            self.release(spec.coalesce)
        attempts = spec.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                with self.app.app_context():
                    run_job(spec.func_path, spec.args, dict(spec.kwargs))
                return
            except Exception:
                log.exception("job %s failed (attempt %d of %d)", spec.func_path, attempt, attempts)
                if attempt < attempts:
                    threading.Event().wait(min(RETRY_INTERVALS[attempt - 1], 5))


class RQRunner(JobRunner):
    """Put the job on a Redis queue for `quanyi worker`.

    Coalesced jobs are handed to a background thread of this process that puts them on the queue within
    COALESCE_TICK seconds, once per key per tick: the webhook endpoint then makes no Redis call of its own
    (a flash sale would make one per delivery; a Redis outage would make every delivery wait on it).
    """

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._soon: dict[str, JobSpec] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread_pid: int | None = None

    def submit(self, spec: JobSpec) -> None:
        if spec.coalesce is None:
            self._enqueue(spec)
            return
        with self._lock:
            self._soon.setdefault(spec.coalesce, spec)
            if self._thread_pid != os.getpid():  # not started yet, or started in the process we forked from
                self._thread_pid = os.getpid()
                threading.Thread(target=self._enqueue_soon, daemon=True, name="quanyi-enqueue").start()
                atexit.register(self.flush)  # a worker shutting down hands over what it holds
        self._wake.set()

    def flush(self) -> None:
        """Put every coalesced job handed over so far on its queue now (shutdown, tests)."""
        with self._lock:
            specs, self._soon = list(self._soon.values()), {}
        for spec in specs:
            try:
                self._enqueue(spec)
            except Exception as error:  # Redis is down: the periodic sweep catches up
                log.warning("could not enqueue %s (%s); the periodic sweep will", spec.func_path, error)

    def _enqueue_soon(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.flush()
            threading.Event().wait(COALESCE_TICK)

    def _enqueue(self, spec: JobSpec) -> None:
        connection = redis_connection(self.app)
        waiting = waiting_key(spec.coalesce or "")
        if spec.coalesce is not None and not connection.set(waiting, 1, nx=True, ex=COALESCE_SECONDS):
            return
        retry = (
            Retry(max=spec.retries, interval=list(RETRY_INTERVALS[: spec.retries])) if spec.retries else None
        )
        try:
            Queue(spec.queue, connection=connection).enqueue(
                run_job,
                spec.func_path,
                spec.args,
                dict(spec.kwargs),
                spec.coalesce,
                job_timeout=spec.timeout,
                retry=retry,
                result_ttl=3600,
                failure_ttl=30 * 24 * 3600,
            )
        except Exception:
            if spec.coalesce is not None:
                connection.delete(waiting)
            raise

    def release(self, coalesce: str) -> None:
        redis_connection(self.app).delete(waiting_key(coalesce))


def waiting_key(coalesce: str) -> str:
    """The Redis key that says a coalesced job with this key waits in a queue."""
    return f"quanyi:waiting:{coalesce}"


def flush(app: Flask | None = None) -> None:
    """Put the coalesced jobs this process has handed over on their queues now (RQ mode; else nothing)."""
    runner = (app or current_app).extensions["quanyi.jobs"]
    if isinstance(runner, RQRunner):
        runner.flush()


def redis_connection(app: Flask | None = None) -> Any:
    """Return the app's Redis connection (one per app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    conn = app.extensions.get("quanyi.redis")
    if conn is None:
        conn = Redis.from_url(app.config["REDIS_URL"], socket_timeout=5, socket_connect_timeout=2)
        app.extensions["quanyi.redis"] = conn
    return conn


RUNNERS: dict[str, type[JobRunner]] = {"inline": InlineRunner, "thread": ThreadRunner, "rq": RQRunner}


def init_app(app: Flask) -> None:
    """Choose the job runner for this app's JOBS_MODE."""
    mode = app.config["JOBS_MODE"]
    if mode == "rq" and not app.config.get("REDIS_URL"):
        raise RuntimeError("JOBS_MODE=rq needs REDIS_URL")
    app.extensions["quanyi.jobs"] = RUNNERS[mode](app)
    app.extensions["quanyi.progress"] = ProgressStore(app)


class ProgressStore:
    """Live progress of running jobs: Redis when the app has it, else this process's memory.

    Progress is written outside the job's own transaction (an import holds one open for its whole run), so
    it lives beside the database rather than in it.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._memory: dict[str, tuple[int, str]] = {}

    def set(self, key: str, percent: int, message: str) -> None:
        percent = max(0, min(100, int(percent)))
        if self.app.config["JOBS_MODE"] == "rq":
            redis_connection(self.app).set(f"quanyi:progress:{key}", f"{percent}|{message}", ex=86400)
        else:
            self._memory[key] = (percent, message)

    def get(self, key: str) -> tuple[int, str] | None:
        if self.app.config["JOBS_MODE"] == "rq":
            raw = redis_connection(self.app).get(f"quanyi:progress:{key}")
            if raw is None:
                return None
            percent, _, message = raw.decode().partition("|")
            return int(percent), message
        return self._memory.get(key)


def progress_store() -> ProgressStore:
    """Return the current app's progress store."""
    return current_app.extensions["quanyi.progress"]


def _die_with_parent(parent_pid: int) -> None:
    """In a work horse: ask Linux to SIGKILL this process when its worker dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: SIGTERM/SIGINT still stop the horse (below)
        return
    if os.getppid() != parent_pid:  # the worker died before prctl took effect
        os._exit(1)


def stopping_worker_class() -> type[Any]:
    """Return an RQ Worker whose work horse never outlives it.

    RQ puts the horse in its own process group, so a signal to the worker alone left it running, orphaned.
    Here SIGTERM/SIGINT stop the horse with the worker (its job run's lease then marks the run failed, and
    the job's transaction rolls back), and a SIGKILLed worker takes its horse down (PR_SET_PDEATHSIG).
    """

    class StoppingWorker(Worker):
        def fork_work_horse(self, job: Any, queue: Any) -> None:
            parent = os.getpid()
            child_pid = os.fork()
            os.environ["RQ_WORKER_ID"] = self.name
            os.environ["RQ_JOB_ID"] = job.id
            if child_pid == 0:
                os.setpgrp()
                _die_with_parent(parent)
                self.main_work_horse(job, queue)
                os._exit(0)
            self._horse_pid = child_pid
            self.procline(f"Forked {child_pid} at {time.time()}")

        def stop_scheduler(self) -> None:
            """Stop RQ's scheduler process, and kill it if it does not stop within a few seconds.

            RQ joins it without a timeout; a scheduler stuck in a Redis call (or forked while another thread
            held a lock) then kept the stopping worker alive forever. It holds nothing that needs a graceful
            end: its locks expire by themselves.
            """
            process = self.scheduler._process if self.scheduler else None
            if process is None or not process.pid:
                return
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGTERM)
            process.join(SCHEDULER_STOP_SECONDS)
            if process.is_alive():
                log.warning(
                    "RQ scheduler %s did not stop in %ss: killed", process.pid, SCHEDULER_STOP_SECONDS
                )
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGKILL)
                process.join()

        def request_stop(self, signum: int, frame: Any) -> None:
            if self.horse_pid:
                log.warning("worker stopping: stopping its work horse %s too", self.horse_pid)
                self.kill_horse(signal.SIGKILL)
                self.wait_for_horse()
            super().request_stop(signum, frame)

    return StoppingWorker
