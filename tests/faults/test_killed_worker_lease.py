"""A real `quanyi worker` killed in the middle of a card-key import: its work horse goes with it, the run is
failed when its lease lapses (instead of "running" forever), and retrying imports the file whole.

Also: SIGTERM to the worker stops the work horse too (RQ forks it into its own process group, so before
this a stopped worker left it running, orphaned).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from catalog import inventory, uploads
from saas.config import TestingConfig, sqlalchemy_url
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.jobruns import reap_dead_runs_everywhere
from tenants.models import JobRun
from tests.catalog.factories import key_lines, make_right
from tests.conftest import postgres_url
from tests.factories import Shop, login
from tests.faults.conftest import PrivateRedis
from tests.faults.test_killed_import import copy_progress, counts
from tests.faults.test_redis_outage import use_redis

KEYS = 200_000


@pytest.fixture
def app_config(app_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The worker process and the test app share the upload folder."""
    app_config["FILES_DIR"] = str(tmp_path / "worker-instance" / "files")
    return app_config


def worker_environment(app: Flask, tmp_path: Path, redis_url: str) -> dict[str, str]:
    """A worker of this test app: same database (app role), master key, files; RQ on the private Redis."""
    return {
        **os.environ,
        "QUANYI_ENV": "development",  # the mode in which REDIS_URL means RQ
        "QUANYI_INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": redis_url,
        "SECRET_KEY": TestingConfig.SECRET_KEY,
        "QUANYI_MASTER_KEY": TestingConfig.QUANYI_MASTER_KEY,
    }


def worker_command(*extra: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "quanyi"),
        "worker",
        "--queues",
        "imports",
        "--no-periodic",
        *extra,
    ]


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def is_running(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_until(condition: Any, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling other processes, not timing the app


@pytest.fixture
def import_started(
    app: Flask, shop: Shop, tmp_path: Path, private_redis: PrivateRedis
) -> Iterator[dict[str, Any]]:
    """A 200,000-key import confirmed as a job on the private Redis, and a worker importing it past 30 %."""
    use_redis(app, private_redis.url)
    with shop.bound():
        right_id = make_right().id
        data = ("\n".join(key_lines(KEYS)) + "\n").encode()
        upload = inventory.start_upload(
            io.BytesIO(data), "200k.txt", right_id=right_id, supplier="深圳卡盟供货商", unit_cost="12.50"
        )
        run_id = inventory.confirm_import(upload, {})
        assert run_id is not None
        token = upload.token
    owner = sa.create_engine(sqlalchemy_url(app.config["TEST_OWNER_DATABASE_URL"]))
    admin = sa.create_engine(sqlalchemy_url(postgres_url() or ""))
    database = str(sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database)
    environment = worker_environment(app, tmp_path, private_redis.url)
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        worker_command(), env=environment, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    try:
        wait_until(lambda: copy_progress(admin, database) > KEYS * 3 // 10, "the import past 30 %")
        # The work horse is the child RQ put in a process group of its own (the scheduler is another child).
        (horse,) = [pid for pid in children_of(worker.pid) if os.getpgid(pid) == pid]
        yield {
            "worker": worker,
            "horse": horse,
            "run_id": run_id,
            "token": token,
            "owner": owner,
            "environment": environment,
            "log": log,
        }
    finally:
        for pid in [worker.pid, *children_of(worker.pid)]:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)
        owner.dispose()
        admin.dispose()


def run_status(shop: Shop, run_id: int) -> str:
    with shop.bound():
        db.session.expire_all()
        run = db.session.get(JobRun, (shop.tenant.id, run_id))
        assert run is not None
        status = run.status
        db.session.commit()
        return status


@pytest.mark.postgres
def test_a_killed_worker_takes_its_horse_its_run_fails_within_the_lease_and_the_retry_imports_whole(
    app: Flask, client: FlaskClient, shop: Shop, import_started: dict[str, Any]
) -> None:
    worker, horse = import_started["worker"], import_started["horse"]
    os.kill(worker.pid, signal.SIGKILL)  # the worker's PID alone, as an operator or the OOM killer would
    worker.wait(timeout=10)
    wait_until(lambda: not is_running(horse), "the work horse to die with its worker", 10)
    assert counts(import_started["owner"]) == (0, 0)  # the import's transaction died with it

    run_id = import_started["run_id"]
    assert run_status(shop, run_id) == "running"  # nobody will finish it: only its lease can tell
    assert reap_dead_runs_everywhere() == 0  # its last heartbeat is recent: not yet
    lapsed = utcnow() + dt.timedelta(seconds=app.config["JOB_LEASE_SECONDS"] + 60)
    assert reap_dead_runs_everywhere(lapsed) == 1
    assert run_status(shop, run_id) == "failed"

    login(client, shop.owner)
    page = client.get(f"/t/{shop.slug}/catalog/inventory/imports/{import_started['token']}").get_data(
        as_text=True
    )
    assert 'data-testid="import-state">Failed<' in page and "worker running this job stopped" in page
    zh = client.get(f"/t/{shop.slug}/jobs/{run_id}", headers={"Accept-Language": "zh-CN"})
    assert "后台进程已停止" in zh.get_data(as_text=True)

    assert client.post(f"/t/{shop.slug}/jobs/{run_id}/retry").status_code == 302
    rerun = subprocess.run(
        worker_command("--burst"), env=import_started["environment"], capture_output=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert run_status(shop, run_id) == "succeeded"
    assert counts(import_started["owner"]) == (KEYS, 1)
    with shop.bound():
        upload = uploads.find_upload(import_started["token"])
        assert upload is not None and upload.state == "imported"


@pytest.mark.postgres
def test_stopping_the_worker_stops_its_work_horse(import_started: dict[str, Any]) -> None:
    worker, horse = import_started["worker"], import_started["horse"]
    assert os.getpgid(horse) != os.getpgid(worker.pid)  # RQ's own process group: a group kill misses it
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=120)  # a bound for a hang, not a timing: it stops in about a second
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not stop; its log ends:\n" + import_started["log"].read_text()[-4000:])
    wait_until(lambda: not is_running(horse), "the work horse to stop with its worker", 10)
    assert counts(import_started["owner"]) == (0, 0)


@pytest.mark.postgres
def test_a_stuck_scheduler_does_not_keep_a_stopping_worker_alive(import_started: dict[str, Any]) -> None:
    worker = import_started["worker"]
    (scheduler,) = [pid for pid in children_of(worker.pid) if os.getpgid(pid) != pid]  # RQ's scheduler
    os.kill(scheduler, signal.SIGSTOP)  # stuck: it cannot even take the SIGTERM the worker sends it
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=120)  # RQ alone waits for its scheduler forever
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not stop; its log ends:\n" + import_started["log"].read_text()[-4000:])
    wait_until(lambda: not is_running(scheduler), "the scheduler to be killed", 10)
    wait_until(lambda: not is_running(import_started["horse"]), "the work horse to stop with its worker", 10)
