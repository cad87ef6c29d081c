"""Inventory use cases: upload, preview and import card keys; void, reveal and expire them.

Services own the transaction: they validate, act, audit and commit once, and start jobs after the commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Select, distinct, func, select, update

from catalog import fileformats, importing, keyring, uploads
from catalog.fileformats import Detection, FileFormatError, ImportFormat, KeyRow, Rejection
from catalog.models import KEY_STATUSES, CardKey, CardKeyBatch, Right
from catalog.services import CatalogError, read_amount
from catalog.stock import check_low_stock
from catalog.uploads import Upload
from saas import events
from saas.crypto import CryptoError
from saas.extensions import db
from saas.timeutil import utcnow
from tenants import audit
from tenants.jobruns import report_progress, start_job_run
from tenants.models import Tenant
from tenants.scoping import current_tenant_id

PREVIEW_SAMPLE_ROWS = 10
IMPORT_TIMEOUT = 4 * 3600
ON_REJECT = ("skip", "abort")
OPTION_KEYS = ("encoding", "delimiter", "has_header", "mapping", "sheet", "on_reject")

# Published after keys are committed to stock, payload {"right_id": …}: `orders` fills backorders.
CARD_KEYS_ARRIVED = "card_keys.arrived"


def inline_row_limit() -> int:
    """Return how many rows an import may have to run inside the request (more: a background job)."""
    return int(current_app.config.get("CATALOG_IMPORT_INLINE_ROWS", 5000))


def _tenant_zone() -> str:
    tenant = db.session.get(Tenant, current_tenant_id())
    return tenant.time_zone if tenant else "UTC"


def _card_key_right(right_id: Any) -> Right:
    try:
        right = db.session.get(Right, (current_tenant_id(), int(right_id)))
    except (TypeError, ValueError):
        right = None
    if right is None or right.kind != "card_key":
        raise CatalogError(_("Choose a right fulfilled from card keys."))
    if right.archived_at is not None:
        raise CatalogError(_("This right is archived."))
    return right


def _expiry_from_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    moment = fileformats.parse_expiry(text, _tenant_zone())
    if moment is None:
        raise CatalogError(_("Write the expiry date as YYYY-MM-DD."))
    if moment <= utcnow():
        raise CatalogError(_("The batch's expiry date has passed."))
    return moment


# ---------------------------------------------------------------- upload and preview


def _unit_cost(value: str | int, currency: str) -> int:
    """Return a batch's unit cost: an int is already minor units, text is read in major units."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    cost = read_amount(value, currency)
    assert cost is not None
    return cost


def start_upload(
    stream: IO[bytes],
    filename: str,
    *,
    right_id: Any,
    supplier: str,
    unit_cost: str | int,
    currency: str = "",
    expires_on: str | None = None,
    user_id: int | None = None,
    user_label: str = "",
) -> Upload:
    """Keep an uploaded file for preview; refuse it at once when it cannot be a card-key file."""
    right = _card_key_right(right_id)
    supplier = (supplier or "").strip()
    if not supplier or len(supplier) > 120:
        raise CatalogError(_("Name the supplier (up to 120 characters)."))
    currency = (currency or right.currency).strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise CatalogError(_("Currency is a three-letter ISO code such as CNY."))
    cost = _unit_cost(unit_cost, currency)
    _expiry_from_date(expires_on)
    upload = uploads.store_upload(
        stream,
        filename,
        right_id=right.id,
        supplier=supplier,
        unit_cost=cost,
        currency=currency,
        expires_on=expires_on or None,
        uploaded_by_id=user_id,
        uploaded_by=user_label,
    )
    try:
        fileformats.detect(upload.source)
    except FileFormatError:
        uploads.discard_upload(upload)
        raise
    return upload


