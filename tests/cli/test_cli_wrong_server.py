"""The CLI pointed at a server that is not the admin API (e.g. the ingress) says so."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from processor.cli import main


class _NotAdmin(BaseHTTPRequestHandler):
    """Answers every request 404, like the ingress or any unrelated web server."""

    json_body = False

    def do_GET(self) -> None:
        if self.json_body:
            body = json.dumps({"message": f"no route for GET {self.path}"}).encode()
            kind = "application/json"
        else:
            body, kind = b"404: Not Found", "text/plain"
        self.send_response(404)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _OurIngress(_NotAdmin):
    json_body = True


@pytest.fixture(params=[_NotAdmin, _OurIngress], ids=["other-server", "our-ingress"])
def not_admin_url(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("verb", [["invocations", "list"], ["deployments", "list"]])
def test_cli_at_a_server_that_is_not_the_admin_api_says_how_to_point_it_there(
    not_admin_url: str, verb: list[str]
) -> None:
    result = CliRunner().invoke(main, [*verb], env={"PROCESSOR_ADMIN_URL": not_admin_url})
    assert result.exit_code == 1, result.output
    assert f"{not_admin_url} does not look like the admin API" in result.output
    assert "--admin-url" in result.output and "PROCESSOR_ADMIN_URL" in result.output
