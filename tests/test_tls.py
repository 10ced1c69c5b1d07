"""HTTPS: ``coreview tls-cert`` makes a private self-signed certificate, ``coreview serve``
speaks TLS with it (a real process, a Python client that trusts only that certificate),
cookies are Secure and HSTS is sent only when TLS is on."""

from __future__ import annotations

import http.client
import json
import ssl
import stat
import subprocess
from pathlib import Path

import pytest

from signaling.settings import Settings, SettingsError, load_settings
from signaling.web.middleware import HSTS
from tests.live import coreview_command, log_tail, server_env, serving


def tls_cert(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*coreview_command(), "tls-cert", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(),
        check=False,
    )


def test_tls_cert_is_private_names_the_hosts_and_is_kept(tmp_path: Path) -> None:
    """The certificate and key are 0600 in a 0700 directory, valid for localhost,
    127.0.0.1 and each --host; a second run refuses to overwrite them, --replace does,
    and a host that is neither a name nor an address is refused with exit 2."""
    data_dir = tmp_path / "var"
    made = tls_cert(data_dir, "--host", "10.77.0.1", "--host", "hall-pc.example")
    assert made.returncode == 0, made.stderr
    folder = data_dir / "tls"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("cert.pem", "key.pem"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert "SHA-256 指纹" in made.stdout
    for host in ("localhost", "127.0.0.1", "10.77.0.1", "hall-pc.example"):
        assert host in made.stdout
    cert = (folder / "cert.pem").read_bytes()
    again = tls_cert(data_dir)
    assert again.returncode == 1 and "--replace" in again.stderr
    assert (folder / "cert.pem").read_bytes() == cert
    assert tls_cert(data_dir, "--replace").returncode == 0
    assert (folder / "cert.pem").read_bytes() != cert
    bad = tls_cert(data_dir, "--replace", "--host", "hall pc/1")
    assert bad.returncode == 2 and "主机名或 IP 地址" in bad.stderr


def test_serve_speaks_https_with_the_generated_certificate(tmp_path: Path) -> None:
    """With tls_cert/tls_key set, serve prints an https:// address and answers over TLS
    to a client that trusts only the generated certificate (HSTS sent, the login
    cookie Secure); a client without that trust is refused, and plain HTTP gets no page."""
    data_dir = tmp_path / "var"
    assert tls_cert(data_dir).returncode == 0
    cert, key = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
    env = {"COREVIEW_TLS_CERT": str(cert), "COREVIEW_TLS_KEY": str(key)}
    with serving(tmp_path, env) as (port, log_path):
        assert f"coreview 已启动：https://127.0.0.1:{port}" in log_tail(log_path)
        trusting = ssl.create_default_context(cafile=str(cert))
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=trusting, timeout=10)
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})
            assert response.getheader("Strict-Transport-Security") == HSTS
            connection.request("GET", "/login")
            response = connection.getresponse()
            response.read()
            cookies = response.headers.get_all("Set-Cookie") or []
            assert cookies and all("Secure" in c for c in cookies)
        finally:
            connection.close()

        stranger = http.client.HTTPSConnection(
            "127.0.0.1", port, context=ssl.create_default_context(), timeout=10
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            stranger.request("GET", "/healthz")
        stranger.close()

        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            with pytest.raises((http.client.HTTPException, ConnectionError)):
                plain.request("GET", "/healthz")
                plain.getresponse().read()
        finally:
            plain.close()


def test_serve_refuses_a_missing_certificate(tmp_path: Path) -> None:
    """A certificate path that does not exist stops the start with a Chinese message and
    exit 2 (not a traceback)."""
    done = subprocess.run(
        [*coreview_command(), "serve", "--data-dir", str(tmp_path / "var")],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(
            {"COREVIEW_TLS_CERT": str(tmp_path / "no.pem"), "COREVIEW_TLS_KEY": str(tmp_path)}
        ),
        check=False,
    )
    assert done.returncode == 2
    assert "配置有误：无法载入 TLS 证书" in done.stderr
    assert "Traceback" not in done.stderr


def test_tls_settings_come_in_pairs_and_make_cookies_secure(tmp_path: Path) -> None:
    """tls_cert without tls_key (or the reverse) is a settings error; with both, cookies
    are Secure whatever secure_cookies says."""
    with pytest.raises(SettingsError):
        load_settings(environ={"COREVIEW_TLS_CERT": "cert.pem"})
    with pytest.raises(SettingsError):
        Settings(tls_key=Path("key.pem"))
    settings = load_settings(environ={"COREVIEW_TLS_CERT": "c.pem", "COREVIEW_TLS_KEY": "k.pem"})
    assert settings.tls and settings.secure_cookies
    assert not Settings().tls and not Settings().secure_cookies


async def test_no_hsts_without_tls(client) -> None:
    """Over plain HTTP (TLS off) no Strict-Transport-Security header is sent: a browser
    would otherwise refuse the site's http:// address for a year."""
    response = await client.get("/login")
    assert response.status == 200
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["Server"] == "coreview"
