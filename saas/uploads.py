"""Size caps on uploaded files, one per kind, from the configuration: refuse with 413 before any change."""

from __future__ import annotations

from typing import IO, Any

from flask import current_app
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

# kind -> the setting that caps it (bytes)
LIMIT_SETTINGS = {
    "card_keys": "CARD_KEY_UPLOAD_MAX_BYTES",
    "order_csv": "ORDER_CSV_MAX_BYTES",
    "settlement_csv": "SETTLEMENT_CSV_MAX_BYTES",
    "redemption_report": "REDEMPTION_REPORT_MAX_BYTES",
}


class UploadTooLarge(RequestEntityTooLarge):
    """An upload larger than its kind allows (HTTP 413, with the limit in the message)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            _("This file is too large: files of this kind may be at most %(mb)s MB.", mb=_megabytes(limit))
        )
        self.limit = limit


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g}"


def upload_limit(kind: str) -> int:
    """Return the byte limit for an upload kind."""
    return int(current_app.config[LIMIT_SETTINGS[kind]])


def read_capped(stream: IO[bytes], kind: str) -> bytes:
    """Read a whole upload, refusing it (UploadTooLarge) when it is larger than its kind allows."""
    limit = upload_limit(kind)
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(limit)
    return data


class CappedStream:
    """A readable stream that raises UploadTooLarge once more than `limit` bytes were read from it."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self.limit = limit
        self.seen = 0

    def read(self, size: int = -1) -> bytes:
        """Read like the wrapped stream, counting."""
        chunk = self._stream.read(size)
        self.seen += len(chunk)
        if self.seen > self.limit:
            raise UploadTooLarge(self.limit)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def capped(stream: IO[bytes], kind: str) -> IO[bytes]:
    """Wrap an upload stream so that reading past its kind's limit raises UploadTooLarge."""
    return CappedStream(stream, upload_limit(kind))  # type: ignore[return-value]
