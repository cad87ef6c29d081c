"""The channel adapter interface and the events adapters turn deliveries into.

An adapter knows one platform: how it signs (verify), how to name a delivery so repeats are recognised
(describe), and what a delivery means for us (parse → events). It never touches the database: the inbox
(`integrations.inbound.inbox`) applies the events through the orders layer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l

from saas import bounds, money


class InvalidCredentials(ValueError):
    """Credentials a platform's channel cannot work with (a missing field, a PEM that is not a key, …)."""


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
    # Platforms configured by a credentials object (keys, ids) instead of one signing secret: the object is
    # sealed as the channel's secret (JSON), so it rotates with an overlap like one.
    credential_fields: ClassVar[tuple[str, ...]] = ()
    default_fee_bp: ClassVar[int] = 0  # the platform's usual fee, the default of a new channel

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

    def describe_with(self, headers: Mapping[str, str], body: bytes, secrets: list[bytes]) -> Envelope:
        """Name a verified delivery, opening what the channel's secrets open (an encrypted resource)."""
        return self.describe(headers, body)

    def contents(self, body: bytes, secrets: list[bytes]) -> dict[str, Any]:
        """Return a stored body as the payload `parse` reads (decrypted where the platform encrypts)."""
        return load_json(body)

    def reply(self, status: int, answer: dict[str, Any]) -> tuple[int, str, bytes] | None:
        """Return the answer in the platform's own form (status, content type, body); None for our JSON."""
        return None

    def check_credentials(self, credentials: dict[str, Any]) -> dict[str, Any]:
        """Return credentials cleaned for storing; InvalidCredentials when they cannot work."""
        raise InvalidCredentials(str(_l("This kind of channel takes a secret, not credentials.")))

    def credentials_hint(self, credentials: dict[str, Any]) -> str:
        """Return what the back office may show of stored credentials (an id, never a key)."""
        return ""

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
        payload = bounds.load_json(body)
    except bounds.JsonRefused as refused:  # not JSON, nested too deep, or a number no column holds
        raise InvalidDelivery(refused.message, 400) from refused
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


BEIJING = ZoneInfo("Asia/Shanghai")


def parse_beijing_time(value: Any) -> dt.datetime | None:
    """Read a platform's local "2024-05-01 12:00:00" (Beijing time, as Alipay and Youzan print) as UTC."""
    if value in (None, ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    local = moment.replace(tzinfo=BEIJING) if moment.tzinfo is None else moment
    return local.astimezone(dt.UTC)


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


def attached_line(attachment: Any, total: int | None, title: str = "") -> ExternalLine:
    """Read the plan a payment names in its pass-through field (WeChat `attach`, Alipay `passback_params`).

    The merchant's checkout puts there a SKU (`VIP-MONTH`), or JSON such as `{"sku": "VIP-MONTH",
    "quantity": 2}` or `{"plan_id": "123"}`. A payment that names nothing gives a line without refs: it can
    only pay an order created first through the API.
    """
    raw = text(attachment, 500)
    details: dict[str, Any] = {}
    if raw.startswith("{"):
        try:
            found = bounds.load_json(raw)
        except ValueError:
            found = None
        details = found if isinstance(found, dict) else {}
    elif raw:
        details = {"sku": raw}
    refs = [(kind, text(details.get(key), 200)) for key, kind in (("sku", "sku"), ("plan_id", "plan"))]
    refs = [(kind, value) for kind, value in refs if value]
    wanted = str(details.get("quantity", 1))
    count = int(wanted) if wanted.isdigit() and 1 <= int(wanted) <= 10_000 else 1
    unit = total // count if total is not None else None
    return ExternalLine(refs, count, unit, title)
