"""The invoker's HTTP client over TLS: `https://` deployments (a self-signed certificate made with
the `openssl` command; the CI installs it when missing)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from processor.leader.http_client import ConnectFailed, HttpClient, HttpError
from tests.leader.test_http_client import OK_HEAD, on_loop, read_all, read_request

__all__ = ["on_loop"]  # the fixture, re-used: every test runs on uvloop and the stdlib loop


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for 127.0.0.1 and localhost, self-signed."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "the TLS tests need the openssl command (apt-get install openssl)"
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def tls_server(cert: Path, key: Path, connections: list[int]) -> tuple[asyncio.Server, str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head, body = await read_request(reader)
                assert head.startswith(b"POST /invoke/S/h HTTP/1.1\r\n")
                writer.write(OK_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    return server, f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_https_deployment_is_called_over_tls_and_its_connection_reused(
    on_loop: Any, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate

    async def main() -> None:
        connections: list[int] = []
        server, url = await tls_server(cert, key, connections)
        client = HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
        try:
            for body in (b"one", b"two"):
                response = await client.post(url + "/invoke/S/h", body, "x/y")
                assert response.status == 200
                assert await read_all(response) == body
                response.release_when_done()
            assert len(connections) == 1  # kept alive and pooled, as over plain HTTP
        finally:
            await client.close()
            server.close()

    on_loop(main())


def test_untrusted_certificate_fails_the_connection_naming_the_reason(
    on_loop: Any, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate

    async def main() -> None:
        server, url = await tls_server(cert, key, [])
        client = HttpClient(ssl_context=ssl.create_default_context())  # system CAs only
        try:
            with pytest.raises(ConnectFailed, match="TLS certificate not trusted"):
                await client.post(url + "/invoke/S/h", b"x", "x/y")
        finally:
            await client.close()
            server.close()

    on_loop(main())


def test_ssl_cert_file_from_the_environment_is_trusted(
    on_loop: Any, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenSSL's own variable: how an operator trusts a private CA for https deployments.
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    async def main() -> None:
        server, url = await tls_server(cert, key, [])
        client = HttpClient()
        try:
            response = await client.post(url + "/invoke/S/h", b"x", "x/y")
            assert response.status == 200 and await read_all(response) == b"x"
        finally:
            await client.close()
            server.close()

    on_loop(main())


def test_other_schemes_are_refused(on_loop: Any) -> None:
    async def main() -> None:
        client = HttpClient()
        with pytest.raises(HttpError, match=r"only http:// and https:// URLs"):
            await client.post("ftp://example.invalid/", b"", "x/y")
        await client.close()

    on_loop(main())
