"""Admin API and UI bodies the server cannot read: a 400 that says why, never a 500."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]


async def test_register_body_that_is_not_a_json_object_is_a_400(client: Client) -> None:
    for body, why in (
        (b"[" * 100_000, "must be JSON"),
        (b'["http://h:1"]', "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ):
        response = await client.post(
            "/deployments", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400, body[:20]
        assert why in (await response.json())["message"]
    response = await client.post(
        "/deployments",
        data=b'{"uri": "http://h:1"}',
        headers={"Content-Type": "application/json; charset=latin-999"},
    )
    assert response.status == 400


async def test_ui_form_that_is_not_utf8_is_a_400_page(client: Client) -> None:
    response = await client.post(
        "/ui/actions",
        data=b"verb=pause&id=\xff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    assert "cannot read the submitted form" in await response.text()
