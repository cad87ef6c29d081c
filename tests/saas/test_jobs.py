"""Jobs: run inline in tests, in a thread by default, on RQ workers with Redis; progress is visible."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from saas import jobs
from saas.extensions import db
from saas.periodic import known_periodic_jobs
from tenants.jobruns import report_progress, start_job_run
from tenants.models import JobRun
from tests.conftest import jobs_through_test_redis
from tests.factories import Shop, login

if TYPE_CHECKING:
    from rq import Queue

CALLS: list[Any] = []


def record_call(value: str) -> None:
    """A job used by these tests."""
    CALLS.append(value)


def count_to(n: int) -> dict[str, int]:
    """A tracked job that reports progress as it goes."""
    for i in range(n):
        report_progress(100 * (i + 1) / n, f"{i + 1} of {n}")
        CALLS.append(("progress", i))
    return {"counted": n}


GATES: dict[str, threading.Event] = {}


def wait_at(gate: str) -> None:
    """A job that holds the runner until the test opens `gate`."""
    assert GATES[gate].wait(timeout=10)


def record_and_open(value: str) -> None:
    """A job that records `value` and opens the gate of that name."""
    CALLS.append(value)
    GATES[value].set()


def explode() -> None:
    """A tracked job that fails."""
    raise RuntimeError("supplier file unreadable")


def test_an_unknown_queue_is_refused(app: Flask) -> None:
    with pytest.raises(ValueError):
        jobs.enqueue("tests.saas.test_jobs.record_call", "x", queue="nope")


def test_a_tracked_job_records_its_result_and_shows_progress(client: FlaskClient, shop: Shop) -> None:
    with shop.bound():
        run_id = start_job_run("count", "Counting", "tests.saas.test_jobs.count_to", 4).id
    login(client, shop.owner)
    status = client.get(f"/t/{shop.slug}/jobs/{run_id}.json").json
    assert status["status"] == "succeeded" and status["progress"] == 100  # type: ignore[index]
    assert status["result"] == {"counted": 4}  # type: ignore[index]
    page = client.get(f"/t/{shop.slug}/jobs/{run_id}").get_data(as_text=True)
    assert 'data-testid="job-progress"' in page and "Counting" in page


def test_a_failed_job_shows_its_error(client: FlaskClient, shop: Shop) -> None:
    with shop.bound(), pytest.raises(RuntimeError):
        start_job_run("explode", "Exploding", "tests.saas.test_jobs.explode")
    with shop.bound():
        run = db.session.query(JobRun).one()
    assert run.status == "failed" and "supplier file unreadable" in (run.error or "")


def test_the_thread_runner_runs_jobs_in_the_background(app: Flask) -> None:
    done = threading.Event()
    runner = jobs.ThreadRunner(app)
    CALLS.clear()
    runner.submit(jobs.JobSpec("tests.saas.test_jobs.record_call", ("threaded",)))
    runner.executor.shutdown(wait=True)
    done.set()
    assert CALLS == ["threaded"]


def test_a_coalesced_job_is_queued_once_while_one_waits_then_again_once_it_started(app: Flask) -> None:
    runner = jobs.ThreadRunner(app)
    CALLS.clear()
    GATES.update(busy=threading.Event(), drained=threading.Event())
    runner.submit(jobs.JobSpec("tests.saas.test_jobs.wait_at", ("busy",)))  # the runner is busy
    for _ in range(3):
        runner.submit(jobs.JobSpec("tests.saas.test_jobs.record_and_open", ("drained",), coalesce="drain:1"))
    GATES["busy"].set()
    assert GATES["drained"].wait(timeout=10)
    runner.submit(jobs.JobSpec("tests.saas.test_jobs.record_call", ("again",), coalesce="drain:1"))
    runner.executor.shutdown(wait=True)
    assert CALLS == ["drained", "again"]


def empty_default_queue(app: Flask, coalesce: str) -> Queue:
    """Send the app's jobs through the test Redis; return its empty default queue, `coalesce` not waiting."""
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(jobs_through_test_redis(app))
    queue = Queue("default", connection=connection)
    queue.empty()
    connection.delete(jobs.waiting_key(coalesce))
    return queue


@pytest.mark.postgres
def test_coalesced_jobs_wait_in_redis_once(app: Flask) -> None:
    from rq import SimpleWorker

    queue = empty_default_queue(app, "tests-once")
    CALLS.clear()
    for n in range(3):
        jobs.enqueue("tests.saas.test_jobs.record_call", f"call {n}", coalesce="tests-once")
    jobs.flush(app)  # handed to this process's enqueuer thread, which puts each key on the queue once
    assert queue.count == 1
    for n in range(3):  # while that one waits in Redis, no process queues another
        jobs.enqueue("tests.saas.test_jobs.record_call", f"more {n}", coalesce="tests-once")
        jobs.flush(app)
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert CALLS == ["call 0"]
    jobs.enqueue("tests.saas.test_jobs.record_call", "after", coalesce="tests-once")
    jobs.flush(app)
    assert queue.count == 1


@pytest.mark.postgres
def test_a_coalesced_job_reaches_redis_from_the_enqueuer_thread(app: Flask) -> None:
    """The caller (the webhook endpoint) makes no Redis call; this process's enqueuer thread does, soon."""
    queue = empty_default_queue(app, "tests-soon")
    jobs.enqueue("tests.saas.test_jobs.record_call", "soon", coalesce="tests-soon")
    pause = threading.Event()  # never set: each wait is 10 ms
    for _ in range(500):  # up to 5 s; it takes about one COALESCE_TICK
        if queue.count == 1:
            break
        pause.wait(0.01)
    assert queue.count == 1


def test_every_periodic_job_is_declared_with_a_known_queue(app: Flask) -> None:
    registered = known_periodic_jobs(app)
    assert len({job.name for job in registered}) == len(registered)
    assert all(job.queue in jobs.QUEUES and job.every_seconds >= 60 for job in registered)


def test_each_package_registers_its_periodic_jobs_on_the_app(app: Flask) -> None:
    assert {job.name for job in known_periodic_jobs(app)} == {
        "forget-stale-login-attempts",
        "expire-card-keys",
        "release-expired-reservations",
        "subscription-reminders",
        "subscription-lifecycle",
        "webhook-inbox-and-outbound-retries",
        "outbox-sweep",
        "job-run-leases",
        "refresh-dashboard-rollups",
        "monthly-reconciliation",
    }


def test_every_periodic_job_names_a_function_that_exists(app: Flask) -> None:
    for job in known_periodic_jobs(app):
        assert callable(jobs.resolve(job.func_path))


@pytest.mark.postgres
def test_jobs_go_through_redis_to_a_real_worker(app: Flask) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker

    connection = Redis.from_url(jobs_through_test_redis(app))
    queue_name = "default"
    Queue(queue_name, connection=connection).empty()
    CALLS.clear()
    jobs.enqueue("tests.saas.test_jobs.record_call", "via-redis", queue=queue_name)
    assert CALLS == []  # nothing ran yet: it waits in Redis
    SimpleWorker([Queue(queue_name, connection=connection)], connection=connection).work(burst=True)
    assert CALLS == ["via-redis"]
