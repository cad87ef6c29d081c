"""Configuration: secrets kept in instance/ in development, required from the environment in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from quanyi.app import create_app
from saas.config import ConfigError


def test_production_refuses_to_start_without_secrets_and_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECRET_KEY", "QUANYI_MASTER_KEY", "DATABASE_URL", "REDIS_URL", "SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/quanyi")
    with pytest.raises(ConfigError) as error:
        create_app({"ENV_NAME": "production"})
    message = str(error.value)
    assert "SECRET_KEY" in message and "QUANYI_MASTER_KEY" in message and "REDIS_URL" in message
    assert "DATABASE_URL" not in message


def test_development_generates_its_secrets_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANYI_INSTANCE_PATH", str(tmp_path))
    for name in ("SECRET_KEY", "QUANYI_MASTER_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    first = create_app({"ENV_NAME": "development"})
    second = create_app({"ENV_NAME": "development"})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["QUANYI_MASTER_KEY"] == second.config["QUANYI_MASTER_KEY"]
    assert first.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert first.config["JOBS_MODE"] == "thread"
    assert (tmp_path / "secret_key.txt").stat().st_mode & 0o077 == 0


def test_postgres_urls_use_psycopg_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANYI_INSTANCE_PATH", str(tmp_path))
    app = create_app({"ENV_NAME": "development", "DATABASE_URL": "postgres://u@h/db"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError):
        create_app({"ENV_NAME": "staging-ish"})
