"""The card-key import engine: stream a file, check, hash, encrypt and bulk-load it in ONE transaction.

A batch is imported whole or not at all: the batch row and its keys are written in one transaction, so a
kill at any point leaves the database as it was. Rows flow through a generator (read → check → hash →
encrypt) straight into the database, so memory stays flat whatever the file's size.

PostgreSQL, fast path: one binary COPY straight into `card_keys` inside a savepoint. The unique index on
(tenant, right, code_hash) refuses any key already in the file or in stock; then the savepoint is rolled
back and the slow path runs: COPY into a temporary staging table, then one INSERT … SELECT … ON CONFLICT
DO NOTHING that skips duplicates (found by keyed hash, never by decrypting). SQLite: INSERT OR IGNORE
into a staging table keyed by hash (duplicates in the file), then INSERT … ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from flask_babel import gettext as _
from psycopg import errors

from catalog import fileformats, keyring
from catalog.fileformats import ImportFormat, Rejection, RowChecker
from catalog.models import CardKeyBatch, Right
from saas.crypto import CardKeyCipher
from saas.csvfile import SafeCsvWriter, open_csv
from saas.extensions import db, immediate_transaction
from saas.ids import new_id
from saas.timeutil import utcnow
from tenants import audit
from tenants.models import Tenant
from tenants.scoping import current_tenant_id, tenant_sql

ProgressCallback = Callable[[float, str], None]
CHUNK_ROWS = 5000
PROGRESS_EVERY = 20000


class ImportFailed(ValueError):
    """The import was refused as a whole; nothing was written. `outcome` says what was found."""

    def __init__(self, message: str, outcome: ImportOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class ImportRequest:
    """Everything an import needs besides the file: where the keys go, what they cost, how to read them."""

    right_id: int
    supplier: str
    unit_cost: int
    currency: str
    fmt: ImportFormat
    on_reject: str = "skip"  # "skip" rejected rows, or "abort" the whole import
    expires_at: dt.datetime | None = None
    source_filename: str = ""
    checksum: str = ""
    upload_token: str | None = None
    imported_by_id: int | None = None
    imported_by: str = ""


@dataclass
class ImportOutcome:
    """What an import did (or, when aborted, found): status and the counts the operator sees."""

    status: str = "imported"  # imported, aborted, failed
    batch_id: int | None = None
    rows_read: int = 0
    imported: int = 0
    duplicates_in_file: int = 0
    duplicates_in_stock: int = 0
    rejected: int = 0
    message: str = ""
    first_rejections: list[tuple[int, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Return the counts as a dict (for JSON and the job result)."""
        return {
            "rows_read": self.rows_read,
            "imported": self.imported,
            "duplicates_in_file": self.duplicates_in_file,
            "duplicates_in_stock": self.duplicates_in_stock,
            "rejected": self.rejected,
        }


