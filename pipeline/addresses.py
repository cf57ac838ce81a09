"""The address guard: which hosts the fetcher may connect to.

Feeds and pages come from strangers, and a URL (or a redirect) naming
``127.0.0.1``, ``169.254.169.254`` or an intranet host would turn the fetcher
into a probe of our own network. So every host is resolved first and *every*
address it resolves to must be public; the fetcher then connects to exactly the
addresses checked here (see ``pipeline.fetching``), so a DNS answer cannot change
between the check and the connect.

Exceptions come only from ``FetchSettings.allowed_hosts``: ``host``,
``host:port`` (``[v6]:port`` for IPv6) or a CIDR network such as ``10.0.0.0/8``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.errors import BlockedAddressError, ConfigError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Spelled out rather than trusting ``ip.is_global`` alone: its tables differ
# between Python releases, and it calls multicast addresses global.
_BLOCKED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_BLOCKED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def blocked_reason(address: IPAddress) -> str | None:
    """Why connecting to ``address`` is refused, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        # Addresses that carry an IPv4 address are judged by the address they reach.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return None if inner is None else f"{inner} (embedded in {address})"
        for net6, why in _BLOCKED_V6:
            if address in net6:
                return why
    else:
        for net4, why in _BLOCKED_V4:
            if address in net4:
                return why
    if address.is_multicast:
        return "multicast"
    if not address.is_global:
        return "not a global address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Allowance:
    """One parsed ``allowed_hosts`` entry."""

    host: str | None = None  # a name (compared to the URL's host)
    address: IPAddress | None = None  # an IP (compared to resolved addresses)
    network: IPNetwork | None = None
    port: int | None = None  # None: any port

    def admits(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address.version == self.network.version and address in self.network
        if self.address is not None:
            return address == self.address
        return host == self.host


def _parse_allowance(entry: str) -> _Allowance:
    text = entry.strip()
    if not text:
        raise ConfigError("allowed_hosts: empty entry")
    if "/" in text:
        try:
            return _Allowance(network=ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(f"allowed_hosts: {entry!r} is not a CIDR network") from None
    address = _parse_ip(text)
    if address is not None:  # a bare IP, including IPv6 without brackets
        return _Allowance(address=address)
    host, port = text, None
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host = inside
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"allowed_hosts: cannot parse {entry!r}")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif ":" in text:
        raise ConfigError(f"allowed_hosts: cannot parse {entry!r} (write IPv6 with a port as [addr]:port)")
    port_number: int | None = None
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"allowed_hosts: bad port in {entry!r}")
        port_number = int(port)
    host = _normalise_host(host)
    if not host:
        raise ConfigError(f"allowed_hosts: no host in {entry!r}")
    address = _parse_ip(host)
    if address is not None:
        return _Allowance(address=address, port=port_number)
    return _Allowance(host=host, port=port_number)


class AddressPolicy:
    """Resolves hosts and refuses those that reach non-public addresses, unless allowed."""

    def __init__(self, allowed_hosts: Sequence[str] = (), resolver: Resolver | None = None) -> None:
        """Parse ``allowed_hosts`` at once, so a bad entry fails when settings are loaded."""
        self._allowances = tuple(_parse_allowance(entry) for entry in allowed_hosts)
        self._resolver = resolver or system_resolver

    def resolve(self, host: str, port: int) -> list[str]:
        """Addresses to connect to for ``host:port``, every one of them checked.

        Raises:
            BlockedAddressError: any resolved address is refused (one bad answer is enough:
                an attacker who controls DNS chooses which one we would use).
            OSError: the name does not resolve.
        """
        name = _normalise_host(host)
        literal = _parse_ip(name)
        raw = [name] if literal is not None else self._resolver(name, port)
        if not raw:
            raise socket.gaierror(f"{host} resolved to no address")
        checked: list[str] = []
        for text in raw:
            address = _parse_ip(text)
            if address is None:
                raise BlockedAddressError(f"{host}:{port}", f"resolver returned a non-address {text!r}")
            reason = blocked_reason(address)
            if reason is not None and not any(a.admits(name, address, port) for a in self._allowances):
                raise BlockedAddressError(
                    f"{host}:{port}", f"address guard refused {address} ({reason})"
                )
            checked.append(str(address))
        return checked


def check_address(
    host: str, port: int, settings_allowed: Sequence[str], resolver: Resolver | None = None
) -> None:
    """Raise BlockedAddressError unless every address of ``host:port`` may be connected to.

    Resolution failures surface as OSError; a bad ``settings_allowed`` entry as ConfigError.
    """
    AddressPolicy(settings_allowed, resolver).resolve(host, port)
