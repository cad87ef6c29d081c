"""Registries on the app: what each package contributes (periodic jobs, demo steps, checklist items).

A package registers its contributions in its `init_app` on the app it is given; the shell reads them back
from the app it runs in. Nothing is process-global, so two apps in one process (tests, a worker beside a
web server) never see each other's registrations, and the shell never names a domain package.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from flask import Flask, current_app

T = TypeVar("T")


class Registry(Generic[T]):
    """Items keyed by name, kept on `app.extensions[extension_key]` in registration order."""

    def __init__(self, extension_key: str) -> None:
        self.extension_key = extension_key

    def register(self, app: Flask, name: str, item: T) -> None:
        """Register `item` as `name` on `app`; registering a name again replaces its item (init_app twice)."""
        self._items(app)[name] = item

    def get(self, name: str, app: Flask | None = None) -> T | None:
        """Return the item registered as `name` on `app` (default: the current app), or None."""
        return self._items(app or current_app).get(name)

    def all(self, app: Flask | None = None) -> list[T]:
        """Return every item registered on `app` (default: the current app), in registration order."""
        return list(self._items(app or current_app).values())

    def _items(self, app: Flask) -> dict[str, T]:
        items: dict[str, T] = app.extensions.setdefault(self.extension_key, {})
        return items
