"""Languages: Simplified Chinese and English.

Who reads decides: in a page, the signed-in user's own choice, then `?lang=`, then the browser, then the
shop's (tenant's) language; in the API, the tenant's language only (a client's headers say nothing about
who reads its error messages); in jobs and the CLI, the bound tenant's language. Chinese when nothing
says otherwise. The tenant is known to `tenants`, which registers how to find its language here
(`set_tenant_locale`), so this inner package imports nothing outward.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask_babel import get_locale, refresh
from flask_login import current_user

from saas.extensions import babel

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
TENANT_LOCALE = "quanyi.tenant_locale"

TenantLocale = Callable[[], "str | None"]


def select_locale() -> str:
    """Pick the language of whoever reads what this request or job writes (see the module docstring)."""
    languages = current_app.config["LANGUAGES"]
    default = str(current_app.config["BABEL_DEFAULT_LOCALE"])
    if not has_request_context() or g.get("locale_follows_tenant"):
        return _tenant_locale(languages) or default
    if not g.get("_selecting_locale"):  # loading the user may itself translate a message
        g._selecting_locale = True
        try:
            if current_user and current_user.is_authenticated and current_user.locale in languages:
                return str(current_user.locale)
        finally:
            g._selecting_locale = False
    forced = request.args.get("lang")
    if forced in languages:
        return str(forced)
    best = request.accept_languages.best_match(["zh_CN", "zh", "en"])
    if best == "en":
        return "en"
    if best in ("zh_CN", "zh"):
        return "zh_CN"
    return _tenant_locale(languages) or default


def _tenant_locale(languages: tuple[str, ...]) -> str | None:
    source: TenantLocale | None = current_app.extensions.get(TENANT_LOCALE)
    locale = source() if source is not None else None
    return locale if locale in languages else None


def set_tenant_locale(app: Flask, source: TenantLocale) -> None:
    """Tell the selector how to find the bound tenant's language (None when no tenant is bound)."""
    app.extensions[TENANT_LOCALE] = source


def follow_tenant_locale() -> None:
    """Make this request speak its tenant's language whatever its headers say (the API)."""
    g.locale_follows_tenant = True
    reselect_locale()


def reselect_locale() -> None:
    """Forget the language chosen so far in this context: the tenant bound to it changed."""
    if has_app_context():
        refresh()  # keeps a `force_locale` block's language


def init_app(app: Flask) -> None:
    """Bind Flask-Babel with our selector and translation folder."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    babel.init_app(app, locale_selector=select_locale)

    app.jinja_env.globals["get_locale"] = get_locale
