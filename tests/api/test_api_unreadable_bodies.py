"""Bodies the server cannot read are the sender's error: a 400 that says why, never a 500."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from .ingress_support import _assert_rejected, running_ingress


async def test_gzip_encoded_body_that_is_not_gzip_is_a_400(tmp_path: Path) -> None:
    async with running_ingress(tmp_path) as env:
        await _assert_rejected(
            env,
            b"POST /Greeter/greet/send HTTP/1.1\r\nContent-Encoding: gzip\r\n",
            "cannot read the request body",
            "Content-Encoding",
        )


async def test_405_says_which_methods_the_path_takes(tmp_path: Path) -> None:
    async with (
        running_ingress(tmp_path) as env,
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{env.port}/Greeter/greet") as response,
    ):
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        assert "method GET is not allowed" in (await response.json())["message"]
