"""The raw HTTP ceiling of the engine's path: a trivial aiohttp server that, for every request,
makes one HTTP call to the deployment (the same attempt request the invoker sends) and answers
the handler's output. No log, no state, no fsync: what the engine's HTTP plumbing alone costs.
It runs on the same event loop as the daemon (uvloop) and calls the deployment with the same
HTTP client as the daemon's invoker (processor/leader/http_client.py), so the ratio compares like
with like.

    python bench/baseline_server.py --deployment http://127.0.0.1:9080 --port 0
    # prints "listening on http://127.0.0.1:PORT"; then POST /{service}/{handler} with a JSON body

The e2e benchmark drives it with the same load generator as the daemon, in the same run, and
reports the daemon's throughput as a ratio of this ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal

import msgpack
from aiohttp import web

from processor.eventloop import run_asyncio
from processor.leader.http_client import HttpClient

CLIENT = web.AppKey("client", HttpClient)
DEPLOYMENT = web.AppKey("deployment", str)
_ids = itertools.count()


async def call(request: web.Request) -> web.Response:
    service, handler = request.match_info["service"], request.match_info["handler"]
    body = await request.read()
    attempt = {
        "invocation_id": f"inv_baseline{next(_ids)}",
        "attempt": 1,
        "journal": [{"kind": "input", "value": body, "headers": {}, "appended_at": 0}],
        "seed": 1,
    }
    url = f"{request.app[DEPLOYMENT]}/invoke/{service}/{handler}"
    packed = msgpack.packb(attempt, use_bin_type=True)
    async with await request.app[CLIENT].post(url, packed, "application/x-msgpack") as resp:
        unpacker = msgpack.Unpacker(raw=False)
        while chunk := await resp.read_chunk():
            unpacker.feed(chunk)
        final: dict[str, object] = {}
        for frame in unpacker:
            final = frame
    value = final.get("value")
    if final.get("t") != "output" or not isinstance(value, bytes):
        return web.json_response({"message": f"unexpected final frame {final!r}"}, status=500)
    return web.Response(body=value, content_type="application/json")


async def serve(deployment: str, host: str, port: int) -> None:
    app = web.Application()
    app[DEPLOYMENT] = deployment.rstrip("/")
    app.router.add_post("/{service}/{handler}", call)
    client = app[CLIENT] = HttpClient()
    try:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        print(f"listening on http://{host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="raw HTTP ceiling for the e2e benchmark")
    parser.add_argument("--deployment", required=True, help="base URL of the deployment")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    run_asyncio(serve(args.deployment, args.host, args.port))


if __name__ == "__main__":
    main()
