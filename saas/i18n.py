"""Languages: Simplified Chinese and English, chosen by user setting, then the browser."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, g, has_request_context, request
from flask_login import current_user

from saas.extensions import babel

TRANSLATIONS_DIR = Path(__file__).parent / "translations"


def select_locale() -> str:
    """Pick the user's own choice, else the best match for the browser, else Chinese."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # jobs and CLI: the default language
        return str(current_app.config["BABEL_DEFAULT_LOCALE"])
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
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def init_app(app: Flask) -> None:
    """Bind Flask-Babel with our selector and translation folder."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    babel.init_app(app, locale_selector=select_locale)
    from flask_babel import get_locale

    app.jinja_env.globals["get_locale"] = get_locale
