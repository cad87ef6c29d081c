"""Signals the catalog sends so outer packages can react without being imported by it."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# Sent after a batch of card keys is committed to stock, with kwargs tenant_id and right_id.
card_keys_arrived = _signals.signal("card-keys-arrived")
