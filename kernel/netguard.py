"""Which network addresses paygate may send events to in production, and an HTTP transport that keeps to them.

docs/api.md, "Callback URLs in production": with ``PAYGATE_ENV=production`` a callback URL whose host is, or
resolves to, an address that is not global unicast is refused, at creation and again before each delivery, and
the delivery connects to the address it checked (so a DNS answer that changes between the check and the connect
— DNS rebinding — cannot steer it inside).

The rules (:func:`refusal`) are the IANA special-purpose registries
(https://www.iana.org/assignments/iana-ipv4-special-registry/,
https://www.iana.org/assignments/iana-ipv6-special-registry/) written out here instead of trusting
:attr:`ipaddress.IPv4Address.is_global` alone, whose tables differ between Python patch releases (3.11.7 calls
``224.0.0.1``, ``64:ff9b::a00:1`` and ``2002:a00:1::`` global):

* IPv4: refused when in :data:`IPV4_NOT_GLOBAL` (private, loopback, link-local, shared ``100.64.0.0/10``,
  documentation, benchmarking, multicast, reserved, ``0.0.0.0/8``) or when Python does not call it global.
* IPv6: an address that wraps an IPv4 address is judged by the IPv4 address it wraps: IPv4-mapped
  ``::ffff:0:0/96`` (RFC 4291 §2.5.5.2), NAT64 ``64:ff9b::/96`` (RFC 6052) and 6to4 ``2002::/16`` (RFC 3056);
  IPv4-compatible ``::/96`` (deprecated by RFC 4291 §2.5.5.1) is refused outright, as are ``::`` and ``::1``.
  Everything else must be global unicast ``2000::/3`` (RFC 4291 §2.4) and outside :data:`IPV6_NOT_GLOBAL`
  (Teredo and the other IETF protocol assignments ``2001::/23``, documentation ``2001:db8::/32`` and
  ``3fff::/20``); so unique-local ``fc00::/7``, link-local ``fe80::/10``, site-local ``fec0::/10``, multicast
  ``ff00::/8``, discard ``100::/64`` and local-use NAT64 ``64:ff9b:1::/48`` are refused.

:class:`GuardedBackend` is an ``httpcore`` network backend (https://www.encode.io/httpcore/network-backends/)
that resolves the request's host once inside ``connect_tcp``, refuses the connection
(:class:`AddressNotAllowed`) when any answer is refused, and opens the socket to a checked IP literal. Only the
TCP target changes: the ``Host`` header, TLS SNI and certificate verification keep the URL's host name, because
``httpcore`` takes those from the request, not from the socket. :func:`guarded_transport` plugs it into an
``httpx`` transport.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> [IP literal, ...]``: the addresses a host name resolves to (an IP literal gives itself)."""

_v4 = ipaddress.IPv4Network
_v6 = ipaddress.IPv6Network

IPV4_NOT_GLOBAL: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_v4("0.0.0.0/8"), "unspecified"),              # "this network" (RFC 791), 0.0.0.0 itself
    (_v4("10.0.0.0/8"), "private"),                 # RFC 1918
    (_v4("100.64.0.0/10"), "shared"),               # carrier-grade NAT (RFC 6598)
    (_v4("127.0.0.0/8"), "loopback"),               # RFC 1122
    (_v4("169.254.0.0/16"), "link_local"),          # RFC 3927 (cloud metadata: 169.254.169.254)
    (_v4("172.16.0.0/12"), "private"),              # RFC 1918
    (_v4("192.0.0.0/24"), "reserved"),              # IETF protocol assignments (RFC 6890)
    (_v4("192.0.2.0/24"), "documentation"),         # TEST-NET-1 (RFC 5737)
    (_v4("192.88.99.0/24"), "reserved"),            # 6to4 relay anycast, deprecated (RFC 7526)
    (_v4("192.168.0.0/16"), "private"),             # RFC 1918
    (_v4("198.18.0.0/15"), "reserved"),             # benchmarking (RFC 2544)
    (_v4("198.51.100.0/24"), "documentation"),      # TEST-NET-2
    (_v4("203.0.113.0/24"), "documentation"),       # TEST-NET-3
    (_v4("224.0.0.0/4"), "multicast"),              # RFC 5771
    (_v4("240.0.0.0/4"), "reserved"),               # RFC 1112, and 255.255.255.255 broadcast
)

GLOBAL_UNICAST_V6 = _v6("2000::/3")
IPV4_MAPPED = _v6("::ffff:0:0/96")
IPV4_COMPATIBLE = _v6("::/96")
NAT64 = _v6("64:ff9b::/96")
SIX_TO_FOUR = _v6("2002::/16")

IPV6_NOT_GLOBAL: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_v6("2001::/23"), "reserved"),                 # IETF protocol assignments: Teredo, benchmarking, ORCHID
    (_v6("2001:db8::/32"), "documentation"),        # RFC 3849
    (_v6("3fff::/20"), "documentation"),            # RFC 9637
)

_V6_OUTSIDE_GLOBAL: tuple[tuple[ipaddress.IPv6Network, str], ...] = (  # names for refusals outside 2000::/3
    (_v6("::1/128"), "loopback"),
    (_v6("::/128"), "unspecified"),
    (_v6("fc00::/7"), "private"),                   # unique local (RFC 4193)
    (_v6("fe80::/10"), "link_local"),
    (_v6("fec0::/10"), "site_local"),               # deprecated (RFC 3879)
    (_v6("ff00::/8"), "multicast"),
)


class AddressNotAllowed(Exception):
    """A host that is, or resolves to, an address that is not global unicast. ``host``: the name asked for;
    ``address``: the refused IP literal; ``reason``: :func:`refusal`'s label."""

    def __init__(self, host: str, address: str, reason: str):
        super().__init__(f"{host} resolves to {address} ({reason}), which is not a global unicast address")
        self.host = host
        self.address = address
        self.reason = reason


