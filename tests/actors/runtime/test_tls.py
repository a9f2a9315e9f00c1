"""TLS: the local CA and server certificate, verified clients, no plain-text fallback."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from actors.runtime import Bus, ConnectionConfig
from actors.runtime.errors import ConnectError
from actors.runtime.server import NatsServer
from actors.runtime.testing import eventually, nats_server
from actors.runtime.tls import ensure_server_tls, find_ca

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A server requiring TLS with a certificate of its state directory's CA."""
    server = NatsServer(tmp_path_factory.mktemp("tls"), port=0, use_config=False, tls=True)
    with server:
        yield server


def test_certificates_name_the_loopback_and_keys_are_private(tmp_path: Path) -> None:
    """The server certificate is signed by the CA for 127.0.0.1, ::1 and localhost; keys 0600."""
    files = ensure_server_tls(tmp_path)
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    for key in (files.key, tmp_path / "tls" / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    assert find_ca(tmp_path) == files.ca


def test_the_ca_is_kept_across_starts(tmp_path: Path) -> None:
    """A second start reuses the CA clients already trust and its server certificate."""
    first = ensure_server_tls(tmp_path)
    ca, cert = first.ca.read_bytes(), first.cert.read_bytes()
    second = ensure_server_tls(tmp_path)
    assert second.ca.read_bytes() == ca
    assert second.cert.read_bytes() == cert


async def test_a_client_verifying_with_the_ca_connects_over_tls(tls_server: NatsServer) -> None:
    """tls:// with the CA connects; the connection is encrypted."""
    assert tls_server.url.startswith("tls://")
    config = ConnectionConfig(url=tls_server.url, ca=str(tls_server.ca), connect_timeout=5)
    async with await Bus.connect(config) as bus:
        transport = bus.nc._transport
        assert transport is not None
        assert transport._io_writer.get_extra_info("ssl_object") is not None  # type: ignore[attr-defined]
        await bus.nc.flush()


async def test_a_nats_url_with_the_ca_is_upgraded_to_tls(tls_server: NatsServer) -> None:
    """A nats:// URL (the CLI default) with the CA follows the server's demand for TLS."""
    url = tls_server.url.replace("tls://", "nats://")
    config = ConnectionConfig(url=url, ca=str(tls_server.ca), connect_timeout=5)
    async with await Bus.connect(config) as bus:
        await bus.nc.flush()


async def test_a_client_without_the_ca_is_refused_with_a_hint(tls_server: NatsServer) -> None:
    """Without the CA the certificate does not verify: a ConnectError naming --ca."""
    config = ConnectionConfig(url=tls_server.url, connect_timeout=5)
    with pytest.raises(ConnectError, match="TROUPE_NATS_CA"):
        await Bus.connect(config)


async def test_a_tls_url_against_a_plain_server_fails_instead_of_falling_back() -> None:
    """tls:// to a server without TLS raises, and the credentials never leave the client."""
    received = bytearray()
    closed = asyncio.Event()

    async def plain_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"plain","version":"2.11.0","max_payload":1048576}\r\n')
        await writer.drain()
        while chunk := await reader.read(4096):
            received.extend(chunk)
        writer.close()
        closed.set()

    server = await asyncio.start_server(plain_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = ConnectionConfig(
            url=f"tls://127.0.0.1:{port}", user="u", password="p-secret", connect_timeout=30
        )
        with pytest.raises(ConnectError, match="does not offer TLS"):
            await Bus.connect(config)

        async def hung_up() -> bool:
            return closed.is_set()

        await eventually(hung_up)
    finally:
        server.close()
        await server.wait_closed()
    assert b"p-secret" not in received
    assert b"CONNECT" not in received


async def test_a_tls_url_against_a_real_plain_server_names_the_problem() -> None:
    """Against a real nats-server without TLS the error says TLS is not offered."""
    with nats_server() as plain:
        config = ConnectionConfig(url=plain.url.replace("nats://", "tls://"), connect_timeout=30)
        with pytest.raises(ConnectError, match="does not offer TLS"):
            await Bus.connect(config)


def test_client_contexts_verify_host_names() -> None:
    """A client context checks the certificate chain and the host name."""
    from actors.runtime.tls import client_context

    context = client_context(None)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
