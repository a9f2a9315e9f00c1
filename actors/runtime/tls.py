"""TLS for a troupe: a local CA and server certificate, client contexts, no plain fallback.

``troupe up --tls`` calls :func:`ensure_server_tls`, which keeps in
``<state-dir>/tls/``::

    ca.pem        the local CA certificate: what clients verify the server with
    ca.key        its private key (0600)
    server.pem    the server certificate, for 127.0.0.1, ::1 and localhost
    server.key    its private key (0600)

and makes a new server certificate when the old one is about to expire.
Clients verify the server with :func:`client_context`, and connect through
:class:`StrictTlsClient`, which refuses to go on in plain text when a
``tls://`` URL meets a server that does not offer TLS (nats-py would).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError

__all__ = [
    "CA_FILE",
    "LOOPBACK_HOSTS",
    "TLS_DIR",
    "ServerTls",
    "StrictTlsClient",
    "TlsNotOffered",
    "client_context",
    "ensure_server_tls",
    "find_ca",
]

TLS_DIR = "tls"
"""Directory in the state directory holding the CA and the server certificate."""

CA_FILE = "ca.pem"
"""The local CA certificate in :data:`TLS_DIR`."""

_SERVER_DAYS = 397
_CA_DAYS = 3650
_RENEW_BEFORE = datetime.timedelta(days=30)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""What the certificate of ``troupe up --tls`` is valid for."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The files a TLS server needs.

    Attributes:
        ca: CA certificate clients verify with.
        cert: server certificate (PEM).
        key: server private key (PEM, 0600).
    """

    ca: Path
    cert: Path
    key: Path


class TlsNotOffered(NatsError):
    """A ``tls://`` URL reached a server that does not offer TLS."""


def find_ca(state_dir: Path) -> Path | None:
    """Return the local CA certificate of ``state_dir`` if ``troupe up --tls`` made one."""
    path = Path(state_dir) / TLS_DIR / CA_FILE
    return path if path.is_file() else None


def client_context(ca: str | Path | None) -> ssl.SSLContext:
    """Return a context verifying the server's certificate and host name.

    Args:
        ca: CA certificate to trust; the system's trust store when ``None``.
    """
    return ssl.create_default_context(cafile=str(ca) if ca is not None else None)


def _write_key(path: Path, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(b"")
    path.chmod(0o600)
    path.write_bytes(data)


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "troupe"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _make_ca(directory: Path, now: datetime.datetime) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("troupe local CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", key)
    (directory / CA_FILE).write_bytes(cert.public_bytes(_pem()))
    return cert, key


def _pem() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM


def _load_ca(directory: Path) -> tuple[Any, Any] | None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    except (OSError, ValueError):
        return None
    return cert, key


def _valid(path: Path, now: datetime.datetime) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    return bool(cert.not_valid_after_utc - _RENEW_BEFORE > now)


def _make_server_cert(
    directory: Path,
    ca_cert: Any,
    ca_key: Any,
    now: datetime.datetime,
    *,
    hosts: Sequence[str],
    name: str = "server",
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("troupe nats-server"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # Client use too: cluster nodes present it to each other (mutual TLS on routes).
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(directory / f"{name}.key", key)
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(_pem()))


def ensure_server_tls(state_dir: Path, hosts: Sequence[str] = LOOPBACK_HOSTS) -> ServerTls:
    """Return the CA and server certificate of ``state_dir``, making what is missing.

    The CA is made once and kept (clients may already trust it); the server
    certificate is made anew when missing, not signed by that CA, or within 30
    days of expiry.

    Args:
        state_dir: the state directory (its ``tls/`` holds the files).
        hosts: host names and IP addresses the server certificate is valid for.

    Returns:
        The paths of the CA certificate, the server certificate and its key.
    """
    Path(state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    Path(state_dir).chmod(0o700)
    directory = Path(state_dir) / TLS_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    loaded = _load_ca(directory) if _valid(directory / CA_FILE, now) else None
    fresh_ca = loaded is None
    ca_cert, ca_key = loaded if loaded is not None else _make_ca(directory, now)
    if (
        fresh_ca
        or not _valid(directory / "server.pem", now)
        or not (directory / "server.key").exists()
    ):
        _make_server_cert(directory, ca_cert, ca_key, now, hosts=hosts)
    return ServerTls(
        ca=directory / CA_FILE, cert=directory / "server.pem", key=directory / "server.key"
    )


class StrictTlsClient(Client):
    """A nats-py client that never speaks plain text to a ``tls://`` URL.

    nats-py upgrades to TLS only when the server asks for it, so a ``tls://``
    URL pointing at a plain server would carry credentials in clear text. This
    client checks the server's greeting first and fails with
    :class:`TlsNotOffered` before sending anything.
    """

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        server = self._current_server
        if initial_connection and server is not None and server.uri.scheme == "tls":
            if not (info.get("tls_required") or info.get("tls_available")):
                host = f"{server.uri.hostname}:{server.uri.port}"
                raise TlsNotOffered(
                    f"nats: the server at {host} does not offer TLS; "
                    "refusing to connect in plain text to a tls:// URL"
                )
            # A server that merely allows TLS gets it: nats-py upgrades on this flag.
            info["tls_required"] = True
        await super()._process_info(info, initial_connection)
