"""Outgoing HTTP to addresses users type in (webhook URLs): never to the inside of the network by accident.

A webhook URL is checked where it is resolved: every address its host resolves to must be public, unless an
admin allow-listed the host name or a network holding the address (``KIZUNA_WEBHOOK_ALLOW`` and the allow-list
page). Refused: private, loopback, link-local (169.254.169.254, the cloud metadata service), shared (CGNAT),
multicast, reserved and unspecified addresses, and the IPv6 forms that carry such an IPv4 address inside
(IPv4-mapped ``::ffff:127.0.0.1``, 6to4 ``2002:7f00:1::``, Teredo, NAT64 ``64:ff9b::``).

The request then goes to the very address that was checked (the URL's host is replaced by it, the name is kept
in the Host header and, for HTTPS, in SNI and the certificate check), so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot steer it elsewhere. Redirects are never followed: a
public receiver answering 302 to an internal address must not get us there.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from kizuna.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SCHEMES = {"http": 80, "https": 443}


class Refused(ValidationError):
    """A URL Kizuna will not send to: what is wrong with it, and how an admin can allow it if it is meant."""


class Unresolvable(Refused):
    """The host has no address now: at save time an error, at send time worth another try later."""


@dataclass(frozen=True)
class Allowlist:
    """Hosts and networks an admin allowed although they are not public (an intranet receiver, a test server)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Entries are host names (``hooks.internal``), addresses (``10.0.0.5``) or networks (``10.0.0.0/8``)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            network = parse_network(entry)
            if network is not None:
                networks.append(network)
            else:
                hosts.add(check_host_entry(entry))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)


def parse_network(entry: str) -> IPNetwork | None:
    """``entry`` as a network (an address alone is a /32 or /128), or None when it is not one."""
    try:
        return ipaddress.ip_network(entry.strip().strip("[]"), strict=False)
    except ValueError:
        return None


def check_host_entry(entry: str) -> str:
    """A host name for the allow-list, lower-cased; a clear error for anything else."""
    host = entry.strip().lower().rstrip(".")
    labels = host.split(".")
    if not host or len(host) > 253 or not all(label and len(label) <= 63 for label in labels):
        raise ValidationError(f"{entry[:60]!r} is neither a host name nor an address or network", field="entry")
    if not all(c.isalnum() or c in "-_." for c in host):
        raise ValidationError(f"{entry[:60]!r} is neither a host name nor an address or network", field="entry")
    return host


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def why_not_public(address: IPAddress) -> str | None:
    """Why ``address`` is not a public address (``loopback``, ``private`` ...), or None when it is one."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = why_not_public(inner)
        return f"{reason} (inside {address})" if reason else None
    for reason, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flag:
            return reason
    # Shared address space (100.64.0.0/10, carrier NAT) and the like: not private, but not global either.
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class Target:
    """A URL checked for sending: the address to connect to and what to tell the server."""

    url: str  # as given
    scheme: str
    host: str  # the name, for the Host header, SNI and the certificate check
    port: int
    address: IPAddress  # what was checked, and what the connection goes to
    path: str  # path and query

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _SCHEMES[self.scheme] else f"{host}:{self.port}"


def split(url: str) -> SplitResult:
    """The parts of an http(s) URL with a host; a clear error otherwise."""
    if not isinstance(url, str) or len(url) > 2000:
        raise Refused("a webhook URL is text of at most 2,000 characters", field="url")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise Refused(f"{url[:100]!r} is not a valid URL: {exc}", field="url") from exc
    if parts.scheme not in _SCHEMES:
        raise Refused(f"{url[:100]!r}: a webhook URL starts with https:// or http://", field="url")
    if not parts.hostname:
        raise Refused(f"{url[:100]!r} names no host", field="url")
    if parts.username or parts.password:
        raise Refused("a webhook URL must not carry a user name or password; use the signature instead", field="url")
    return parts


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an address literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"the host {host!r} cannot be resolved ({exc})", field="url") from exc
    found: list[IPAddress] = []
    for info in infos:
        # Drop an IPv6 zone id ("fe80::1%eth0"): the address itself is what is checked.
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise Unresolvable(f"the host {host!r} has no address", field="url")
    return found


def check(url: str, allow: Allowlist) -> Target:
    """Resolve and check ``url``; the address to connect to, or ``Refused`` naming the problem.

    Every address of the host must pass: were one of them internal, a later connection could land on it.
    """
    parts = split(url)
    host = parts.hostname or ""
    port = parts.port or _SCHEMES[parts.scheme]
    addresses = resolve(host, port)
    if not allow.allows_host(host):
        for address in addresses:
            reason = why_not_public(address)
            if reason and not allow.allows_address(address):
                raise Refused(
                    f"{host} resolves to {address}, a {reason} address; webhooks go only to public addresses "
                    f"unless an admin allow-lists the host or its network",
                    field="url",
                    key="error.webhook_address_refused",
                    params={"host": host, "address": str(address), "reason": reason},
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(url=url, scheme=parts.scheme, host=host, port=port, address=addresses[0], path=path)
