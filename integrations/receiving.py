"""Kept for `integrations.inbox` and `integrations.tasks` (being rewritten) until the drain moves into
`integrations.inbound`. New code imports `integrations.inbound.store`.
"""

from integrations.inbound.store import enqueue_processing, request_inbox_drain

__all__ = ["enqueue_processing", "request_inbox_drain"]
