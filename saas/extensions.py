"""Extensions, created unbound and bound to the app in `create_app`."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import Flask, Response, request
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import JSON, BigInteger, DateTime, MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, registry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use saas.timeutil.utcnow()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base: named constraints, 64-bit integers and UTC datetimes by default."""

    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={int: BigInteger(), dt.datetime: UTCDateTime(), dict[str, Any]: JSON()},
    )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """Give SQLite WAL, a busy timeout, foreign keys, and let us issue BEGIN ourselves."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


_write_intent: ContextVar[bool] = ContextVar("sqlite_write_intent", default=False)


@contextmanager
def write_intent() -> Iterator[None]:
    """Declare that the work in the block writes: on SQLite its transactions take the write lock up front.

    SQLite in WAL mode refuses, at once and without waiting, a transaction that read and then tries to write
    after another connection committed ("database is locked"). Requests that change things, API calls and
    jobs therefore begin with `BEGIN IMMEDIATE` and wait their turn instead; page views stay deferred so
    they read while a long import writes. PostgreSQL ignores this.
    """
    token = _write_intent.set(True)
    try:
        yield
    finally:
        _write_intent.reset(token)


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn: Any) -> None:
    """Start SQLite transactions explicitly; writers (see `write_intent`) take the write lock up front."""
    if conn.dialect.name == "sqlite":
        immediate = bool(conn.get_execution_options().get("sqlite_immediate") or _write_intent.get())
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        conn.info["sqlite_immediate"] = immediate  # what this transaction holds, for immediate_transaction


class UncommittedWrites(RuntimeError):
    """A use case asked for the write lock while writes of an earlier step were still uncommitted."""


_WROTE = "quanyi.wrote"  # Session.info flag: this transaction flushed a write


@event.listens_for(Session, "after_flush")
def _note_the_write(session: Session, flush_context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_the_write(session: Session) -> None:
    session.info.pop(_WROTE, None)


def has_uncommitted_writes(session: Session) -> bool:
    """Tell whether `session`'s transaction holds writes not yet committed (flushed or pending)."""
    return bool(session.info.get(_WROTE) or session.new or session.dirty or session.deleted)


@contextmanager
def immediate_transaction(session: Session | None = None) -> Iterator[Session]:
    """Run the block in a transaction that holds the write lock from its first statement.

    The one transaction helper of a use case that allocates or claims. On SQLite this is `BEGIN IMMEDIATE`
    (a deferred transaction that upgrades to a writer fails with "database is locked" under concurrency);
    on PostgreSQL it is the ordinary transaction, where the statements themselves lock rows (`FOR UPDATE
    SKIP LOCKED`). The caller, a service, commits: see "Services own the commit" in the README.

    Nesting-aware: inside a transaction that holds the write lock already (a request, job or command under
    `write_intent`, an enclosing `immediate_transaction`, any transaction on PostgreSQL) the block joins it.
    An open SQLite transaction that only read is ended first (a deferred one cannot safely become a writer);
    one that wrote raises `UncommittedWrites` rather than committing another step's work unseen.
    """
    active: Any = session if session is not None else db.session
    if hasattr(active, "registry"):  # a scoped_session: act on the current session itself
        active = active()
    if active.in_transaction():
        connection = active.connection()
        if connection.dialect.name != "sqlite" or connection.info.get("sqlite_immediate"):
            yield active
            return
        if has_uncommitted_writes(active):
            raise UncommittedWrites(
                "commit (or roll back) the earlier step before this one takes the write lock"
            )
        active.commit()  # ends a read: nothing is written
    active.connection(execution_options={"sqlite_immediate": True})
    yield active


def is_sqlite_busy(error: BaseException) -> bool:
    """Tell whether a database error is SQLite's "database is locked" (SQLITE_BUSY and its variants)."""
    orig = getattr(error, "orig", error)
    return isinstance(orig, sqlite3.OperationalError) and (
        getattr(orig, "sqlite_errorname", "").startswith("SQLITE_BUSY") or "database is locked" in str(orig)
    )


def retry_reads_that_write(app: Flask) -> None:
    """Re-run a page view (GET/HEAD) once as a writer when its deferred SQLite transaction could not write.

    Page views begin deferred so they read while a long import writes. One that also writes (a download
    that records its audit row) fails at once with SQLITE_BUSY_SNAPSHOT if
    another connection committed after it first read — the busy timeout cannot help a stale snapshot. The
    view is then rolled back and run again under `write_intent`, where `BEGIN IMMEDIATE` waits its turn.
    Only safe methods are re-run; other requests are writers from their first statement already.
    """
    dispatch = app.full_dispatch_request

    def full_dispatch_request() -> Response:
        try:
            return dispatch()
        except OperationalError as error:
            if request.method not in ("GET", "HEAD") or _write_intent.get() or not is_sqlite_busy(error):
                raise
        db.session.rollback()
        with write_intent():
            return dispatch()

    app.full_dispatch_request = full_dispatch_request  # type: ignore[method-assign]


def is_postgres() -> bool:
    """Tell whether the app's database is PostgreSQL."""
    return db.engine.dialect.name == "postgresql"
