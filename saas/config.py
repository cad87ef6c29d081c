"""Configuration classes: development (embedded defaults), testing and production."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

from saas.links import BaseUrlInvalid, normalise_base_url

INSTANCE_SECRETS = ("SECRET_KEY", "QUANYI_MASTER_KEY")
REQUIRED_IN_PRODUCTION = (
    "SECRET_KEY",
    "QUANYI_MASTER_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "PUBLIC_BASE_URL",
)


class ConfigError(RuntimeError):
    """Raised when the app cannot start with the configuration it was given."""


class BaseConfig:
    """Settings shared by every mode; values come from the environment where one is set."""

    ENV_NAME = "base"
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    MAX_CONTENT_LENGTH = 256 * 1024 * 1024
    BABEL_DEFAULT_LOCALE = "zh_CN"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    LANGUAGES = ("zh_CN", "en")
    MAIL_FROM = "Quanyi <no-reply@quanyi.local>"
    # "inline": run each job synchronously at enqueue (tests); "thread": a background thread in this
    # process (embedded default); "rq": Redis + `quanyi worker` (production).
    JOBS_MODE = "thread"
    PERIODIC_JOBS_ENABLED = True
    PASSWORD_RESET_MAX_AGE = 3600
    INVITATION_MAX_AGE = 7 * 24 * 3600
    API_PAGE_SIZE = 50
    API_RATE_LIMIT = "600 per minute"  # per API key
    LOGIN_RATE_LIMIT = "20 per minute"  # per IP address
    PASSWORD_RESET_RATE_LIMIT = "5 per minute"  # per IP address
    CUSTOMER_PAGE_RATE_LIMIT = "60 per minute"  # customer pages (/my/...) viewed, per IP address
    CUSTOMER_ACTION_RATE_LIMIT = "10 per minute"  # reveal, redeem, code, cancel on /my/..., per IP and action
    # Rejected inbound webhook deliveries (bad signature, malformed, …) per channel. Accepted ones never
    # count: refusing a genuine delivery delays it (Shopify retries for hours) or loses it (WooCommerce
    # never retries).
    WEBHOOK_REJECTION_LIMIT = "120 per minute"
    INBOX_DRAIN_LANES = 4  # threads a drain of a tenant's webhook inbox uses on PostgreSQL
    WEBHOOK_TARGET_SECONDS = 5  # how long a server process trusts what it read of a channel (status, secrets)
    OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = False  # True lets endpoints point into private networks (SSRF!)
    # Upload caps per kind (bytes); a larger file is refused with 413 and nothing changes.
    CARD_KEY_UPLOAD_MAX_BYTES = 64 * 1024 * 1024  # ≈ 1M keys as text
    ORDER_CSV_MAX_BYTES = 16 * 1024 * 1024
    SETTLEMENT_CSV_MAX_BYTES = 32 * 1024 * 1024
    REDEMPTION_REPORT_MAX_BYTES = 16 * 1024 * 1024
    LOGIN_LOCKOUT_FAILURES = 5  # attempts (passwords or two-factor codes) per address before it locks
    LOGIN_LOCKOUT_MINUTES = 15
    # Reverse proxies in front of the app that append to X-Forwarded-For/-Proto; 0 trusts no such header.
    TRUSTED_PROXY_COUNT = 0
    # Every absolute link (mail, SMS, reset, invitation, setup pages) starts with this; never a header.
    PUBLIC_BASE_URL = "http://127.0.0.1:5000"
    SMS_URL = ""  # aliyun://ID:SECRET@?sign_name=… or tencent://ID:SECRET@?sdk_app_id=…; unset: instance/sms/
    SMS_CODE_PER_MINUTE = 1  # verification codes per phone number
    SMS_CODE_PER_DAY = 10
    # Portal sign-in codes per IP address (many phones share one address behind a carrier's NAT).
    PORTAL_CODE_PER_IP_MINUTE = 3
    PORTAL_CODE_PER_IP_DAY = 20
    OUTBOX_GRACE_SECONDS = 120  # a message still queued this long after it was written is swept and sent
    OUTBOX_CLAIM_SECONDS = 300  # a sender that claimed a message and died lets it go after this long
    OUTBOX_MAX_ATTEMPTS = 6  # then the message is failed (shown on its page, with a resend)
    JOB_LEASE_SECONDS = 120  # a job run whose heartbeat is older than this is dead: marked failed


class DevelopmentConfig(BaseConfig):
    """Embedded defaults: SQLite in `instance/`, in-process jobs, mail written to `instance/mail/`."""

    ENV_NAME = "development"


class TestingConfig(BaseConfig):
    """Fast, isolated, synchronous: each test app gets its own database."""

    ENV_NAME = "testing"
    TESTING = True
    WTF_CSRF_ENABLED = False
    JOBS_MODE = "inline"
    PERIODIC_JOBS_ENABLED = False
    SECRET_KEY = "test-secret-key"
    # 32 zero-free bytes, base64: a fixed master key so tests are reproducible.
    QUANYI_MASTER_KEY = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmchISE="  # b"test-master-key-32-bytes-long!!!"
    SERVER_NAME = "quanyi.test"
    PUBLIC_BASE_URL = "http://quanyi.test"
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # fast in tests only; production uses scrypt
    # The specification reads in English: mails, jobs and errors outside a request default to it in tests;
    # tests/saas/test_i18n.py proves the Chinese default of the other modes and the Chinese pages.
    BABEL_DEFAULT_LOCALE = "en"
    OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = True  # the outbound tests post to a server on 127.0.0.1


class ProductionConfig(BaseConfig):
    """PostgreSQL, Redis workers and SMTP; every secret comes from the environment."""

    ENV_NAME = "production"
    JOBS_MODE = "rq"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    PUBLIC_BASE_URL = ""  # required: the app refuses to start without it


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(mode: str, instance_path: Path, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Return the settings for `mode`: class defaults, then the environment, then `overrides`."""
    if mode not in CONFIGS:
        raise ConfigError(f"QUANYI_ENV must be one of {', '.join(CONFIGS)}, not {mode!r}")
    cls = CONFIGS[mode]
    settings = {key: getattr(cls, key) for key in dir(cls) if key.isupper()}
    for key in (
        "SECRET_KEY",
        "QUANYI_MASTER_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "SMTP_URL",
        "SMS_URL",
        "MAIL_FROM",
        "PUBLIC_BASE_URL",
    ):
        if os.environ.get(key):
            settings[key] = os.environ[key]
    if os.environ.get("QUANYI_MASTER_KEY_OLD"):
        settings["QUANYI_MASTER_KEY_OLD"] = os.environ["QUANYI_MASTER_KEY_OLD"]
    if os.environ.get("TRUSTED_PROXY_COUNT"):
        settings["TRUSTED_PROXY_COUNT"] = _count_setting(
            "TRUSTED_PROXY_COUNT", os.environ["TRUSTED_PROXY_COUNT"]
        )
    settings.update(overrides or {})
    if mode == "production":
        missing = [key for key in REQUIRED_IN_PRODUCTION if not settings.get(key)]
        if missing:
            raise ConfigError(
                "Quanyi refuses to start in production without these environment variables: "
                + ", ".join(missing)
            )
    else:
        for key in INSTANCE_SECRETS:
            if not settings.get(key):
                settings[key] = _instance_secret(instance_path, key)
    if settings.get("PUBLIC_BASE_URL"):
        try:
            settings["PUBLIC_BASE_URL"] = normalise_base_url(settings["PUBLIC_BASE_URL"])
        except BaseUrlInvalid as error:
            raise ConfigError(str(error)) from error
    if not settings.get("DATABASE_URL"):
        settings["DATABASE_URL"] = f"sqlite:///{instance_path / 'quanyi.sqlite3'}"
    settings["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(settings["DATABASE_URL"])
    if settings.get("REDIS_URL") and mode == "development" and "JOBS_MODE" not in (overrides or {}):
        settings["JOBS_MODE"] = "rq"
    settings.setdefault("MAIL_DIR", str(instance_path / "mail"))
    settings.setdefault("FILES_DIR", str(instance_path / "files"))
    return settings


def _count_setting(name: str, raw: str) -> int:
    """Read a whole number of 0 or more from the environment; ConfigError otherwise."""
    if not raw.strip().isdigit():
        raise ConfigError(f"{name} must be a whole number of 0 or more, not {raw!r}")
    return int(raw)


def sqlalchemy_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _instance_secret(instance_path: Path, name: str) -> str:
    """Read a development secret kept in `instance/`, generating it on first use."""
    path = instance_path / f"{name.lower()}.txt"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)

    value = base64.b64encode(secrets.token_bytes(32)).decode()
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value
