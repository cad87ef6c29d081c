"""Job runs under a lease: a run whose worker died is failed within the lease, says so, and can be retried."""

from __future__ import annotations

import datetime as dt
import time

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from saas.extensions import db
from saas.timeutil import utcnow
from tenants import jobruns
from tenants.jobruns import current_job_run_id, execute_job_run, reap_dead_runs_everywhere
from tenants.models import JobRun
from tests.factories import Shop, login


def dead_run(shop: Shop, minutes_silent: int = 10) -> int:
    """A run left `running` by a worker that died `minutes_silent` ago (its last heartbeat)."""
    with shop.bound():
        then = utcnow() - dt.timedelta(minutes=minutes_silent)
        run = JobRun(
            kind="count",
            title="Counting",
            status="running",
            started_at=then,
            heartbeat_at=then,
            func_path="tests.saas.test_jobs.count_to",
            args=[3],
        )
        db.session.add(run)
        db.session.commit()
        return int(run.id)


def test_a_run_whose_worker_died_is_failed_says_so_and_is_retried(client: FlaskClient, shop: Shop) -> None:
    run_id = dead_run(shop)
    alive_id = dead_run(shop, minutes_silent=0)
    assert reap_dead_runs_everywhere() == 1
    assert reap_dead_runs_everywhere() == 0
    login(client, shop.owner)
    status = client.get(f"/t/{shop.slug}/jobs/{run_id}.json").json
    assert status is not None and status["status"] == "failed" and status["retryable"]
    assert "worker running this job stopped" in status["error"]
    page = client.get(f"/t/{shop.slug}/jobs/{run_id}", headers={"Accept-Language": "zh-CN"})
    assert "后台进程已停止" in page.get_data(as_text=True) and 'data-testid="retry-job"' in page.get_data(
        as_text=True
    )
    assert client.get(f"/t/{shop.slug}/jobs/{alive_id}.json").json["status"] == "running"  # type: ignore[index]

    assert client.post(f"/t/{shop.slug}/jobs/{run_id}/retry").status_code == 302
    status = client.get(f"/t/{shop.slug}/jobs/{run_id}.json").json
    assert status is not None and status["status"] == "succeeded" and status["result"] == {"counted": 3}
    with shop.bound():
        run = db.session.get(JobRun, (shop.tenant.id, run_id))
        assert run is not None and run.attempt == 2


def test_a_dead_attempt_that_wakes_up_changes_nothing(shop: Shop) -> None:
    run_id = dead_run(shop)
    reap_dead_runs_everywhere()
    with shop.bound():
        run = db.session.get(JobRun, (shop.tenant.id, run_id))
        assert run is not None
        jobruns.retry_job_run(run)  # attempt 2 runs (inline) and succeeds
    execute_job_run(shop.tenant.id, run_id, "tests.saas.test_jobs.explode", [], 1)  # attempt 1, late
    with shop.bound():
        db.session.expire_all()
        run = db.session.get(JobRun, (shop.tenant.id, run_id))
        assert run is not None and (run.status, run.attempt) == ("succeeded", 2)


SEEN: dict[str, object] = {}


def outlive_the_lease(tenant_id: int) -> dict[str, int]:
    """A job that runs past its lease; the heartbeat keeps it alive, so the reaper leaves it alone."""
    run_id = current_job_run_id()
    deadline = time.monotonic() + 20
    first: dt.datetime | None = None
    while True:
        db.session.expire_all()
        beat = db.session.scalar(select(JobRun.heartbeat_at).where(JobRun.id == run_id))
        db.session.commit()
        first = first or beat
        if beat is not None and first is not None and beat > first:
            break
        assert time.monotonic() < deadline, "no heartbeat"
        time.sleep(0.05)  # polling another thread's writes, not timing the app
    SEEN["reaped"] = jobruns.reap_dead_runs(utcnow())
    return {"ok": 1}


def test_a_long_run_with_a_live_worker_is_not_reaped(app: Flask, shop: Shop) -> None:
    app.config["JOB_LEASE_SECONDS"] = 3  # a beat every 0.5 s
    with shop.bound():
        run = jobruns.start_job_run(
            "long", "Long", "tests.saas.test_job_leases.outlive_the_lease", shop.tenant.id
        )
        db.session.expire_all()
        run = db.session.get(JobRun, (shop.tenant.id, run.id))
        assert run is not None and run.status == "succeeded"
    assert SEEN["reaped"] == 0


def test_a_run_whose_job_was_lost_before_it_started_is_queued_again(shop: Shop) -> None:
    with shop.bound():
        long_ago = utcnow() - dt.timedelta(hours=1)
        run = JobRun(
            kind="count",
            title="Counting",
            created_at=long_ago,
            func_path="tests.saas.test_jobs.count_to",
            args=[2],
        )
        db.session.add(run)
        db.session.commit()
        run_id = int(run.id)
    reap_dead_runs_everywhere()  # queued again: runs inline here
    with shop.bound():
        db.session.expire_all()
        found = db.session.get(JobRun, (shop.tenant.id, run_id))
        assert found is not None and found.status == "succeeded" and found.result == {"counted": 2}
    execute_job_run(shop.tenant.id, run_id, "tests.saas.test_jobs.explode", [], 1)  # the lost job, late
    with shop.bound():
        db.session.expire_all()
        found = db.session.get(JobRun, (shop.tenant.id, run_id))
        assert found is not None and found.status == "succeeded"
