"""Outbound HTTP targets, vetted: webhook deliveries and image localization share these rules.

A URL is allowed only with http/https, no credentials, a default or allowed port, and a host whose
every DNS answer is a public unicast address. `ipaddress.is_global` alone is not a filter: the
NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo forms of 127.0.0.1 and multicast addresses pass
it, so each answer is unwrapped first. The vetted address is then pinned for the connection
(the request goes to the IP with the original Host header and TLS server name), so DNS cannot
change between the check and the connect.

Two ways past the public-only rule ([network] in cms.toml): `allowed_hosts` opens the hosts and
addresses it names (any port), `allow_private_addresses` every private and loopback range (the
broad switch of local test setups). Neither opens link-local addresses or the cloud metadata
services, in any embedded form: those carry instance credentials and no receiver lives there.
`public_targets = false` closes the other way: only named (or, when allowed, private) targets.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from cms.config import NetworkSection
from cms.errors import BlockedTarget as BlockedTarget  # (re-exported: its old home)

Resolver = Callable[[str, int], list[str]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use prefix; /96 inside it is usual
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # the deprecated ::a.b.c.d form
MAX_URL_CHARS = 2048  # a longer URL is refused before it is parsed
_EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "0.0.0.0/8")]
# Metadata services outside the link-local ranges (169.254.169.254 is inside 169.254.0.0/16):
# AWS's IPv6 endpoint, Google Cloud's IPv6 endpoint and Alibaba Cloud's (inside 100.64.0.0/10).
_METADATA = [ipaddress.ip_network(n) for n in ("fd00:ec2::254/128", "fd20:ce::254/128", "100.100.100.200/32")]


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedTarget(f"cannot resolve {host!r}: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


def _unwrap(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address and every IPv4 address embedded in it."""
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            out.append(ip.ipv4_mapped)
        if ip.sixtofour:
            out.append(ip.sixtofour)
        if ip.teredo:
            out.extend(ip.teredo)
        if ip in _NAT64 or ip in _NAT64_LOCAL or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
            out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def is_forbidden(address: str) -> bool:
    """Whether an address is never reached: link-local or a cloud metadata service, in any embedded form."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return True
    return any(c.is_link_local or any(c in n for n in _METADATA) for c in _unwrap(ip))


def is_public(address: str) -> bool:
    """Whether an address (and anything embedded in it) is a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    for candidate in _unwrap(ip):
        if (
            not candidate.is_global
            or candidate.is_multicast
            or candidate.is_reserved
            or candidate.is_unspecified
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_private
        ):
            return False
        if isinstance(candidate, ipaddress.IPv4Address) and any(candidate in n for n in _EXTRA_BLOCKED):
            return False
    return True


@dataclass(frozen=True)
class Target:
    """A vetted URL and the address to connect to."""

    url: str  # as given
    host: str
    port: int
    address: str  # the vetted IP to connect to
    pinned_url: str  # the URL with the IP in place of the host name


def vet_url(
    url: str,
    network: NetworkSection = NetworkSection(),  # noqa: B008 - frozen: one shared default is safe
    *,
    resolver: Resolver = system_resolver,
    allowed_ports: tuple[int, ...] = (80, 443),
) -> Target:
    """Check a URL under the site's [network] rules and resolve it once; BlockedTarget says why not.

    `network.allowed_hosts` names hosts and IP addresses that may be private and use any port;
    `network.allow_private_addresses` opens every private and loopback address and port;
    `network.public_targets = false` refuses public addresses that are not named. Link-local and
    metadata addresses are refused whatever they say.
    """
    allow_private = network.allow_private_addresses
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise BlockedTarget(f"the URL must be a string of at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise BlockedTarget("the URL is malformed") from None
    if parts.scheme not in ("http", "https"):
        raise BlockedTarget(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    if parts.username or parts.password:
        raise BlockedTarget("URLs with credentials are not allowed")
    host = parts.hostname
    if not host:
        raise BlockedTarget("the URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    literal = _literal_ip(host)
    named = _allowed(tuple(network.allowed_hosts))
    host_named = (literal or host.rstrip(".")) in named
    if not (allow_private or host_named) and port not in allowed_ports:
        raise BlockedTarget(f"port {port} is not allowed")
    addresses = [literal] if literal else resolver(host, port)
    if not addresses:
        raise BlockedTarget(f"{host!r} has no address")
    if any(is_forbidden(a) for a in addresses):  # before any opening: nothing opens these
        raise BlockedTarget(f"{host!r} resolves to a link-local or cloud metadata address")
    if not allow_private and not host_named:
        bad = [a for a in addresses if not is_public(a) and _normal_ip(a) not in named]
        if bad:
            raise BlockedTarget(
                f"{host!r} resolves to a private, loopback or reserved address; name it in [network] allowed_hosts"
            )
    if not network.public_targets and not host_named:
        unnamed = [a for a in addresses if is_public(a) and _normal_ip(a) not in named]
        if unnamed:
            raise BlockedTarget(f"{host!r} is a public address and [network] public_targets is false")
    address = addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((parts.scheme, f"{netloc}:{port}", parts.path or "/", parts.query, ""))
    return Target(url=url, host=host, port=port, address=address, pinned_url=pinned)


def _normal_ip(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%")[0]))
    except ValueError:
        return address


def _allowed(hosts: tuple[str, ...]) -> frozenset[str]:
    """`allowed_hosts` as compared: names in lower case without a trailing dot, addresses normalized."""
    out = set()
    for entry in hosts:
        text = entry.strip().lower().rstrip(".")
        literal = _literal_ip(text) if text else None
        out.add(literal or text)
    return frozenset(out)


def _literal_ip(host: str) -> str | None:
    """An IP written in the URL, including forms like 2130706433, 0x7f.1 and 0177.0.0.1."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:  # inet_aton accepts the legacy numeric forms that browsers and resolvers accept too
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None
