"""Batched INSERTs for the fulfilment hot path: one cached statement per table, executed for many rows
(psycopg pipelines them in one round trip) without the ORM's per-object bookkeeping."""

from __future__ import annotations

from typing import Any

from saas.extensions import db


def column_values(obj: Any) -> dict[str, Any]:
    """Return a new (not yet added) model object's columns, with column defaults filled in."""
    row: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        default = column.default
        if value is None and default is not None:
            value = default.arg(None) if default.is_callable else default.arg
        row[column.key] = value
    return row


def insert_objects(objects: list[Any]) -> None:
    """Insert new objects of one model in one executemany (they stay out of the session)."""
    if objects:
        db.session.execute(objects[0].__table__.insert(), [column_values(obj) for obj in objects])