def clean_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the reading options an operator may set, in their stored shape."""
    options = {key: raw[key] for key in OPTION_KEYS if key in raw}
    if options.get("on_reject") not in ON_REJECT:
        options["on_reject"] = "skip"
    return options


def detect_for(upload: Upload, options: dict[str, Any] | None = None) -> tuple[Detection, ImportFormat]:
    """Detect the upload's format, then apply the choices made (encoding, separator, header, mapping)."""
    options = options if options is not None else upload.options
    header = options.get("has_header")
    detection = fileformats.detect(
        upload.source,
        encoding=options.get("encoding") or None,
        delimiter=options.get("delimiter"),
        has_header=None if header is None else bool(header),
        sheet=options.get("sheet") or None,
    )
    fmt = detection.format
    mapping = options.get("mapping")
    if mapping:
        fmt.mapping = _checked_mapping(mapping, fmt, detection.header)
    return detection, fmt


def _checked_mapping(mapping: dict[str, Any] | str, fmt: ImportFormat, header: list[str]) -> dict[str, int]:
    if isinstance(mapping, str):
        parsed = fileformats.parse_mapping(mapping, header)
    else:
        parsed = {}
        for role, column in mapping.items():
            if column is None or column == "":
                continue
            if role not in fileformats.ROLES:
                raise CatalogError(_("Unknown column role %(r)s.", r=role))
            try:
                parsed[role] = int(column)
            except (TypeError, ValueError) as error:
                raise CatalogError(_("Columns are numbered.")) from error
    if "secret" not in parsed:
        raise CatalogError(_("The mapping must name the secret column."))
    if any(index < 0 or index >= max(fmt.columns, 1) for index in parsed.values()):
        raise CatalogError(_("The file has %(n)s columns; map roles to those.", n=fmt.columns))
    if len(set(parsed.values())) != len(parsed):
        raise CatalogError(_("Map each column to one role only."))
    return parsed


@dataclass
class PreviewRow:
    """One of the first rows as parsed, masked: its cells, and what the import would do with it."""

    line_no: int
    cells: list[str]
    outcome: str  # ok, duplicate_in_file, duplicate_in_stock, rejected
    reason: str = ""