class RejectionReport:
    """Write rejected rows (line number, reason) to a CSV file as they come; never the key itself."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._writer: Any = None

    def add(self, rejection: Rejection) -> None:
        if self.path is None:
            return
        if self._writer is None:
            self._file = open_csv(self.path)
            self._writer = SafeCsvWriter(self._file)
            self._writer.writerow(["line", "reason"])
        self._writer.writerow([rejection.line_no, rejection.reason])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


KEY_COLUMNS = (
    "tenant_id, id, right_id, batch_id, status, code_hash, ciphertext, mask, expires_at,"
    " max_deliveries, delivery_count, created_at"
)
KEY_TYPES = [
    "int8",
    "int8",
    "int8",
    "int8",
    "text",
    "bytea",
    "bytea",
    "text",
    "timestamptz",
    "int4",
    "int4",
    "timestamptz",
]
STAGING_COLUMNS = "id, code_hash, ciphertext, mask, expires_at"


class _DuplicatesFound(Exception):
    """The fast path met a key that is already in the file or in stock; the slow path takes over."""


@dataclass
class _Run:
    """One pass over the file: what it needs and what it counted."""

    path: Path
    request: ImportRequest
    right: Right
    batch: CardKeyBatch
    cipher: CardKeyCipher
    checker: RowChecker
    now: dt.datetime
    report: RejectionReport
    progress: ProgressCallback | None
    postgres: bool
    outcome: ImportOutcome = field(default_factory=ImportOutcome)
    staged: int = 0

    def key_rows(self) -> Iterator[tuple[Any, ...]]:
        """Yield (id, code_hash, ciphertext, mask, expires_at) for every acceptable row, counting the rest."""
        reader = fileformats.CellReader(self.path, self.request.fmt)
        check, outcome, report = self.checker.check, self.outcome, self.report
        encrypt, lookup_hash, mask = self.cipher.encrypt, self.cipher.lookup_hash, fileformats.mask
        default_expiry = self.request.expires_at
        abort_on_reject = self.request.on_reject == "abort"
        postgres = self.postgres
        for line_no, cells in reader:
            outcome.rows_read += 1
            if outcome.rows_read % PROGRESS_EVERY == 0 and self.progress is not None:
                self.progress(90 * reader.fraction(), _("%(n)s rows read", n=f"{outcome.rows_read:,}"))
            row = check(line_no, cells)
            if isinstance(row, Rejection):
                outcome.rejected += 1
                report.add(row)
                if len(outcome.first_rejections) < 20:
                    outcome.first_rejections.append((row.line_no, row.reason))
                continue
            if abort_on_reject and outcome.rejected:
                continue  # the import will be aborted: read on only to report every rejected row
            identity = row.identity
            expires_at = row.expires_at or default_expiry
            self.staged += 1
            yield (
                new_id(),
                lookup_hash(identity.encode()),
                encrypt(row.payload()),
                mask(identity),
                expires_at if postgres else _sqlite_time(expires_at),
            )

    @property
    def accepted(self) -> int:
        """Return how many rows passed the checks."""
        return self.outcome.rows_read - self.outcome.rejected


def _raw_connection() -> Any:
    raw = db.session.connection().connection.driver_connection  # inside the session's transaction
    assert raw is not None
    return raw


def _copy_straight_into_stock(run: _Run) -> None:
    """PostgreSQL fast path: COPY the keys into card_keys; _DuplicatesFound if any key is not new."""
    max_deliveries = run.right.max_deliveries if run.right.reusable else 1
    fixed_head = (run.batch.tenant_id,)
    right_id, batch_id, now = run.right.id, run.batch.id, run.now
    cursor = _raw_connection().cursor()
    cursor.execute("SAVEPOINT catalog_import_fast_path")
    try:
        with cursor.copy(f"COPY card_keys ({KEY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(KEY_TYPES)
            write_row = copy.write_row
            for key_id, code_hash, ciphertext, masked, expires_at in run.key_rows():
                write_row(
                    (
                        *fixed_head,
                        key_id,
                        right_id,
                        batch_id,
                        "available",
                        code_hash,
                        ciphertext,
                        masked,
                        expires_at,
                        max_deliveries,
                        0,
                        now,
                    )
                )
    except errors.UniqueViolation as error:
        cursor.execute("ROLLBACK TO SAVEPOINT catalog_import_fast_path")
        raise _DuplicatesFound from error
    cursor.execute("RELEASE SAVEPOINT catalog_import_fast_path")
    run.outcome.imported = run.staged


def _stage_then_insert(run: _Run) -> None:
    """Slow path (and SQLite's only path): stage in a temporary table, then insert what is new."""
    cursor = _raw_connection().cursor()
    if run.postgres:
        cursor.execute(
            "CREATE TEMP TABLE card_key_staging (id bigint, code_hash bytea, ciphertext bytea,"
            " mask text, expires_at timestamptz) ON COMMIT DROP"
        )
        with cursor.copy(f"COPY card_key_staging ({STAGING_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "bytea", "bytea", "text", "timestamptz"])
            for row in run.key_rows():
                copy.write_row(row)
        distinct = -1  # counted below, and only if some keys turn out not to be new
    else:
        cursor.execute("DROP TABLE IF EXISTS temp.card_key_staging")
        cursor.execute(
            "CREATE TEMP TABLE card_key_staging (id INTEGER NOT NULL, code_hash BLOB PRIMARY KEY,"
            " ciphertext BLOB NOT NULL, mask TEXT NOT NULL, expires_at TEXT)"
        )
        rows = run.key_rows()
        distinct = 0
        while chunk := list(itertools.islice(rows, CHUNK_ROWS)):
            cursor.executemany(
                f"INSERT OR IGNORE INTO card_key_staging ({STAGING_COLUMNS}) VALUES (?, ?, ?, ?, ?)", chunk
            )
            distinct += cursor.rowcount
    if run.outcome.rejected and run.request.on_reject == "abort":
        return
    run.outcome.imported = _move_into_stock(run.right, run.batch, run.now)
    if distinct < 0:
        distinct = run.staged
        if run.outcome.imported < run.staged:
            distinct = _scalar(cursor, "SELECT count(DISTINCT code_hash) FROM card_key_staging")
    run.outcome.duplicates_in_file = run.accepted - distinct
    run.outcome.duplicates_in_stock = distinct - run.outcome.imported
    if not run.postgres:
        cursor.execute("DROP TABLE IF EXISTS temp.card_key_staging")


def _row_security_active() -> bool:
    """Tell whether row-level security applies to this connection's writes to card_keys.

    COPY cannot load a table under row-level security, so production (an app role subject to RLS) takes
    the staging path; the fast path serves databases without RLS and maintenance runs as the owner.
    """
    return bool(_scalar(_raw_connection().cursor(), "SELECT row_security_active('card_keys')::int"))


def _scalar(cursor: Any, sql: str) -> int:
    cursor.execute(sql)
    return int(cursor.fetchone()[0])


def _sqlite_time(moment: dt.datetime | None) -> str | None:
    """Render a datetime as SQLAlchemy stores it on SQLite (so the ORM reads it back)."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


def _move_into_stock(right: Right, batch: CardKeyBatch, now: dt.datetime) -> int:
    statement, params = tenant_sql(
        "INSERT INTO card_keys (tenant_id, id, right_id, batch_id, status, code_hash, ciphertext, mask,"
        " expires_at, max_deliveries, delivery_count, created_at)"
        " SELECT :tenant_id, s.id, :right_id, :batch_id, 'available', s.code_hash, s.ciphertext, s.mask,"
        # WHERE true: without it SQLite reads the ON of ON CONFLICT as a join condition
        " s.expires_at, :max_deliveries, 0, :now FROM card_key_staging s WHERE true"
        " ON CONFLICT (tenant_id, right_id, code_hash) DO NOTHING",
        {
            "right_id": right.id,
            "batch_id": batch.id,
            "now": now if db.engine.dialect.name == "postgresql" else _sqlite_time(now),
            "max_deliveries": right.max_deliveries if right.reusable else 1,
        },
    )
    return int(db.session.execute(statement, params).rowcount)  # type: ignore[attr-defined]


def run_import(
    path: Path,
    request: ImportRequest,
    *,
    report_path: Path | None = None,
    progress: ProgressCallback | None = None,
) -> ImportOutcome:
    """Import one file into a new batch of the right, atomically; raise ImportFailed when refused.

    Rejected rows are skipped or abort the whole import (`request.on_reject`); either way each one is
    written to the rejection report with its line number and reason.
    """
    right = db.session.get(Right, (current_tenant_id(), request.right_id))
    if right is None or right.kind != "card_key":
        raise ValueError("card keys are imported into a card_key right of this tenant")
    zone = _tenant_zone()
    keyring.ensure_tenant_keys()
    cipher = keyring.cipher_for(right.id)
    now = utcnow()
    postgres = db.engine.dialect.name == "postgresql"
    with immediate_transaction(db.session()):  # the real Session: scoped_session lacks in_transaction()
        try:
            batch = _new_batch(request, right)
            run = _pass(
                path,
                request,
                right,
                batch,
                cipher,
                RowChecker(request.fmt, zone, now),
                now,
                report_path,
                progress,
                postgres,
            )
            outcome = run.outcome
            _refuse_if_needed(outcome, request)
            _record_counts(batch, outcome)
            audit.record(
                "inventory.imported",
                "card_key_batch",
                batch.id,
                right_id=str(right.id),
                supplier=batch.supplier,
                file=batch.source_filename,
                checksum=batch.source_checksum,
                counts=outcome.counts(),
            )
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    outcome.batch_id = batch.id
    if progress is not None:
        progress(100, _("%(n)s keys imported", n=f"{outcome.imported:,}"))
    return outcome


def _pass(
    path: Path,
    request: ImportRequest,
    right: Right,
    batch: CardKeyBatch,
    cipher: CardKeyCipher,
    checker: RowChecker,
    now: dt.datetime,
    report_path: Path | None,
    progress: ProgressCallback | None,
    postgres: bool,
) -> _Run:
    """Read the file once (twice on PostgreSQL when the fast path meets a duplicate) and load its keys."""

    def new_run() -> _Run:
        return _Run(
            path,
            request,
            right,
            batch,
            cipher,
            checker,
            now,
            RejectionReport(report_path),
            progress,
            postgres,
        )

    run = new_run()
    try:
        if postgres and not _row_security_active():
            try:
                _copy_straight_into_stock(run)
                return run
            except _DuplicatesFound:
                run.report.close()
                run = new_run()
                if progress is not None:
                    progress(0, _("Some keys are already known: importing the new ones only."))
        _stage_then_insert(run)
        return run
    finally:
        run.report.close()


def _refuse_if_needed(outcome: ImportOutcome, request: ImportRequest) -> None:
    if outcome.rejected and request.on_reject == "abort":
        outcome.status = "aborted"
        raise ImportFailed(
            _("%(n)s rows were rejected; nothing was imported (abort chosen).", n=f"{outcome.rejected:,}"),
            outcome,
        )
    if outcome.rows_read == 0:
        outcome.status = "failed"
        raise ImportFailed(_("The file holds no card keys."), outcome)
    if outcome.rows_read == outcome.rejected:
        outcome.status = "failed"
        raise ImportFailed(_("Every row was rejected; nothing was imported."), outcome)


def _new_batch(request: ImportRequest, right: Right) -> CardKeyBatch:
    batch = CardKeyBatch(
        right_id=right.id,
        supplier=request.supplier,
        unit_cost=request.unit_cost,
        currency=request.currency,
        expires_at=request.expires_at,
        source_filename=request.source_filename[:255],
        source_checksum=request.checksum,
        upload_token=request.upload_token,
        file_format=request.fmt.to_dict(),
        imported_by_id=request.imported_by_id,
        imported_by=request.imported_by,
    )
    db.session.add(batch)
    db.session.flush()
    return batch


def _record_counts(batch: CardKeyBatch, outcome: ImportOutcome) -> None:
    for name, value in outcome.counts().items():
        setattr(batch, name, value)


def _tenant_zone() -> str:
    tenant = db.session.get(Tenant, current_tenant_id())
    return tenant.time_zone if tenant else "UTC"
