"""The mail transport of the outbox: SMTP in production, `.eml` files in the mail folder by default.

Nothing sends mail directly: a mail is an outbox record (`saas.outbox`), and this module only carries a
composed message to the provider, one SMTP connection per batch.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlparse

from flask import Flask, current_app

from saas import outbox
from saas.ids import new_id


def build_message(message: outbox.Outgoing, sender: str) -> EmailMessage:
    """Build the MIME message: plain text, with an HTML alternative when given; the record's Message-ID."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(message.to)
    mail["Subject"] = message.subject
    mail["Message-ID"] = message.message_id
    for name, value in message.headers.items():
        mail[name] = value
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


class MailTransport:
    """Send outbox mails through `SMTP_URL` when set, else into `MAIL_DIR`."""

    @contextmanager
    def session(self) -> Iterator[Callable[[outbox.Outgoing], None]]:
        """Open one SMTP connection (or the folder) for a batch of mails."""
        config = current_app.config
        sender = config["MAIL_FROM"]
        if not config.get("SMTP_URL"):
            folder = Path(config["MAIL_DIR"])

            def to_folder(message: outbox.Outgoing) -> None:
                write_to_folder(folder, build_message(message, sender))

            yield to_folder
            return
        with smtp_client(config["SMTP_URL"]) as client:
            yield lambda message: _send(client, build_message(message, sender))


def _send(client: smtplib.SMTP, mail: EmailMessage) -> None:
    client.send_message(mail)


@contextmanager
def smtp_client(url: str) -> Iterator[smtplib.SMTP]:
    """Connect to `smtp://user:pass@host:port` (STARTTLS with `?starttls=1`) or `smtps://…`, logged in."""
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
        yield client


def write_to_folder(folder: Path, mail: EmailMessage) -> Path:
    """Write the mail as an `.eml` file a developer can open."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{new_id()}.eml"
    path.write_bytes(bytes(mail))
    return path


def init_app(app: Flask) -> None:
    """Register mail as the outbox's `mail` transport."""
    outbox.register_transport("mail", MailTransport())