@dataclass
class Preview:
    """What an import of the upload would do: the format found, the first rows, the counts."""

    upload: Upload
    detection: Detection
    fmt: ImportFormat
    on_reject: str
    rows: list[PreviewRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # the counts cover the whole file (else: the first inline_row_limit() rows)


def preview_import(upload: Upload, options: dict[str, Any] | None = None) -> Preview:
    """Read the upload as the import would (up to the inline limit) without writing anything."""
    options = clean_options(options if options is not None else upload.options)
    detection, fmt = detect_for(upload, options)
    preview = Preview(upload, detection, fmt, options["on_reject"])
    keyring.ensure_tenant_keys()
    cipher = keyring.cipher_for(upload.right_id)
    checker = fileformats.RowChecker(fmt, _tenant_zone(), utcnow())
    counts = dict.fromkeys(
        ("rows_read", "imported", "duplicates_in_file", "duplicates_in_stock", "rejected"), 0
    )
    seen: dict[bytes, int] = {}
    pending: list[tuple[bytes, KeyRow]] = []
    limit = inline_row_limit()
    for line_no, cells in fileformats.CellReader(upload.source, fmt):
        if counts["rows_read"] >= limit:
            preview.complete = False
            break
        counts["rows_read"] += 1
        checked = checker.check(line_no, cells)
        if isinstance(checked, Rejection):
            counts["rejected"] += 1
            _sample(preview, line_no, cells, fmt, "rejected", checked.reason)
            continue
        digest = cipher.lookup_hash(checked.identity.encode())
        if digest in seen:
            counts["duplicates_in_file"] += 1
            _sample(preview, line_no, cells, fmt, "duplicate_in_file")
            continue
        seen[digest] = line_no
        pending.append((digest, checked))
    in_stock = _hashes_in_stock(upload.right_id, [digest for digest, _row in pending])
    for digest, row in pending:
        outcome = "duplicate_in_stock" if digest in in_stock else "ok"
        counts["duplicates_in_stock" if digest in in_stock else "imported"] += 1
        _sample(preview, row.line_no, None, fmt, outcome, row=row)
    preview.rows.sort(key=lambda r: r.line_no)
    preview.rows = preview.rows[:PREVIEW_SAMPLE_ROWS]
    preview.counts = counts
    return preview


def _sample(
    preview: Preview,
    line_no: int,
    cells: list[Any] | None,
    fmt: ImportFormat,
    outcome: str,
    reason: str = "",
    row: KeyRow | None = None,
) -> None:
    if len(preview.rows) >= PREVIEW_SAMPLE_ROWS * 3:
        return
    if row is not None:
        shown = [
            fileformats.mask(row.card) if row.card else "",
            fileformats.mask(row.secret),
            row.expires_at.date().isoformat() if row.expires_at else "",
        ]
    elif cells is None:
        shown = ["…"]
    else:
        expires = fmt.mapping.get("expires")
        shown = [
            fileformats.clean(c) if i == expires else fileformats.mask(fileformats.clean(c))
            for i, c in enumerate(cells)
        ]
    preview.rows.append(PreviewRow(line_no, shown, outcome, reason))


def _hashes_in_stock(right_id: int, digests: list[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    for start in range(0, len(digests), 500):
        chunk = digests[start : start + 500]
        found.update(
            bytes(h)
            for h in db.session.scalars(
                select(CardKey.code_hash).where(CardKey.right_id == right_id, CardKey.code_hash.in_(chunk))
            )
        )
    return found


# ---------------------------------------------------------------- import


def confirm_import(upload: Upload, options: dict[str, Any], user_id: int | None = None) -> int | None:
    """Start the import of an upload with the chosen options; return the job run id when it runs as a job.

    Small files are imported at once; bigger ones run as a job with progress.
    """
    if not upload.is_open:
        raise CatalogError(_("This file is already being imported or was imported."))
    options = clean_options(options)
    preview = preview_import(upload, options)  # checks the options before anything starts
    upload.options = options
    upload.state, upload.message = "importing", ""
    upload.save()
    if preview.complete:
        run_upload_import(upload.token)
        return None
    right = db.session.get(Right, (current_tenant_id(), upload.right_id))
    run = start_job_run(
        "inventory.import",
        _("Import %(file)s into %(right)s", file=upload.filename, right=right.name if right else ""),
        "catalog.tasks.import_upload",
        upload.token,
        queue="imports",
        timeout=IMPORT_TIMEOUT,
        created_by_id=user_id,
    )
    uploads.remember_job(upload, run.id)
    return int(run.id)


def import_request(upload: Upload, fmt: ImportFormat) -> importing.ImportRequest:
    """Build the engine's request from an upload and its chosen format."""
    return importing.ImportRequest(
        right_id=upload.right_id,
        supplier=upload.supplier,
        unit_cost=upload.unit_cost,
        currency=upload.currency,
        fmt=fmt,
        on_reject=upload.options.get("on_reject", "skip"),
        expires_at=_expiry_from_date(upload.expires_on) if upload.expires_on else None,
        source_filename=upload.filename,
        checksum=upload.checksum,
        upload_token=upload.token,
        imported_by_id=upload.uploaded_by_id,
        imported_by=upload.uploaded_by,
    )


def reopen_for_retry(token: str, run_id: int | None) -> None:
    """Set an upload whose import run failed back to importing, when `run_id` is that run (retried)."""
    upload = uploads.find_upload(token)
    if upload is not None and run_id is not None and upload.job_id == run_id and upload.state == "failed":
        upload.state, upload.message = "importing", ""
        upload.save()


def run_upload_import(token: str, progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Import an upload whose import was confirmed (inline or as a job) and record how it ended."""
    upload = uploads.find_upload(token)
    if upload is None or upload.state != "importing":
        return {"status": "skipped"}  # gone, or already finished: a repeated job changes nothing
    upload.report.unlink(missing_ok=True)
    try:
        _detection, fmt = detect_for(upload)
        outcome = importing.run_import(
            upload.source,
            import_request(upload, fmt),
            report_path=upload.report,
            progress=progress or report_progress,
        )
    except importing.ImportFailed as failure:
        _finish_upload(upload, failure.outcome.status, failure.outcome, str(failure))
        return {"status": upload.state, **failure.outcome.counts(), "message": upload.message}
    except (FileFormatError, CatalogError) as error:
        _finish_upload(upload, "failed", None, str(error))
        return {"status": "failed", "message": upload.message}
    except Exception:
        _finish_upload(upload, "failed", None, _("The import failed unexpectedly; nothing was imported."))
        raise
    _finish_upload(upload, "imported", outcome, "")
    keys_arrived(upload.right_id)
    return {"status": "imported", "batch_id": str(outcome.batch_id), **outcome.counts()}


def keys_arrived(right_id: int) -> None:
    """After an import commits: re-check the low-stock alert and tell outer packages (backorders)."""
    check_low_stock(right_id)
    events.publish(CARD_KEYS_ARRIVED, current_tenant_id(), {"right_id": right_id})


def _finish_upload(upload: Upload, state: str, outcome: importing.ImportOutcome | None, message: str) -> None:
    upload.state, upload.message = state, message
    if outcome is not None:
        upload.outcome = outcome.counts()
        upload.batch_id = outcome.batch_id
    upload.save()


def import_batch_count() -> int:
    """Return how many batches the tenant has imported (the getting-started checklist)."""
    return db.session.scalar(select(func.count()).select_from(CardKeyBatch)) or 0


# ---------------------------------------------------------------- keys: list, void, reveal, expire


@dataclass
class KeyFilter:
    """Which card keys an operator means: by right, batch, state and expiry."""

    right_id: int | None = None
    batch_id: int | None = None
    status: str | None = None
    expires_before: dt.datetime | None = None

    def apply(self, statement: Any) -> Any:
        """Narrow a select or update over CardKey to this filter."""
        if self.right_id is not None:
            statement = statement.where(CardKey.right_id == self.right_id)
        if self.batch_id is not None:
            statement = statement.where(CardKey.batch_id == self.batch_id)
        if self.status in KEY_STATUSES:
            statement = statement.where(CardKey.status == self.status)
        if self.expires_before is not None:
            statement = statement.where(CardKey.expires_at < self.expires_before)
        return statement

    def describe(self) -> dict[str, str]:
        """Return the filter for the audit log."""
        return {k: str(v) for k, v in vars(self).items() if v is not None}


def keys_query(key_filter: KeyFilter) -> Select[tuple[CardKey]]:
    """Return the statement listing card keys matching a filter."""
    return key_filter.apply(select(CardKey))


def _check_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise CatalogError(_("Say why the keys are voided."))
    return reason[:500]


def _void(key_filter: KeyFilter, reason: str) -> tuple[int, list[int]]:
    """Void the available keys matching a filter in one statement; return the count and the rights touched."""
    right_ids = list(
        db.session.scalars(
            key_filter.apply(select(distinct(CardKey.right_id))).where(CardKey.status == "available")
        )
    )
    statement = key_filter.apply(update(CardKey)).where(CardKey.status == "available")
    result = db.session.execute(
        statement.values(status="void", voided_at=utcnow(), void_reason=reason).execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount), right_ids  # type: ignore[attr-defined]


def void_keys(key_filter: KeyFilter, reason: str | None) -> int:
    """Void every available key matching the filter, with a reason; return how many."""
    reason = _check_reason(reason)
    if key_filter.right_id is None and key_filter.batch_id is None:
        raise CatalogError(_("Choose a right or a batch to void keys of."))
    count, right_ids = _void(key_filter, reason)
    audit.record(
        "inventory.keys_voided",
        "right" if key_filter.right_id else "card_key_batch",
        key_filter.right_id or key_filter.batch_id,
        reason=reason,
        count=count,
        filter=key_filter.describe(),
    )
    db.session.commit()
    for right_id in right_ids:
        check_low_stock(right_id)
    return count


def void_batch(batch: CardKeyBatch, reason: str | None) -> int:
    """Void every key of a batch that is still available."""
    reason = _check_reason(reason)
    count, _rights = _void(KeyFilter(batch_id=batch.id), reason)
    batch.voided_at = utcnow()
    audit.record("inventory.batch_voided", "card_key_batch", batch.id, reason=reason, count=count)
    db.session.commit()
    check_low_stock(batch.right_id)
    return count


def void_key(key: CardKey, reason: str | None) -> None:
    """Void one available key."""
    reason = _check_reason(reason)
    if key.status != "available":
        raise CatalogError(_("Only an available key can be voided; this one is %(s)s.", s=key.status))
    key.status, key.voided_at, key.void_reason = "void", utcnow(), reason
    audit.record(
        "inventory.key_voided", "card_key", key.id, reason=reason, right_id=str(key.right_id), mask=key.mask
    )
    db.session.commit()
    check_low_stock(key.right_id)


def reveal_key(key: CardKey) -> str:
    """Decrypt one key for a person allowed to see it, and write that to the audit log."""
    try:
        card, secret = fileformats.split_payload(
            keyring.cipher_for(key.right_id).decrypt(bytes(key.ciphertext))
        )
    except CryptoError as error:
        raise CatalogError(_("This key cannot be decrypted with this tenant's keys.")) from error
    audit.record("inventory.key_revealed", "card_key", key.id, right_id=str(key.right_id), mask=key.mask)
    db.session.commit()
    return f"{card} {secret}" if card else secret


def expire_card_keys() -> int:
    """Mark the bound tenant's available keys past their expiry as expired; return how many."""
    now = utcnow()
    due = select(CardKey.right_id).where(CardKey.status == "available", CardKey.expires_at <= now).distinct()
    right_ids = list(db.session.scalars(due))
    expired = 0
    for right_id in right_ids:  # per right: each UPDATE walks the allocation index
        result = db.session.execute(
            update(CardKey)
            .where(CardKey.right_id == right_id, CardKey.status == "available", CardKey.expires_at <= now)
            .values(status="expired", expired_at=now)
            .execution_options(synchronize_session=False)
        )
        expired += int(result.rowcount)  # type: ignore[attr-defined]
    if expired:
        audit.record("inventory.keys_expired", None, None, count=expired, actor="system")
    db.session.commit()
    for right_id in right_ids:
        check_low_stock(right_id)
    return expired


def import_local_file(
    path: Any,
    *,
    right_id: Any,
    supplier: str,
    unit_cost: str | int,
    currency: str = "",
    expires_on: str | None = None,
    options: dict[str, Any] | None = None,
    report_path: Any = None,
    progress: Callable[[float, str], None] | None = None,
    imported_by: str = "",
) -> importing.ImportOutcome:
    """Import a file from this machine's disk (CLI, demo data, benchmarks) through the same engine.

    Raises ImportFailed (nothing written) when the import is refused, FileFormatError when the file
    cannot be read at all.
    """
    path = Path(path)
    right = _card_key_right(right_id)
    supplier = (supplier or "").strip()
    if not supplier:
        raise CatalogError(_("Name the supplier (up to 120 characters)."))
    currency = (currency or right.currency).upper()
    cost = _unit_cost(unit_cost, currency)
    options = clean_options(options or {})
    upload = Upload(
        token="local",
        right_id=right.id,
        filename=path.name,
        checksum=uploads.file_checksum(path),
        size=path.stat().st_size,
        supplier=supplier,
        unit_cost=cost,
        currency=currency,
        expires_on=expires_on,
        options=options,
        uploaded_by=imported_by,
    )
    detection = fileformats.detect(
        path,
        encoding=options.get("encoding") or None,
        delimiter=options.get("delimiter"),
        has_header=options.get("has_header"),
        sheet=options.get("sheet") or None,
    )
    fmt = detection.format
    if options.get("mapping"):
        fmt.mapping = _checked_mapping(options["mapping"], fmt, detection.header)
    request = import_request(upload, fmt)
    request.upload_token = None
    outcome = importing.run_import(path, request, report_path=report_path, progress=progress)
    keys_arrived(right.id)
    return outcome
