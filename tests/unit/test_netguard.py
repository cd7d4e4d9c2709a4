"""kernel.netguard: which addresses callbacks may reach in production, and the transport that connects to the
address it checked (docs/api.md, "Callback URLs in production")."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kernel import netguard
from kernel.netguard import AddressNotAllowed, GuardedBackend, check_host, guarded_transport, is_allowed, refusal

REFUSED_V4 = [
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"), ("10.255.255.255", "private"),
    ("100.64.0.1", "shared"), ("100.100.100.200", "shared"), ("100.127.255.254", "shared"),
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"),
    ("169.254.169.254", "link_local"), ("169.254.0.1", "link_local"),
    ("172.16.0.1", "private"), ("172.31.255.254", "private"),
    ("192.0.0.1", "reserved"), ("192.0.0.170", "reserved"),
    ("192.0.2.10", "documentation"), ("198.51.100.7", "documentation"), ("203.0.113.200", "documentation"),
    ("192.88.99.1", "reserved"),
    ("192.168.1.1", "private"), ("192.168.255.255", "private"),
    ("198.18.0.1", "reserved"), ("198.19.255.254", "reserved"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("233.252.0.1", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
]
ALLOWED_V4 = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.15.255.255",
              "172.32.0.0", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0", "223.255.255.254",
              "11.0.0.1", "126.255.255.255", "128.0.0.1", "169.253.255.255", "169.255.0.0"]

REFUSED_V6 = [
    ("::", "unspecified"), ("::1", "loopback"),
    ("fc00::1", "private"), ("fd12:3456:789a::1", "private"),
    ("fe80::1", "link_local"), ("febf:ffff::1", "link_local"), ("fe80::1%eth0", "link_local"),
    ("fec0::1", "site_local"),
    ("ff02::1", "multicast"), ("ff0e::1", "multicast"), ("ff05::1:3", "multicast"),
    ("100::1", "reserved"), ("64:ff9b:1::a00:1", "reserved"), ("1::", "reserved"), ("4000::1", "reserved"),
    ("2001::1", "reserved"), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"),  # Teredo
    ("2001:2::1", "reserved"), ("2001:10::1", "reserved"), ("2001:20::1", "reserved"),
    ("2001:db8::1", "documentation"), ("2001:db8:ffff::1", "documentation"), ("3fff::1", "documentation"),
    ("[::1]", "loopback"),
]
ALLOWED_V6 = ["2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::1", "2001:200::1",
              "2c0f:fb50::1", "3ffe::1"]

# IPv4 addresses wrapped in IPv6: judged by what they wrap
WRAPPED = [
    ("::ffff:10.0.0.1", "ipv4_mapped of private"), ("::ffff:127.0.0.1", "ipv4_mapped of loopback"),
    ("::ffff:169.254.169.254", "ipv4_mapped of link_local"), ("::ffff:100.64.0.1", "ipv4_mapped of shared"),
    ("::ffff:224.0.0.1", "ipv4_mapped of multicast"), ("::ffff:0.0.0.0", "ipv4_mapped of unspecified"),
    ("::ffff:a9fe:a9fe", "ipv4_mapped of link_local"),
    ("64:ff9b::10.0.0.1", "nat64 of private"), ("64:ff9b::7f00:1", "nat64 of loopback"),
    ("64:ff9b::169.254.169.254", "nat64 of link_local"), ("64:ff9b::192.168.0.1", "nat64 of private"),
    ("64:ff9b::100.64.0.1", "nat64 of shared"),
    ("2002:a00:1::", "6to4 of private"), ("2002:7f00:1::1", "6to4 of loopback"),
    ("2002:a9fe:a9fe::", "6to4 of link_local"), ("2002:c0a8:101:1::1", "6to4 of private"),
    ("::10.0.0.1", "ipv4_compatible"), ("::8.8.8.8", "ipv4_compatible"), ("::127.0.0.1", "ipv4_compatible"),
    ("::0.0.0.2", "ipv4_compatible"),
]
WRAPPED_GLOBAL = ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address, reason", REFUSED_V4 + REFUSED_V6 + WRAPPED)
def test_addresses_that_are_not_global_unicast_are_refused_with_their_reason(address, reason):
    assert refusal(address) == reason
    assert not is_allowed(address)


@pytest.mark.parametrize("address", ALLOWED_V4 + ALLOWED_V6 + WRAPPED_GLOBAL)
def test_global_unicast_addresses_are_allowed(address):
    assert refusal(address) is None
    assert is_allowed(address)


def test_every_listed_range_is_refused_at_both_ends():
    """The edges of each table entry, so a range written one bit too narrow shows up."""
    for network, reason in netguard.IPV4_NOT_GLOBAL:
        for address in (network.network_address, network.broadcast_address):
            assert refusal(address) == reason, address
            assert refusal(f"::ffff:{address}") == f"ipv4_mapped of {reason}"
            assert refusal(ipaddress.IPv6Address(int(netguard.NAT64.network_address) | int(address))) \
                == f"nat64 of {reason}"
            assert refusal(ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80))) == f"6to4 of {reason}"
    for network, reason in netguard.IPV6_NOT_GLOBAL:
        assert refusal(network.network_address) == reason
        assert refusal(network.broadcast_address) == reason
    for network, reason in netguard._V6_OUTSIDE_GLOBAL:
        assert refusal(network.network_address) == reason
        assert refusal(network.broadcast_address) == reason


def test_python_calls_some_of_these_global_which_is_why_the_tables_are_explicit():
    """Documents the reason for the explicit tables: on some Python releases ``is_global`` accepts these."""
    for address in ("224.0.0.1", "64:ff9b::a00:1", "2002:a00:1::", "::a00:1", "fec0::1", "64:ff9b:1::1"):
        assert refusal(address) is not None


def test_a_value_that_is_not_an_ip_literal_raises_value_error():
    for value in ("example.com", "", "10.0.0.256", "::ffff::1", "1.2.3"):
        with pytest.raises(ValueError):
            refusal(value)


def fake_resolver(table: dict[str, list[str]], calls: list | None = None):
    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def test_check_host_resolves_once_and_refuses_any_internal_answer():
    calls = []
    resolve = fake_resolver({"ok.example": ["93.184.216.34", "2606:4700::1"],
                             "mixed.example": ["93.184.216.34", "10.1.2.3"],
                             "meta.example": ["169.254.169.254"], "v6.example": ["::ffff:127.0.0.1"]}, calls)
    assert check_host("ok.example", 443, resolver=resolve) == ["93.184.216.34", "2606:4700::1"]
    with pytest.raises(AddressNotAllowed) as refused:
        check_host("mixed.example", 443, resolver=resolve)
    assert (refused.value.host, refused.value.address, refused.value.reason) == ("mixed.example", "10.1.2.3",
                                                                                  "private")
    with pytest.raises(AddressNotAllowed, match="169.254.169.254"):
        check_host("meta.example", 443, resolver=resolve)
    with pytest.raises(AddressNotAllowed, match="ipv4_mapped of loopback"):
        check_host("v6.example", 443, resolver=resolve)
    with pytest.raises(socket.gaierror):
        check_host("nowhere.example", 443, resolver=resolve)
    assert calls == [("ok.example", 443), ("mixed.example", 443), ("meta.example", 443), ("v6.example", 443),
                     ("nowhere.example", 443)]


def test_ip_literals_are_checked_without_resolving():
    calls = []
    resolve = fake_resolver({}, calls)
    assert check_host("8.8.8.8", 443, resolver=resolve) == ["8.8.8.8"]
    assert check_host("[2606:4700::1111]", 443, resolver=resolve) == ["2606:4700::1111"]
    for literal in ("10.0.0.1", "[::1]", "::ffff:169.254.169.254", "[64:ff9b::a9fe:a9fe]"):
        with pytest.raises(AddressNotAllowed):
            check_host(literal, 443, resolver=resolve)
    assert calls == []


def test_the_system_resolver_reads_the_numeric_forms_an_attacker_would_try():
    """``127.1``, ``2130706433`` and ``0x7f000001`` are all 127.0.0.1 to ``inet_aton``; the guard sees that."""
    for spelling in ("127.1", "2130706433", "0x7f000001", "localhost"):
        with pytest.raises(AddressNotAllowed):
            check_host(spelling, 80)


# -- the pinned transport on real sockets --------------------------------------------------------------------

class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list

    def do_POST(self):  # noqa: N802 - stdlib naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append({"host": self.headers.get("Host"), "path": self.path})
        self.send_response(302 if self.path == "/redirect" else 200)
        if self.path == "/redirect":
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    seen: list = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.seen = seen
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def loopback_allowed(monkeypatch):
    """Lets the guard accept 127.0.0.1 so a local server can stand in for a public host."""
    original = netguard.refusal
    monkeypatch.setattr(netguard, "refusal", lambda a: None if str(a) == "127.0.0.1" else original(a))


def test_the_connection_goes_to_the_checked_address_with_the_url_host_in_the_host_header(server, loopback_allowed):
    calls = []
    port = server.server_address[1]
    resolve = fake_resolver({"hooks.example": ["127.0.0.1"]}, calls)
    with httpx.Client(transport=guarded_transport(resolver=resolve), follow_redirects=False) as client:
        r = client.post(f"http://hooks.example:{port}/cb", content=b"{}")
        again = client.post(f"http://hooks.example:{port}/cb", content=b"{}")  # kept-alive connection
    assert (r.status_code, again.status_code) == (200, 200)
    assert server.seen == [{"host": f"hooks.example:{port}", "path": "/cb"}] * 2
    assert calls == [("hooks.example", port)]  # one resolution for the connection it opened


def test_an_internal_answer_raises_before_any_byte_is_sent(server):
    """DNS rebinding: whatever the name answered at creation, the connection uses this answer, checked."""
    port = server.server_address[1]
    resolve = fake_resolver({"rebind.example": ["127.0.0.1"], "mixed.example": ["93.184.216.34", "127.0.0.1"]})
    with httpx.Client(transport=guarded_transport(resolver=resolve)) as client:
        for host in ("rebind.example", "mixed.example", "127.0.0.1", "[::ffff:127.0.0.1]"):
            with pytest.raises(AddressNotAllowed):
                client.post(f"http://{host}:{port}/cb", content=b"{}")
    assert server.seen == []


def test_a_name_that_does_not_resolve_is_a_connect_error():
    with httpx.Client(transport=guarded_transport(resolver=fake_resolver({}))) as client:
        with pytest.raises(httpx.ConnectError):
            client.post("https://nowhere.example/cb", content=b"{}")


def test_redirects_are_not_followed(server, loopback_allowed):
    port = server.server_address[1]
    resolve = fake_resolver({"hooks.example": ["127.0.0.1"]})
    with httpx.Client(transport=guarded_transport(resolver=resolve), follow_redirects=False) as client:
        r = client.post(f"http://hooks.example:{port}/redirect", content=b"{}")
    assert r.status_code == 302
    assert [s["path"] for s in server.seen] == ["/redirect"]


def test_no_proxy_from_the_environment_is_used(server, loopback_allowed, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.0.0.1:3128")
    port = server.server_address[1]
    with httpx.Client(transport=guarded_transport(resolver=fake_resolver({"hooks.example": ["127.0.0.1"]})),
                      trust_env=False) as client:
        assert client.post(f"http://hooks.example:{port}/cb", content=b"{}").status_code == 200


def _certificate(tmp_path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path):
    """An https server on 127.0.0.1 whose certificate names only ``hooks.example``; records the SNI it got."""
    cert_path, key_path = _certificate(tmp_path, "hooks.example")
    seen: list = []
    sni: list = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.seen, httpd.sni, httpd.cert_path = seen, sni, cert_path
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_tls_verifies_the_url_host_name_and_sends_it_as_sni(tls_server, loopback_allowed):
    port = tls_server.server_address[1]
    trust = ssl.create_default_context(cafile=str(tls_server.cert_path))
    resolve = fake_resolver({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    with httpx.Client(transport=guarded_transport(resolver=resolve, verify=trust)) as client:
        r = client.post(f"https://hooks.example:{port}/cb", content=b"{}")
        assert r.status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            client.post(f"https://other.example:{port}/cb", content=b"{}")  # same address, wrong name
    assert tls_server.sni[0] == "hooks.example"
    assert tls_server.seen == [{"host": f"hooks.example:{port}", "path": "/cb"}]


def test_unix_sockets_are_refused():
    with pytest.raises(AddressNotAllowed):
        GuardedBackend().connect_unix_socket("/var/run/docker.sock")
