"""What the ingress keeps of a request's headers in the invocation's input entry."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from .ingress_support import running_ingress


async def test_credentials_are_not_stored_in_the_journal_other_headers_are(tmp_path: Path) -> None:
    async with running_ingress(tmp_path) as env, aiohttp.ClientSession() as http:
        async with http.post(
            f"http://127.0.0.1:{env.port}/Greeter/greet/send",
            data=b'"Ada"',
            headers={
                "Authorization": "Bearer secret",
                "Cookie": "session=secret",
                "Proxy-Authorization": "Basic secret",
                "X-Request-Source": "test",
            },
        ) as response:
            assert response.status == 202
            invocation_id = (await response.json())["invocationId"]
        journal = await env.partition.get_journal(invocation_id)
        _, input_entry, _ = journal[0]
        headers = input_entry["headers"]
        assert headers.get("x-request-source") == "test"
        for secret in ("authorization", "cookie", "proxy-authorization"):
            assert secret not in headers