def parse_address(value: str | IPAddress) -> IPAddress:
    """An :mod:`ipaddress` object from an IP literal (an IPv6 zone such as ``%eth0`` is dropped; brackets
    allowed). Raises ``ValueError`` for anything else."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return ipaddress.ip_address(text.split("%", 1)[0])


def refusal(address: str | IPAddress) -> str | None:
    """Why ``address`` (an IP literal) may not receive callbacks — ``"private"``, ``"loopback"``,
    ``"link_local"``, ``"shared"``, ``"multicast"``, ``"reserved"``, ``"unspecified"``, ``"documentation"``,
    ``"site_local"``, ``"ipv4_compatible"`` or ``"not_global"`` — or None when it is global unicast. A wrapped
    IPv4 address is reported as ``"<form> of <reason>"`` (``"ipv4_mapped of private"``). Raises ``ValueError``
    for a value that is not an IP literal."""
    ip = parse_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        for network, reason in IPV4_NOT_GLOBAL:
            if ip in network:
                return reason
        return None if ip.is_global else "not_global"
    wrapped = _wrapped_ipv4(ip)
    if wrapped is not None:
        form, inner = wrapped
        if inner is None:
            return form
        reason = refusal(inner)
        return f"{form} of {reason}" if reason else None
    if ip not in GLOBAL_UNICAST_V6:
        for network, reason in _V6_OUTSIDE_GLOBAL:
            if ip in network:
                return reason
        return "reserved"
    for network, reason in IPV6_NOT_GLOBAL:
        if ip in network:
            return reason
    return None


def _wrapped_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address | None] | None:
    """``(form, embedded IPv4)`` for an IPv6 address that carries an IPv4 address; embedded None means the form
    is refused whatever it carries (IPv4-compatible, which no current stack routes)."""
    if ip in IPV4_MAPPED:
        return "ipv4_mapped", ip.ipv4_mapped
    if ip in NAT64:
        return "nat64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in SIX_TO_FOUR:
        return "6to4", ip.sixtofour
    if ip in IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are named for what they are
        return "ipv4_compatible", None
    return None


def is_allowed(address: str | IPAddress) -> bool:
    """True when ``address`` (an IP literal) is global unicast (:func:`refusal` is None)."""
    return refusal(address) is None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``socket.getaddrinfo`` gives for ``host`` (TCP), in its order, without duplicates. An IP
    literal (also the forms ``inet_aton`` reads, like ``127.1``) gives itself without a DNS query. Raises
    ``socket.gaierror`` when the name does not resolve and ``UnicodeError`` for a name IDNA cannot encode."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_host(host: str, port: int = 443, *, resolver: Resolver = system_resolver) -> list[str]:
    """Resolves ``host`` once and returns its addresses (IP literals) when every one is global unicast.

    Raises :class:`AddressNotAllowed` naming the first refused address (a name that resolves to one public and
    one internal address is refused: which of them a connection would use is not ours to choose), and lets the
    resolver's errors through (``socket.gaierror``, ``UnicodeError``)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        addresses = [str(parse_address(bare))]
    except ValueError:
        addresses = resolver(bare, port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            raise AddressNotAllowed(host, address, reason)
    return addresses


# -- the pinned HTTP connection -------------------------------------------------------------------------

def _httpcore():
    import httpcore

    return httpcore


class GuardedBackend:
    """An ``httpcore`` synchronous network backend that connects only to checked addresses.

    ``connect_tcp(host, port, ...)`` resolves ``host`` once with ``resolver`` (:func:`check_host`), raises
    :class:`AddressNotAllowed` (not an ``httpcore`` error, so ``httpx`` lets it through unchanged) when any
    answer is refused, and otherwise connects to the checked addresses in order, as IP literals, through
    ``httpcore``'s own :class:`httpcore.SyncBackend`. A name that does not resolve is an ``httpcore.ConnectError``
    (a transport failure the caller may retry). ``sleep`` and Unix sockets are the default backend's."""

    def __init__(self, resolver: Resolver = system_resolver, backend=None):
        self.resolver = resolver
        self.backend = backend or _httpcore().SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options=None):
        httpcore = _httpcore()
        try:
            addresses = check_host(host, port, resolver=self.resolver)
        except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return self.backend.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):
        raise AddressNotAllowed(path, path, "unix_socket")

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)


def guarded_transport(*, resolver: Resolver = system_resolver, verify=True, **pool_options):
    """An ``httpx.HTTPTransport`` whose connection pool uses :class:`GuardedBackend`: every new connection is
    resolved once, checked and opened to the checked IP; TLS keeps verifying the URL's host name. No proxy is
    used (an ``HTTP(S)_PROXY`` would connect to the proxy, not to the checked address). ``pool_options`` go to
    ``httpcore.ConnectionPool`` (default httpx's: 100 connections, 20 kept alive for 5 s, so a host's new DNS
    answer is used, and checked, within seconds).

    ``httpx`` 0.28 has no public parameter for a pool's network backend (the pool is built inside
    ``HTTPTransport.__init__``), so the transport's pool is replaced by one built the same way with the backend.
    """
    import httpx

    transport = httpx.HTTPTransport(verify=verify, trust_env=False)
    ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
    limits = {"max_connections": 100, "max_keepalive_connections": 20, "keepalive_expiry": 5.0}  # httpx's defaults
    transport._pool.close()
    transport._pool = _httpcore().ConnectionPool(ssl_context=ssl_context, network_backend=GuardedBackend(resolver),
                                                 **{**limits, **pool_options})
    return transport
