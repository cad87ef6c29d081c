"""The outbox: every mail goes through `send_mail`; SMTP in production, `.eml` files by default."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from flask import current_app

from saas import jobs
from saas.ids import new_id


def send_mail(to: list[str] | str, subject: str, text: str, html: str | None = None) -> None:
    """Queue a mail for delivery on the `mail` queue (after the caller's commit)."""
    recipients = [to] if isinstance(to, str) else list(to)
    if not recipients:
        return
    if "\n" in subject or "\r" in subject:
        raise ValueError("a mail subject is one line")
    message = {"to": recipients, "subject": subject, "text": text, "html": html}
    jobs.enqueue("saas.mail.deliver_mail", message, queue="mail", retries=3)


def build_message(message: dict[str, Any], sender: str) -> EmailMessage:
    """Build the MIME message: plain text, with an HTML alternative when given."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(message["to"])
    mail["Subject"] = message["subject"]
    mail["Message-ID"] = make_msgid(domain="quanyi.local")
    mail.set_content(message["text"])
    if message.get("html"):
        mail.add_alternative(message["html"], subtype="html")
    return mail


def deliver_mail(message: dict[str, Any]) -> None:
    """Job: deliver one mail through SMTP if `SMTP_URL` is set, else into the mail folder."""
    config = current_app.config
    mail = build_message(message, config["MAIL_FROM"])
    if config.get("SMTP_URL"):
        send_over_smtp(config["SMTP_URL"], mail)
    else:
        write_to_folder(Path(config["MAIL_DIR"]), mail)


def send_over_smtp(url: str, mail: EmailMessage) -> None:
    """Send through `smtp://user:pass@host:port` (STARTTLS with `?starttls=1`) or `smtps://…`."""
    parts = urlparse(url)
    host = parts.hostname or "localhost"
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, parts.port or 465, timeout=30)
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=30)
    with client:
        if "starttls=1" in (parts.query or ""):
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(mail)


def write_to_folder(folder: Path, mail: EmailMessage) -> Path:
    """Write the mail as an `.eml` file a developer can open."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{new_id()}.eml"
    path.write_bytes(bytes(mail))
    return path
