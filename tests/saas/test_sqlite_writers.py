"""The embedded default never answers "database is locked": page views that write, the CLI and the periodic
jobs all write to one SQLite file at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from reports.reconciliation import services
from reports.reconciliation.models import ReconciliationRun
from reports.reconciliation.services import RunRequest
from saas import jobs
from saas.extensions import db
from saas.periodic import known_periodic_jobs
from tenants.models import AuditEvent
from tests.factories import PASSWORD, Shop
from tests.reports.books import make_january_books

DOWNLOADERS = 4
DOWNLOADS_EACH = 10
CLI_RUNS = 1


@pytest.fixture
def sqlite_app(app: Flask) -> Flask:
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("the embedded default is SQLite")
    return app


def _run_periodic_jobs_until(app: Flask, stop: threading.Event, errors: list[str]) -> int:
    """Run every periodic job, one after another as the in-process runner does, until `stop`; count rounds."""
    rounds = 0
    while not stop.is_set():
        for job in known_periodic_jobs(app):
            try:
                with app.app_context():
                    jobs.run_job(job.func_path, (), {})
            except Exception as error:
                errors.append(f"{job.name}: {error!r}")
        rounds += 1
    return rounds


def test_downloads_the_cli_and_the_periodic_jobs_write_at_once_without_a_lock_error(
    sqlite_app: Flask, shop: Shop, tmp_path: Path
) -> None:
    app = sqlite_app
    with shop.bound():
        make_january_books(shop)
        run = services.create_run(RunRequest(services.parse_month("2026-01", "Asia/Shanghai")))
        files = [f.id for f in services.files_of(run.id)]
        run_url = f"/t/{shop.slug}/reconciliation/runs/{run.id}"
    db.session.commit()

    errors: list[str] = []
    stop = threading.Event()
    rounds: list[int] = []
    finance, slug = shop.members["finance"].email, shop.slug  # read here: threads have no session of ours

    def periodic() -> None:
        rounds.append(_run_periodic_jobs_until(app, stop, errors))

    def download() -> None:
        client = app.test_client()
        with app.app_context():  # the test client commits the caller's session around each request
            response = client.post("/login", data={"email": finance, "password": PASSWORD})
            if response.status_code != 302:
                errors.append(f"login answered {response.status_code}")
            for i in range(DOWNLOADS_EACH):
                # the reconciliation file download records its audit row: a page view (GET) that writes
                response = client.get(f"{run_url}/files/{files[i % len(files)]}")
                if response.status_code != 200:
                    errors.append(
                        f"download answered {response.status_code}: {response.get_data(as_text=True)}"
                    )

    def cli() -> None:
        # The documented command, in its own process on the same file, running its jobs in a thread of its own
        env = {
            **os.environ,
            "QUANYI_ENV": "development",
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "QUANYI_INSTANCE_PATH": str(tmp_path / "cli-instance"),
        }
        env.pop("REDIS_URL", None)
        for _ in range(CLI_RUNS):
            done = subprocess.run(
                [str(Path(sys.executable).parent / "quanyi"), "reconciliation", "run", "--tenant", slug,
                 "--month", "2026-01"],
                env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            if done.returncode != 0 or "locked" in done.stderr:
                errors.append(f"CLI exited {done.returncode}: {done.stderr[-2000:]}")

    def reporting(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except Exception as error:  # the test app propagates a view's exception instead of a 500
                errors.append(repr(error))

        return run

    background = threading.Thread(target=reporting(periodic))
    background.start()
    workers = [threading.Thread(target=reporting(download)) for _ in range(DOWNLOADERS)]
    workers.append(threading.Thread(target=reporting(cli)))
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        stop.set()
        background.join()

    assert errors == []
    assert rounds[0] >= 1, "the periodic jobs ran meanwhile"
    db.session.rollback()  # a fresh snapshot: this session's last one predates the writers
    with shop.bound():
        downloads = db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "reconciliation.file_downloaded")
        )
        runs = db.session.scalars(select(ReconciliationRun.status)).all()
    assert downloads == DOWNLOADERS * DOWNLOADS_EACH  # every retried view wrote its row once
    assert sorted(runs) == ["succeeded"] * (1 + CLI_RUNS)
