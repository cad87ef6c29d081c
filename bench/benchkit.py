"""Shared set-up of the benchmarks: the app on a throwaway PostgreSQL database, as its non-owner role."""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MASTER_KEY = "YmVuY2gtbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE="  # b"bench-master-key-32-bytes-long!!"
APP_ROLE = "quanyi_bench_app"


def post_kept_alive(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[http.client.HTTPConnection, int]:
    """POST on a keep-alive connection; return the connection to go on with and the status (0: failed).

    A connection the server broke is replaced by a new one to the same address.
    """
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return connection, response.status
    except (OSError, http.client.HTTPException):
        connection.close()
        return http.client.HTTPConnection(connection.host, connection.port, timeout=connection.timeout), 0


def peak_rss_mb() -> int:
    """Return this process's peak resident set size so far, in MB (Linux reports KB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def make_app(database_url: str) -> Any:
    from quanyi.app import create_app

    os.environ.setdefault("QUANYI_INSTANCE_PATH", str(OUT / "instance"))
    return create_app(
        {
            "ENV_NAME": "development",
            "DATABASE_URL": database_url,
            "QUANYI_MASTER_KEY": MASTER_KEY,
            "SECRET_KEY": "bench",
            "JOBS_MODE": "inline",
            "PERIODIC_JOBS_ENABLED": False,
            "MAIL_DIR": str(OUT / "mail"),
            "FILES_DIR": str(OUT / "files"),
        }
    )


def ensure_postgres_database(url: str) -> None:
    """Create the benchmark database if it does not exist yet."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    admin = sa.create_engine(
        target.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database})
        if exists.scalar() is None:
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def fresh_schema(owner_url: str) -> str:
    """Recreate the schema as the owner with row-level security; return the app role's URL."""
    import sqlalchemy as sa

    from saas.extensions import db
    from tenants.rls import apply_row_level_security, ensure_app_role

    with make_app(owner_url).app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        db.create_all()
        with db.engine.begin() as conn:
            ensure_app_role(conn, APP_ROLE)
            apply_row_level_security(conn, APP_ROLE)
        db.engine.dispose()
    return str(sa.engine.make_url(owner_url).set(username=APP_ROLE, password=None).render_as_string(False))


# ---------------------------------------------------------------- the processes a benchmark starts


def _stat(pid: int) -> tuple[str, int, int] | None:
    """Return (state, parent pid, session id) of a live process, None when it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[0], int(fields[1]), int(fields[3])


def session_members(session: int) -> list[int]:
    """Return the live processes of a session, whichever process group they moved to or whoever adopted them.

    Every child a benchmark starts leads a session of its own (`start_new_session`), so this finds its
    children and grandchildren, also an RQ work horse (its own process group, same session) orphaned to PID 1.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[2] == session:
                members.append(int(entry.name))
    return members


class Children:
    """Start the benchmark's processes and stop every one of them with its descendants, whatever happens.

    Each child leads its own session; stopping sends SIGTERM to every process of the session, waits, and
    SIGKILLs what is left. `stop_all` runs from `finally`, at exit, and on SIGTERM/SIGHUP (turned into
    SystemExit so the `finally` blocks run); Ctrl-C raises KeyboardInterrupt, which does the same.
    """

    def __init__(self, grace: float = 15.0) -> None:
        self.grace = grace
        self.processes: list[subprocess.Popen[bytes]] = []
        atexit.register(self.stop_all)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _exit_on_signal)
        # A shell without job control starts a background command with SIGINT ignored: take it back.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def start(self, args: list[str], **options: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = subprocess.Popen(args, start_new_session=True, **options)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Stop a child and every process of its session: SIGTERM, then SIGKILL after the grace time."""
        if process in self.processes:
            self.processes.remove(process)
        _signal_session(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            process.poll()
            if not session_members(process.pid):
                break
            time.sleep(0.1)
        _signal_session(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        deadline = time.monotonic() + 5  # a killed process takes a moment to be gone
        while session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop_all(self) -> None:
        while self.processes:
            self.stop(self.processes[-1])


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _signal_session(session: int, signum: int) -> None:
    for pid in session_members(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
