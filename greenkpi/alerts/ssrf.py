"""Which webhook URLs we may call: http(s) to public addresses only, checked when a channel is saved
and again, on the resolved address we then connect to, at send time (DNS may change in between).

Private, loopback, link-local, shared (CGNAT), reserved and multicast ranges are refused unless an
admin allows private networks on that channel; cloud metadata endpoints are refused always, since no
receiver lives there and they hand out credentials (reference/reliability-and-ecosystem.md, API7).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack
        "169.254.170.2",  # AWS ECS task credentials
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IPv6
    )
)


class UnsafeURL(ValueError):
    """The URL is not one we may call."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path + query, what goes on the request line
    addresses: tuple[IPAddress, ...]  # resolved and checked, in resolver order


def address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why this address is refused, or None when it may be called."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if address.is_multicast or address.is_unspecified:
        return f"{address} is not a unicast address"
    if allow_private or address.is_global:
        return None
    for kind in ("loopback", "link_local", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    return f"{address} is not a public address"


def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to (literal IPs resolve to themselves)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"cannot resolve {host!r}: {exc}") from exc
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(seen)


def check_url(url: str, *, allow_private: bool = False) -> Target:
    """Parse, resolve and check ``url``; raise UnsafeURL naming the reason when refused.

    Every address the name resolves to must pass, so a name with one public and one private
    address cannot be used to reach the private one.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("only http:// and https:// URLs may be called")
    if parts.username or parts.password:
        raise UnsafeURL("credentials in the URL are not allowed (use the signing secret)")
    host = parts.hostname
    if not host:
        raise UnsafeURL("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL(f"bad port: {exc}") from exc
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeURL(f"{host!r} resolves to no address")
    for address in addresses:
        reason = address_refusal(address, allow_private=allow_private)
        if reason:
            raise UnsafeURL(f"{host} refused: {reason}")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, host, port, path, tuple(addresses))
