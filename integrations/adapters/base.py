"""The channel adapter interface and the events adapters turn deliveries into.

An adapter knows one platform: how it signs (verify), how to name a delivery so repeats are recognised
(describe), and what a delivery means for us (parse → events). It never touches the database: the inbox
(`integrations.inbox`) applies the events through the orders layer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask_babel import lazy_gettext as _l

from saas import money


class InvalidDelivery(ValueError):
    """A signed delivery we cannot use (malformed JSON, a body that contradicts its topic, …)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- events


@dataclass
class ExternalCustomer:
    """Who bought, as the channel tells it."""

    email: str | None = None
    phone: str | None = None
    name: str = ""
    external_id: str | None = None


@dataclass
class ExternalLine:
    """One line of a channel's order: the references to map (tried in order), quantity and unit price."""

    refs: list[tuple[str, str]]
    quantity: int
    unit_price: int | None  # minor units; None when the channel does not say
    title: str = ""


@dataclass
class OrderPaid:
    """The channel says an order is paid: create it (once) and fulfil it."""

    external_id: str
    currency: str
    total: int | None
    lines: list[ExternalLine]
    customer: ExternalCustomer = field(default_factory=ExternalCustomer)
    placed_at: dt.datetime | None = None
    payment_reference: str | None = None
    subscription_id: str | None = None
    client_ip: str | None = None  # the buyer's address, when the channel tells it (risk control)
    device_id: str | None = None  # a device or browser-session id, when the channel tells it


@dataclass
class OrderCancelled:
    """The channel cancelled an order."""

    external_id: str
    reason: str = ""


@dataclass
class RefundReported:
    """The channel refunded (part of) an order; `cumulative` amounts count every refund so far."""

    external_id: str
    refund_id: str
    amount: int | None
    reason: str = ""
    cumulative: bool = False


@dataclass
class SubscriptionChanged:
    """A subscription renewed, will end at its period's end, or ended now (Stripe)."""

    action: str  # renewed, cancel_at_period_end, resumed, cancel_now
    subscription_id: str
    period_end: dt.datetime | None = None
    amount: int | None = None
    currency: str | None = None
    reference: str | None = None


@dataclass
class Ignored:
    """Nothing to do, and why (a ping, an unpaid checkout, a status we do not act on)."""

    reason: str


Event = OrderPaid | OrderCancelled | RefundReported | SubscriptionChanged | Ignored


@dataclass(frozen=True)
class Envelope:
    """What the inbox stores about a verified delivery before processing it."""

    topic: str
    dedupe_key: str
    api_version: str | None = None
    external_order_id: str | None = None


# ---------------------------------------------------------------- the interface


class ChannelAdapter:
    """One platform: verify a delivery, describe it for the inbox, parse it into events."""

    slug: ClassVar[str]
    label: ClassVar[Any]
    secret_prefix: ClassVar[str] = ""
    takes_webhooks: ClassVar[bool] = True
    signature_header: ClassVar[str] = ""
    ref_kinds: ClassVar[tuple[str, ...]] = ("sku",)
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes], now: float) -> bool:
        """Tell whether the delivery is signed with one of the channel's secrets."""
        raise NotImplementedError

    def is_unsigned_ping(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Tell whether this is a platform's unsigned test ping that only wants a 200."""
        return False

    def describe(self, headers: Mapping[str, str], body: bytes) -> Envelope:
        """Name the delivery (topic, dedupe key, API version, order id); InvalidDelivery if unusable."""
        raise NotImplementedError

    def parse(self, topic: str, headers: Mapping[str, str], payload: dict[str, Any]) -> list[Event]:
        """Turn a stored delivery into events."""
        raise NotImplementedError

    def setup_steps(self, url: str) -> list[str]:
        """Return the steps that connect the platform to `url`, for the channel's setup page."""
        return []


# ---------------------------------------------------------------- helpers shared by the adapters


def header(headers: Mapping[str, str], *names: str) -> str | None:
    """Return the first of `names` present (headers are stored with lower-case names)."""
    for name in names:
        value = headers.get(name.lower())
        if value:
            return value
    return None


def load_json(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body; InvalidDelivery otherwise."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidDelivery(str(_l("The body is not valid JSON.")), 400) from error
    if not isinstance(payload, dict):
        raise InvalidDelivery(str(_l("The body must be a JSON object.")), 400)
    return payload


def body_digest(body: bytes) -> str:
    """Return a short digest of a body, for dedupe keys of platforms without a delivery id."""
    return hashlib.sha256(body).hexdigest()[:40]


def amount_of(
    value: Any, currency: str, what: str, *, negative: bool = False, rounding: str | None = None
) -> int | None:
    """Read a platform's amount ("199.00", 199, 199.5) as minor units of `currency` (None when absent).

    `saas.money.parse` reads it; an amount it refuses makes the delivery invalid (4xx, kept in the inbox)
    rather than an order with a wrong or missing price. A JSON number arrives as a float: its shortest
    text ("199.5") is what the platform wrote.
    """
    if value is None or value == "":
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        return money.parse(value, currency, negative=negative, rounding=rounding)
    except money.MoneyError as error:
        raise InvalidDelivery(f"{what}: {error}") from error


def parse_time(value: Any) -> dt.datetime | None:
    """Read an ISO 8601 time or unix seconds as aware UTC; None when absent or unreadable."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def text(value: Any, limit: int = 200) -> str:
    """Return a value as a trimmed string of at most `limit` characters ("" for None)."""
    return "" if value is None else str(value).strip()[:limit]


def quantity(value: Any) -> int:
    """Read a line quantity; InvalidDelivery unless it is a whole number from 1."""
    try:
        number = int(value)
    except (TypeError, ValueError) as error:
        raise InvalidDelivery(str(_l("A line has no valid quantity."))) from error
    if number < 1:
        raise InvalidDelivery(str(_l("A line has no valid quantity.")))
    return number
