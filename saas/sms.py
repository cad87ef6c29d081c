"""The SMS transport of the outbox: Aliyun or Tencent Cloud through `SMS_URL`, JSON files in `instance/sms/`.

Nothing sends an SMS directly: an SMS is an outbox record (`saas.outbox`) whose transport is `sms`; this
module composes its text and parameters, picks the channel for a customer, and carries a composed message to
the provider. Both providers' signed HTTP APIs are built here with the standard library:

- `aliyun://ACCESS_KEY_ID:ACCESS_KEY_SECRET@?sign_name=…` — Dysmsapi 2017-05-25 `SendSms`, RPC signature
  (HMAC-SHA1 over the sorted, percent-encoded query, key `secret + "&"`);
- `tencent://SECRET_ID:SECRET_KEY@?sdk_app_id=…&sign_name=…` — SMS 2021-01-11 `SendSms`, TC3-HMAC-SHA256.

Either takes `endpoint=http://host:port` to point at a stand-in server (the tests), and `region=…`.
Unset, every message is written to `SMS_DIR` as one JSON file (to, text, kind, template, params); in
production an unset `SMS_URL` means no SMS at all, and tenants keep mail only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, quote, unquote, urlsplit
from urllib.request import Request, urlopen

from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from saas import outbox, shortlinks
from saas.ids import new_id
from saas.phones import national_number, phone_or_none

# Each SMS kind and the variables its template gets, in order (Tencent's templates are positional: {1}, {2}…).
SMS_KINDS: dict[str, tuple[str, ...]] = {
    "delivery": ("shop", "order", "link"),
    "backorder_filled": ("shop", "order", "link"),
    "renewal_reminder": ("shop", "plan", "date", "link"),
    "verification_code": ("code", "minutes"),
    "cancellation_receipt": ("shop", "plan", "date"),
    "family_shared": ("shop", "plan", "link"),
}
SMS_KIND_LABELS = {
    "delivery": _l("Delivery (short link to the rights)"),
    "backorder_filled": _l("Backorder filled"),
    "renewal_reminder": _l("Renewal reminder"),
    "verification_code": _l("Verification code"),
    "cancellation_receipt": _l("Cancellation receipt"),
    "family_shared": _l("Family sharing (a plan shared with you)"),
}
CHANNEL_CHOICES = ("mail", "sms")  # what a customer with both an email and a phone gets
REQUEST_TIMEOUT_SECONDS = 15


class SmsRefused(RuntimeError):
    """The provider answered but did not accept the message (its code and message are the error)."""


class SmsUrlInvalid(ValueError):
    """SMS_URL names no provider this module knows, or lacks its keys."""


# ---------------------------------------------------------------- the tenant's settings


@dataclass(frozen=True)
class SmsSettings:
    """A tenant's SMS settings: its 签名, the template code of each kind, and the channel it prefers."""

    sign_name: str
    templates: dict[str, str]
    prefer: str  # one of CHANNEL_CHOICES

    @classmethod
    def of(cls, tenant_settings: dict[str, Any] | None) -> SmsSettings:
        """Read the settings from a tenant's `settings` dict (missing parts read as empty)."""
        raw = (tenant_settings or {}).get("sms") or {}
        templates = raw.get("templates") or {}
        return cls(
            str(raw.get("sign_name") or ""),
            {kind: str(templates.get(kind) or "") for kind in SMS_KINDS},
            str(raw.get("prefer")) if raw.get("prefer") in CHANNEL_CHOICES else "mail",
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as stored under `tenant.settings["sms"]`."""
        return {"sign_name": self.sign_name, "templates": dict(self.templates), "prefer": self.prefer}


def sms_configured() -> bool:
    """Return whether this installation sends SMS: a provider URL, or the file outbox outside production."""
    return bool(current_app.config.get("SMS_URL")) or current_app.config.get("ENV_NAME") != "production"


def sms_available(tenant_settings: dict[str, Any] | None, kind: str) -> bool:
    """Return whether a tenant can send this kind by SMS (a real provider needs the 签名 and template)."""
    if not current_app.config.get("SMS_URL"):
        return sms_configured()
    settings = SmsSettings.of(tenant_settings)
    return bool(settings.sign_name or _url_sign_name()) and bool(settings.templates.get(kind))


def channel_for(
    tenant_settings: dict[str, Any] | None, kind: str, email: str | None, phone: str | None
) -> tuple[str, str] | None:
    """Return (transport, address) for a customer: phone only → SMS, email only → mail, both → the choice.

    None when there is nowhere to send (no email, and no valid phone or no SMS for this tenant).
    """
    number = phone_or_none(phone)
    by_sms = number is not None and sms_available(tenant_settings, kind)
    if email and by_sms and SmsSettings.of(tenant_settings).prefer == "sms":
        return "sms", str(number)
    if email:
        return "mail", email
    if by_sms:
        return "sms", str(number)
    return None


# ---------------------------------------------------------------- composing


def sms_text(kind: str, params: dict[str, str]) -> str:
    """Return the text of an SMS kind in the current locale (what the file outbox shows)."""
    texts = {
        "delivery": _("%(shop)s: your rights for order %(order)s: %(link)s"),
        "backorder_filled": _("%(shop)s: the rest of order %(order)s is ready: %(link)s"),
        "renewal_reminder": _("%(shop)s: %(plan)s renews on %(date)s. Manage: %(link)s"),
        "verification_code": _("Your code is %(code)s, valid %(minutes)s minutes. Do not share it."),
        "cancellation_receipt": _("%(shop)s: %(plan)s is cancelled, effective %(date)s."),
        "family_shared": _("%(shop)s: %(plan)s is shared with you. Sign in: %(link)s"),
    }
    values = {name: params.get(name, "") for name in SMS_KINDS[kind]}
    return texts[kind] % values


def outgoing_sms(
    tenant_settings: dict[str, Any] | None,
    locale: str,
    kind: str,
    phone: str,
    params: dict[str, str],
    message_id: str,
) -> outbox.Outgoing:
    """Compose an SMS of one kind for the `sms` transport, with the tenant's 签名 and template code."""
    if kind not in SMS_KINDS:
        raise ValueError(f"unknown SMS kind {kind!r}")
    settings = SmsSettings.of(tenant_settings)
    values = {name: str(params.get(name, "")) for name in SMS_KINDS[kind]}
    with force_locale(locale or "zh_CN"):
        text = sms_text(kind, values)
    parts = outbox.SmsParts(kind, settings.sign_name or _url_sign_name(), settings.templates[kind], values)
    return outbox.Outgoing("sms", [phone], "", text, message_id, sms=parts)


# ---------------------------------------------------------------- the transport


def write_sms_file(folder: Path, message: outbox.Outgoing) -> Path:
    """Write one SMS as a JSON file a developer can open (to, text, kind, template, params)."""
    parts = message.sms or outbox.SmsParts("", "", "", {})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{new_id()}.json"
    record = {
        "to": message.to[0] if message.to else "",
        "text": message.text,
        "kind": parts.kind,
        "template": parts.template,
        "params": parts.params,
        "sign_name": parts.sign_name,
        "message_id": message.message_id,
    }
    path.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


@dataclass(frozen=True)
class ProviderUrl:
    """SMS_URL read: the provider, its key pair and its query options."""

    scheme: str
    key_id: str
    secret: str
    options: dict[str, str]


def parse_sms_url(url: str) -> ProviderUrl:
    """Read `aliyun://ID:SECRET@?…` or `tencent://ID:SECRET@?…`; SmsUrlInvalid otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("aliyun", "tencent"):
        raise SmsUrlInvalid("SMS_URL must start with aliyun:// or tencent://")
    if not parts.username or not parts.password:
        raise SmsUrlInvalid("SMS_URL needs the key id and secret before the @")
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if parts.scheme == "tencent" and not options.get("sdk_app_id"):
        raise SmsUrlInvalid("a tencent:// SMS_URL needs sdk_app_id")
    return ProviderUrl(parts.scheme, unquote(parts.username), unquote(parts.password), options)


def _url_sign_name() -> str:
    url = current_app.config.get("SMS_URL") or ""
    return parse_sms_url(url).options.get("sign_name", "") if url else ""


def aliyun_percent_encode(value: str) -> str:
    """Percent-encode as Aliyun's RPC signature wants (RFC 3986: only A-Z a-z 0-9 - _ . ~ stay)."""
    return quote(value, safe="-_.~")


def aliyun_signature(method: str, params: dict[str, str], secret: str) -> str:
    """Return Aliyun's RPC signature: base64 HMAC-SHA1 of `METHOD&%2F&encoded(sorted query)`."""
    canonical = "&".join(
        f"{aliyun_percent_encode(key)}={aliyun_percent_encode(params[key])}" for key in sorted(params)
    )
    to_sign = f"{method}&{aliyun_percent_encode('/')}&{aliyun_percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _http(request: Request) -> dict[str, Any]:
    """Send a request and return its JSON answer (an HTTP error's body is read as the answer too)."""
    try:
        with urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # the endpoint is checked http(s)
            body = response.read()
    except HTTPError as error:
        body = error.read()
        if not body:
            raise SmsRefused(f"HTTP {error.code}") from error
    try:
        answer: Any = json.loads(body.decode("utf-8"))
    except ValueError as error:
        raise SmsRefused(f"not JSON: {body[:200]!r}") from error
    if not isinstance(answer, dict):
        raise SmsRefused("unexpected answer")
    return answer


def _endpoint(provider: ProviderUrl, default: str) -> str:
    endpoint = provider.options.get("endpoint") or default
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise SmsUrlInvalid("the SMS endpoint must be an http(s) address")
    return endpoint.rstrip("/")


def send_aliyun(provider: ProviderUrl, message: outbox.Outgoing, now: dt.datetime | None = None) -> str:
    """Send one SMS through Aliyun Dysmsapi `SendSms`; return its BizId, SmsRefused when not accepted."""
    parts = message.sms
    if parts is None:
        raise ValueError("not an SMS")
    moment = now or dt.datetime.now(dt.UTC)
    params = {
        "AccessKeyId": provider.key_id,
        "Action": "SendSms",
        "Format": "JSON",
        "PhoneNumbers": national_number(message.to[0]),
        "RegionId": provider.options.get("region", "cn-hangzhou"),
        "SignName": parts.sign_name,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": uuid.uuid4().hex,
        "SignatureVersion": "1.0",
        "TemplateCode": parts.template,
        "TemplateParam": json.dumps(parts.params, ensure_ascii=False, separators=(",", ":")),
        "Timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
    }
    signature = aliyun_signature("GET", params, provider.secret)
    query = "&".join(
        f"{aliyun_percent_encode(k)}={aliyun_percent_encode(v)}"
        for k, v in [("Signature", signature), *sorted(params.items())]
    )
    endpoint = _endpoint(provider, "https://dysmsapi.aliyuncs.com")
    answer = _http(Request(f"{endpoint}/?{query}", method="GET"))
    if answer.get("Code") != "OK":
        raise SmsRefused(f"aliyun {answer.get('Code')}: {answer.get('Message')}")
    return str(answer.get("BizId", ""))


def tencent_authorization(secret_id: str, secret_key: str, host: str, payload: bytes, timestamp: int) -> str:
    """Return Tencent Cloud's TC3-HMAC-SHA256 `Authorization` header for a JSON POST to `/` of `sms`."""
    date = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:application/json; charset=utf-8\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    scope = f"{date}/sms/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"

    def sign(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()

    signing = sign(sign(sign(f"TC3{secret_key}".encode(), date), "sms"), "tc3_request")
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


def send_tencent(provider: ProviderUrl, message: outbox.Outgoing, now: dt.datetime | None = None) -> str:
    """Send one SMS through Tencent Cloud SMS `SendSms`; return its serial number, SmsRefused otherwise."""
    parts = message.sms
    if parts is None:
        raise ValueError("not an SMS")
    timestamp = int((now or dt.datetime.now(dt.UTC)).timestamp())
    payload = json.dumps(
        {
            "PhoneNumberSet": [message.to[0]],
            "SmsSdkAppId": provider.options["sdk_app_id"],
            "SignName": parts.sign_name,
            "TemplateId": parts.template,
            "TemplateParamSet": [parts.params[name] for name in SMS_KINDS.get(parts.kind, ())],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    endpoint = _endpoint(provider, "https://sms.tencentcloudapi.com")
    host = urlsplit(endpoint).netloc
    headers = {
        "Authorization": tencent_authorization(provider.key_id, provider.secret, host, payload, timestamp),
        "Content-Type": "application/json; charset=utf-8",
        "Host": host,
        "X-TC-Action": "SendSms",
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": "2021-01-11",
        "X-TC-Region": provider.options.get("region", "ap-guangzhou"),
    }
    answer = _http(Request(f"{endpoint}/", data=payload, headers=headers, method="POST"))
    response = answer.get("Response") or {}
    if response.get("Error"):
        error = response["Error"]
        raise SmsRefused(f"tencent {error.get('Code')}: {error.get('Message')}")
    statuses = response.get("SendStatusSet") or [{}]
    if statuses[0].get("Code") != "Ok":
        raise SmsRefused(f"tencent {statuses[0].get('Code')}: {statuses[0].get('Message')}")
    return str(statuses[0].get("SerialNo", ""))


class SmsTransport:
    """Send outbox SMS through `SMS_URL` when set, else into `SMS_DIR`."""

    @contextmanager
    def session(self) -> Iterator[Callable[[outbox.Outgoing], None]]:
        """Open the provider (or the folder) for a batch of SMS."""
        config = current_app.config
        url = config.get("SMS_URL") or ""
        if not url:
            if config.get("ENV_NAME") == "production":
                raise SmsUrlInvalid("SMS_URL is not set: this installation sends no SMS")
            folder = Path(config["SMS_DIR"])

            def to_folder(message: outbox.Outgoing) -> None:
                write_sms_file(folder, message)

            yield to_folder
            return
        provider = parse_sms_url(url)
        send = send_aliyun if provider.scheme == "aliyun" else send_tencent

        def to_provider(message: outbox.Outgoing) -> None:
            send(provider, message)

        yield to_provider


def init_app(app: Flask) -> None:
    """Register SMS as the outbox's `sms` transport and the short links' `/m/<code>`."""
    app.config.setdefault("SMS_DIR", str(Path(app.instance_path) / "sms"))
    if app.config.get("SMS_URL"):
        parse_sms_url(app.config["SMS_URL"])  # a wrong SMS_URL stops the start, not the first delivery
    outbox.register_transport("sms", SmsTransport())
    app.register_blueprint(shortlinks.bp)
