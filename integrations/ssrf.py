"""Keep outbound webhooks out of our own network (SSRF): only http(s) URLs to public addresses.

An endpoint URL is checked when it is saved and again right before every send, because what a host name
resolves to can change after it was saved. The check resolves the name with `socket.getaddrinfo` and
refuses the URL if any address is private, loopback, link-local, multicast, reserved, unspecified or
otherwise not globally routable (an IPv4 address mapped into IPv6 is judged as the IPv4 address). A
third net catches a name that changes between our check and the connection: the connection itself
refuses a peer address that is not public (`PublicOnlyHTTPHandler`, `PublicOnlyHTTPSHandler`).
`OUTBOUND_WEBHOOKS_ALLOW_PRIVATE` turns the address checks off (tests post to a local server).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.request
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(ValueError):
    """A URL that outbound webhooks must not be sent to; `reason` names why, for the message shown."""

    def __init__(self, reason: str, host: str = "") -> None:
        super().__init__(f"{reason}: {host}" if host else reason)
        self.reason = reason
        self.host = host


def is_public(address: IPAddress) -> bool:
    """Tell whether an address is on the public internet (not ours, not a special range)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    return address.is_global and not special


def resolve(host: str, port: int) -> set[IPAddress]:
    """Return every address a host name resolves to (a literal address resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise UnsafeTarget("unresolvable", host) from error
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


def check_form(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) of an http(s) URL without credentials, or raise UnsafeTarget."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeTarget("malformed") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("scheme")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeTarget("credentials")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that is not http(s), carries credentials, or leads to a non-public address."""
    _scheme, host, port = check_form(url)
    if allow_private:
        return
    addresses = resolve(host, port)
    if not addresses or not all(is_public(address) for address in addresses):
        raise UnsafeTarget("not_public", host)


def check_peer(sock: socket.socket) -> None:
    """Refuse a connection whose other end is not a public address (the name changed after our check)."""
    peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
    if not is_public(peer):
        sock.close()
        raise OSError(f"refused to send to the non-public address {peer}")


class _PublicOnlyHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        check_peer(self.sock)


class _PublicOnlyHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        check_peer(self.sock)


class PublicOnlyHTTPHandler(urllib.request.HTTPHandler):
    """Open http:// URLs only to public peer addresses."""

    def http_open(self, req: Any) -> Any:
        return self.do_open(_PublicOnlyHTTPConnection, req)


class PublicOnlyHTTPSHandler(urllib.request.HTTPSHandler):
    """Open https:// URLs only to public peer addresses."""

    def https_open(self, req: Any) -> Any:
        return self.do_open(_PublicOnlyHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]
