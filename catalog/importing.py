"""The card-key import engine: stream a file, check, hash, encrypt and bulk-load it in ONE transaction.

A batch is imported whole or not at all. Keys are staged in a temporary table (PostgreSQL: binary COPY;
SQLite: INSERT OR IGNORE in chunks), then moved into `card_keys` with one INSERT … SELECT that skips
keys already in stock (the unique (tenant, right, code_hash) index decides, no decryption). A kill at
any point leaves the database as it was: the temporary table and every row go with the transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from catalog import fileformats, keyring
from catalog.fileformats import ImportFormat, KeyRow, Rejection, RowChecker
from catalog.models import CardKeyBatch, Right
from saas.crypto import CardKeyCipher
from saas.extensions import db, immediate_transaction
from saas.ids import new_id
from saas.timeutil import utcnow
from tenants import audit
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
            self._file = self.path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(["line", "reason"])
        self._writer.writerow([rejection.line_no, rejection.reason])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class _Stager:
    """Collect checked keys into a temporary table (one per transaction) and count what it took."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.staged = 0
        self.buffer: list[tuple[Any, ...]] = []
        raw = db.session.connection().connection.driver_connection  # inside the session's transaction
        assert raw is not None
        self.raw: Any = raw
        self._copy: Any = None
        self._copy_cm: Any = None
        self._create_table()

    def _create_table(self) -> None:
        cursor = self.raw.cursor()
        if self.dialect == "postgresql":
            cursor.execute(
                "CREATE TEMP TABLE card_key_staging (id bigint, code_hash bytea, ciphertext bytea, mask text,"
                " expires_at timestamptz) ON COMMIT DROP"
            )
            self._copy_cm = cursor.copy(
                "COPY card_key_staging (id, code_hash, ciphertext, mask, expires_at)"
                " FROM STDIN (FORMAT BINARY)"
            )
            self._copy = self._copy_cm.__enter__()
            self._copy.set_types(["int8", "bytea", "bytea", "text", "timestamptz"])
        else:
            cursor.execute("DROP TABLE IF EXISTS temp.card_key_staging")
            cursor.execute(
                "CREATE TEMP TABLE card_key_staging (id INTEGER NOT NULL, code_hash BLOB PRIMARY KEY,"
                " ciphertext BLOB NOT NULL, mask TEXT NOT NULL, expires_at TEXT)"
            )
            self.cursor = cursor

    def add(self, row: tuple[Any, ...]) -> None:
        if self._copy is not None:
            self._copy.write_row(row)
            self.staged += 1
            return
        self.buffer.append(row)
        if len(self.buffer) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._copy is None and self.buffer:
            self.cursor.executemany(
                "INSERT OR IGNORE INTO card_key_staging (id, code_hash, ciphertext, mask, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                self.buffer,
            )
            self.staged += self.cursor.rowcount
            self.buffer.clear()

    def finish(self) -> None:
        """End the COPY (PostgreSQL) or write the last chunk (SQLite)."""
        if self._copy_cm is not None:
            self._copy_cm.__exit__(None, None, None)
            self._copy_cm = self._copy = None
        self.flush()

    def distinct_count(self) -> int:
        """Return how many different keys were staged (SQLite staging already refuses repeats)."""
        if self.dialect != "postgresql":
            return self.staged
        cursor = self.raw.cursor()
        cursor.execute("SELECT count(DISTINCT code_hash) FROM card_key_staging")
        return int(cursor.fetchone()[0])

    def drop(self) -> None:
        if self.dialect != "postgresql":
            self.raw.cursor().execute("DROP TABLE IF EXISTS temp.card_key_staging")


def _sqlite_time(moment: dt.datetime | None) -> str | None:
    """Render a datetime as SQLAlchemy stores it on SQLite (so the ORM reads it back)."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


def _stage_rows(
    rows: Iterator[KeyRow | Rejection],
    cipher: CardKeyCipher,
    stager: _Stager,
    outcome: ImportOutcome,
    report: RejectionReport,
    request: ImportRequest,
    progress: Callable[[int], None],
) -> None:
    encrypt, lookup_hash = cipher.encrypt, cipher.lookup_hash
    default_expiry = request.expires_at
    postgres = stager.dialect == "postgresql"
    abort_on_reject = request.on_reject == "abort"
    for row in rows:
        outcome.rows_read += 1
        if outcome.rows_read % PROGRESS_EVERY == 0:
            progress(outcome.rows_read)
        if isinstance(row, Rejection):
            outcome.rejected += 1
            report.add(row)
            if len(outcome.first_rejections) < 20:
                outcome.first_rejections.append((row.line_no, row.reason))
            continue
        if abort_on_reject and outcome.rejected:
            continue  # the import will be aborted: keep reading only to report every rejected row
        identity = row.identity
        expires_at = row.expires_at or default_expiry
        stager.add(
            (
                new_id(),
                lookup_hash(identity.encode()),
                encrypt(row.payload()),
                fileformats.mask(identity),
                expires_at if postgres else _sqlite_time(expires_at),
            )
        )


def _checked_rows(reader: fileformats.CellReader, checker: RowChecker) -> Iterator[KeyRow | Rejection]:
    for line_no, cells in reader:
        yield checker.check(line_no, cells)


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
    checker = RowChecker(request.fmt, zone, now)
    reader = fileformats.CellReader(path, request.fmt)
    outcome = ImportOutcome()
    report = RejectionReport(report_path)
    dialect = db.engine.dialect.name

    def tick(rows: int) -> None:
        if progress is not None:
            progress(90 * reader.fraction(), f"{rows:,} rows read")

    with immediate_transaction(db.session()):  # the real Session: scoped_session lacks in_transaction()
        try:
            stager = _Stager(dialect)
            try:
                _stage_rows(_checked_rows(reader, checker), cipher, stager, outcome, report, request, tick)
            finally:
                stager.finish()
            _refuse_if_needed(outcome, request)
            if progress is not None:
                progress(92, "moving keys into stock")
            batch = _new_batch(request, right, outcome)
            outcome.duplicates_in_file = outcome.rows_read - outcome.rejected - stager.distinct_count()
            outcome.imported = _move_into_stock(right, batch, now)
            outcome.duplicates_in_stock = (
                outcome.rows_read - outcome.rejected - outcome.duplicates_in_file - (outcome.imported)
            )
            stager.drop()
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
        finally:
            report.close()
    outcome.batch_id = batch.id
    if progress is not None:
        progress(100, f"{outcome.imported:,} keys imported")
    return outcome


def _refuse_if_needed(outcome: ImportOutcome, request: ImportRequest) -> None:
    if outcome.rejected and request.on_reject == "abort":
        outcome.status = "aborted"
        raise ImportFailed(
            f"{outcome.rejected:,} rows were rejected; nothing was imported (abort chosen)", outcome
        )
    if outcome.rows_read == 0:
        outcome.status = "failed"
        raise ImportFailed("the file holds no card keys", outcome)
    if outcome.rows_read == outcome.rejected:
        outcome.status = "failed"
        raise ImportFailed("every row was rejected; nothing was imported", outcome)


def _new_batch(request: ImportRequest, right: Right, outcome: ImportOutcome) -> CardKeyBatch:
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
    from tenants.models import Tenant

    tenant = db.session.get(Tenant, current_tenant_id())
    return tenant.time_zone if tenant else "UTC"
