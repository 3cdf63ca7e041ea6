"""The CLI pointed at a server that is not the admin API (e.g. the ingress) says so."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.ids import new_deployment_id, new_invocation_id


class _NotAdmin(BaseHTTPRequestHandler):
    """Answers every request 404 in plain text, like an unrelated web server."""

    def answer(self) -> tuple[int, str, bytes]:
        return 404, "text/plain", b"404: Not Found"

    def _reply(self) -> None:
        if int(self.headers.get("content-length") or 0):
            self.rfile.read(int(self.headers["content-length"]))
        status, kind, body = self.answer()
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


class _OurIngress(_NotAdmin):
    """Answers like the ingress: its one route is `POST /{service}/{handler}`, so another method
    on a two-segment path is 405 and any other path 404, both JSON."""

    def answer(self) -> tuple[int, str, bytes]:
        segments = self.path.split("?")[0].strip("/").split("/")
        if len(segments) == 2 and self.command != "POST":
            status, message = 405, f"method {self.command} is not allowed on {self.path}"
        else:
            status, message = 404, f"no route for {self.command} {self.path}"
        return status, "application/json", json.dumps({"message": message}).encode()


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


INV = new_invocation_id()
DP = new_deployment_id()


@pytest.mark.parametrize(
    "verb",
    [
        ["invocations", "list"],
        ["deployments", "list"],
        ["invocations", "describe", INV],
        ["deployments", "describe", DP],
    ],
    ids=" ".join,
)
def test_cli_at_a_server_that_is_not_the_admin_api_says_how_to_point_it_there(
    not_admin_url: str, verb: list[str]
) -> None:
    result = CliRunner().invoke(main, [*verb], env={"PROCESSOR_ADMIN_URL": not_admin_url})
    assert result.exit_code == 1, result.output
    assert f"{not_admin_url} does not look like the admin API" in result.output
    assert "--admin-url" in result.output and "PROCESSOR_ADMIN_URL" in result.output


def test_bulk_verb_at_a_server_that_is_not_the_admin_api_does_not_claim_not_found(
    not_admin_url: str,
) -> None:
    result = CliRunner().invoke(
        main, ["invocations", "pause", INV], env={"PROCESSOR_ADMIN_URL": not_admin_url}
    )
    assert result.exit_code == 1, result.output
    assert f"{INV}: not sent to the admin API" in result.output
    assert "not found" not in result.output.split(":", 2)[1]
