"""The outbox: .eml files by default, real SMTP when SMTP_URL is set."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from saas.outbox import queue_platform_mail
from tests.factories import Outbox


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_mail_is_written_to_the_mail_folder_by_default(app: Flask, outbox: Outbox) -> None:
    queue_platform_mail("buyer@x.test", "你的权益已到账", "正文 body", kind="test")
    (mail,) = outbox.to("buyer@x.test")
    assert mail["Subject"] == "你的权益已到账"
    assert "正文 body" in outbox.body(mail)


def test_mail_goes_through_a_real_smtp_server(app: Flask, smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    queue_platform_mail("a@x.test", "Reset your password", "Open the link", kind="test")
    (envelope,) = inbox.received
    assert envelope.rcpt_tos == ["a@x.test"]
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "Reset your password"
    assert message["Message-ID"].startswith("<platform.0.")


def test_a_subject_cannot_smuggle_headers(app: Flask) -> None:
    with pytest.raises(ValueError):
        queue_platform_mail("a@x.test", "hi\nBcc: everyone@x.test", "body", kind="test")
