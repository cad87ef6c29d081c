"""A worker SIGKILLed in the middle of a 200,000-key import leaves no partial batch; running it again works.

The import runs as the real CLI (`quanyi inventory import`) in its own process, against the test database
as the app role; the test watches PostgreSQL's COPY progress and kills the process past ~30 %.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from saas.config import sqlalchemy_url
from tests.catalog.factories import key_lines, make_right
from tests.conftest import postgres_url
from tests.factories import Shop
from tests.faults.conftest import require_services

KEYS = 200_000


def cli_environment(app: Flask, tmp_path: Path) -> dict[str, str]:
    """The environment of a worker process of this test app (same database, app role, master key)."""
    return {
        **os.environ,
        "QUANYI_ENV": "testing",
        "QUANYI_INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "DATABASE_URL": app.config["DATABASE_URL"],
    }


def import_command(path: Path, right_id: int) -> list[str]:
    quanyi = str(Path(sys.executable).parent / "quanyi")
    where = [
        "--tenant",
        "acme",
        "--right",
        str(right_id),
        "--supplier",
        "深圳卡盟供货商",
        "--unit-cost",
        "12.50",
    ]
    return [quanyi, "inventory", "import", str(path), *where]


def counts(owner: sa.Engine) -> tuple[int, int]:
    """Card keys and batches in the database, seen by the tables' owner (no tenant filter)."""
    with owner.connect() as conn:
        keys = conn.execute(sa.text("SELECT count(*) FROM card_keys")).scalar_one()
        batches = conn.execute(sa.text("SELECT count(*) FROM card_key_batches")).scalar_one()
    return int(keys), int(batches)


def copy_progress(admin: sa.Engine, database: str) -> int:
    with admin.connect() as conn:
        found = conn.execute(
            sa.text("SELECT max(tuples_processed) FROM pg_stat_progress_copy WHERE datname = :d"),
            {"d": database},
        ).scalar()
    return int(found or 0)


def kill_past(process: subprocess.Popen[bytes], admin: sa.Engine, database: str, rows: int) -> None:
    """SIGKILL the process once its COPY has passed `rows` rows (poll the server's progress view)."""
    deadline = time.monotonic() + 180  # a bound for a stuck import, not a timing
    while copy_progress(admin, database) < rows:
        if process.poll() is not None:
            pytest.fail(f"the import ended (code {process.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the import never got past 30 %")
        time.sleep(0.005)  # polling another process's progress, not waiting on the app
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.mark.postgres
def test_a_worker_killed_mid_import_leaves_no_partial_batch_and_a_rerun_finishes(
    app: Flask, shop: Shop, tmp_path: Path
) -> None:
    require_services()
    with shop.bound():
        right_id = make_right().id
    keys_file = tmp_path / "200k.txt"
    keys_file.write_text("\n".join(key_lines(KEYS)) + "\n", encoding="utf-8")
    owner = sa.create_engine(sqlalchemy_url(app.config["TEST_OWNER_DATABASE_URL"]))
    admin = sa.create_engine(sqlalchemy_url(postgres_url() or ""))
    database = str(sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database)
    environment = cli_environment(app, tmp_path)
    try:
        worker = subprocess.Popen(
            import_command(keys_file, right_id),
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        kill_past(worker, admin, database, KEYS * 3 // 10)
        assert worker.returncode == -signal.SIGKILL
        assert counts(owner) == (0, 0)  # no keys, no batch row: the transaction died with the worker

        rerun = subprocess.run(
            import_command(keys_file, right_id), env=environment, capture_output=True, timeout=120
        )
        assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
        assert counts(owner) == (KEYS, 1)
    finally:
        owner.dispose()
        admin.dispose()
