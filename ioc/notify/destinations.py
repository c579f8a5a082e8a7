"""Where a user's own webhook may point (server-side request forgery guard).

A webhook URL a user types on /settings/notifications is sent to by the delivery worker, from
inside the city's network. Left unchecked, any signed-in user could make the worker POST to
``http://127.0.0.1:5432``, the cloud metadata address ``169.254.169.254`` or an internal admin
interface. So a user's webhook may reach only public (globally routable) addresses, plus the
networks an administrator lists in ``notifications.yaml`` ``delivery.user_webhook_networks``
(a Zalo/Telegram relay inside the city's network, say). Endpoints an administrator names under
``webhooks:`` are trusted as configured.

Checked twice: when the preference is saved (an address written as an IP literal or
``localhost``), and before every send (every address the name resolves to, so a public-looking
name that resolves inside is refused too). The send then connects to one of exactly those
checked addresses (:func:`resolve_checked`; ``ioc.notify.channels.WebhookChannel``), never
looking the name up again, so a name whose DNS answer changes between the check and the
connection (DNS rebinding) cannot lead inside. The Host header, TLS SNI and the certificate
check still use the name. No webhook follows redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def networks(cidrs: Iterable[str]) -> list[Network]:
    """``ip_network`` of each CIDR (ValueError naming the bad one)."""
    out: list[Network] = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError:
            raise ValueError(f"not a network (CIDR such as 10.20.0.0/16): {c!r}") from None
    return out


def refused(addr: Address, allow: Sequence[Network] = ()) -> bool:
    """True when a user's webhook may not reach ``addr``."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if any(addr in n for n in allow):
        return False
    return not addr.is_global or addr.is_multicast


def literal_refusal(url: str, allow: Sequence[Network] = ()) -> str | None:
    """Why ``url`` is refused from what it says alone (an IP literal or ``localhost``), or
    None. Names that need DNS are checked when sending (:func:`resolve_checked`)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    return f"{addr} is not a public address" if refused(addr, allow) else None


class Refused(Exception):
    """A user's webhook may not be sent to (the message says why)."""


def resolve_checked(url: str, allow: Sequence[Network] = ()) -> list[Address]:
    """Every address ``url``'s host resolves to, in the resolver's order, each checked
    (:class:`Refused` naming the first refused one). Empty when the name does not resolve.

    Resolved once: the caller connects to these addresses and no other, so a second lookup
    (answered differently by a rebinding DNS server) never happens."""
    why = literal_refusal(url, allow)
    if why is not None:
        raise Refused(why)
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    out: list[Address] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if refused(addr, allow):
            raise Refused(f"{host} resolves to {addr}, not a public address")
        if addr not in out:
            out.append(addr)
    return out
