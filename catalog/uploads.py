"""Uploaded import files waiting for preview and confirmation, kept on disk (never in the database).

An upload lives in `FILES_DIR/imports/<tenant id>/<token>/`: the file as sent (`source`), what we know
about it (`meta.json`) and, after an attempt, the rejection report (`rejections.csv`). Keeping it out of
the database means a refused or aborted import leaves the database exactly as it was. The tenant id in
the path scopes the token: another tenant's token is simply not found.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from flask import current_app

from saas.extensions import db
from saas.timeutil import utcnow
from saas.uploads import capped
from tenants.jobruns import error_text
from tenants.models import JobRun
from tenants.scoping import current_tenant_id

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,40}$")
COPY_CHUNK = 1 << 20


@dataclass
class Upload:
    """One uploaded import file and its state: uploaded → importing → imported, aborted or failed."""

    token: str
    right_id: int
    filename: str
    checksum: str
    size: int
    supplier: str
    unit_cost: int
    currency: str
    expires_on: str | None = None  # YYYY-MM-DD, the batch's default expiry
    uploaded_by_id: int | None = None
    uploaded_by: str = ""
    created_at: str = ""
    state: str = "uploaded"
    options: dict[str, Any] = field(default_factory=dict)  # the chosen ImportFormat + on_reject
    job_id: int | None = None
    batch_id: int | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def folder(self) -> Path:
        return tenant_folder() / self.token

    @property
    def source(self) -> Path:
        return self.folder / "source"

    @property
    def report(self) -> Path:
        return self.folder / "rejections.csv"

    @property
    def is_open(self) -> bool:
        """Tell whether the import can still be started (not running, not done)."""
        return self.state in ("uploaded", "aborted", "failed")

    def save(self) -> None:
        """Write the metadata (atomically: a reader never sees half a file)."""
        temporary = self.folder / "meta.json.tmp"
        temporary.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=1), encoding="utf-8")
        temporary.replace(self.folder / "meta.json")


def tenant_folder() -> Path:
    """Return the bound tenant's upload folder."""
    return Path(current_app.config["FILES_DIR"]) / "imports" / str(current_tenant_id())


def store_upload(stream: IO[bytes], filename: str, **fields: Any) -> Upload:
    """Copy an uploaded stream to disk chunk by chunk, with its SHA-256, and describe it.

    A stream longer than `CARD_KEY_UPLOAD_MAX_BYTES` raises `saas.uploads.UploadTooLarge` (413) and leaves
    nothing on disk.
    """
    token = secrets.token_urlsafe(18)
    folder = tenant_folder() / token
    folder.mkdir(parents=True, exist_ok=False)
    digest, size = hashlib.sha256(), 0
    limited = capped(stream, "card_keys")
    try:
        with (folder / "source").open("wb") as target:
            while chunk := limited.read(COPY_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                target.write(chunk)
    except BaseException:  # too large, or the client went away: keep nothing
        shutil.rmtree(folder, ignore_errors=True)
        raise
    upload = Upload(
        token=token,
        filename=Path(filename or "upload").name[:255],
        checksum=digest.hexdigest(),
        size=size,
        created_at=utcnow().isoformat(),
        **fields,
    )
    upload.save()
    return upload


def find_upload(token: str) -> Upload | None:
    """Return the bound tenant's upload with this token, or None."""
    if not TOKEN_PATTERN.match(token or ""):
        return None
    meta = tenant_folder() / token / "meta.json"
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text(encoding="utf-8"))
    upload = Upload(**{k: v for k, v in data.items() if k in Upload.__dataclass_fields__})
    job = tenant_folder() / token / "job"
    if job.is_file():
        upload.job_id = int(job.read_text().strip())
        _follow_lost_run(upload)
    return upload


def _follow_lost_run(upload: Upload) -> None:
    """An import whose job run failed without finishing the upload (its worker died) is failed: retryable.

    The import is one transaction, so a dead worker left nothing behind; the upload opens again.
    """
    if upload.state != "importing" or upload.job_id is None:
        return
    run = db.session.get(JobRun, (current_tenant_id(), upload.job_id))
    if run is not None and run.status == "failed":
        upload.state, upload.message = "failed", error_text(run.error) or ""
        upload.save()


def remember_job(upload: Upload, job_id: int) -> None:
    """Note the job run importing the upload (a file of its own: the job may be writing meta.json now)."""
    (upload.folder / "job").write_text(str(job_id))


def discard_upload(upload: Upload) -> None:
    """Delete an upload and its files."""
    shutil.rmtree(upload.folder, ignore_errors=True)


def file_checksum(path: Path) -> str:
    """Return the SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
