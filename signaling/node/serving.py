"""Serving over the network: the TLS context ``coreview serve`` listens with, a
self-signed certificate for a demo (``coreview tls-cert``), and the addresses another
computer can actually open.

Browsers give cameras and microphones only to a secure context: ``https://``, or
``http://`` on loopback. A hall PC that opens the service by a LAN address therefore
needs HTTPS."""

from __future__ import annotations

import datetime as dt
import gc
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from aioice.ice import get_host_addresses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from recorder.private_files import write_private
from signaling.settings import Settings

CERT_DAYS = 365
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 - names them, binds nothing


class TlsError(ValueError):
    """The certificate or key cannot be used (missing, unreadable, not matching)."""


def settle_heap() -> None:
    """Once the service has started: collect, then move every object alive into the
    permanent generation (``gc.freeze``). The collector's full passes scan only what was
    made since: over everything start-up leaves (modules, aiortc, SQLAlchemy, the
    catalogue) each took ~70 ms and stalled requests and media alike."""
    gc.collect()
    gc.freeze()


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for the listener, or None when TLS is off."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(
            f"无法载入 TLS 证书 {settings.tls_cert} 或私钥 {settings.tls_key}（{exc}）"
        ) from exc
    return context


def host_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses."""
    found = []
    for address in get_host_addresses(use_ipv4=True, use_ipv6=False):
        if not ipaddress.ip_address(address).is_loopback and address not in found:
            found.append(address)
    return found


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (where plain HTTP is still a secure context)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_urls(host: str, port: int, tls: bool) -> list[str]:
    """URLs a browser can open: for a wildcard host, one per address of this machine."""
    scheme = "https" if tls else "http"
    hosts = host_addresses() if host in WILDCARD_HOSTS else [host]
    return [f"{scheme}://{_url_host(h)}:{port}" for h in hosts]


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


@dataclass(frozen=True)
class DemoCertificate:
    cert: Path
    key: Path
    names: tuple[str, ...]
    """Host names and addresses the certificate is valid for."""
    sha256: str
    """Fingerprint (colon-separated hex) a person compares when the browser warns."""


def make_demo_certificate(
    data_dir: Path, hosts: tuple[str, ...], *, replace: bool = False
) -> DemoCertificate:
    """A self-signed certificate and its key in ``data_dir/tls`` (directory 0700, files
    0600), valid for localhost, 127.0.0.1, this machine's name and addresses and
    ``hosts`` (names or addresses). Refuses to overwrite one unless ``replace``."""
    for host in hosts:
        check_host(host)
    folder = data_dir / "tls"
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if not replace and (cert_path.exists() or key_path.exists()):
        raise FileExistsError(cert_path)
    names = tuple(
        dict.fromkeys(["localhost", "127.0.0.1", socket.gethostname(), *host_addresses(), *hosts])
    )
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "coreview"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "coreview 演示证书"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(key_path, key_pem)
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    digest = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    return DemoCertificate(cert_path, key_path, names, digest)


_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def check_host(host: str) -> None:
    """A host name (ASCII letters, digits, hyphens, dots) or an IP address, else TlsError."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not _HOST_NAME.fullmatch(host):
            raise TlsError(f"--host 应为主机名或 IP 地址，收到 {host!r}") from None


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
