"""Query parameters of the admin API: a single-valued one given twice is a 400 naming it (taking
either value silently would answer another question), and `?status=` may be repeated."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from processor.status import Status
from tests.ui.fakes import FakeCluster, make_view

Client = TestClient[web.Request, web.Application]


async def test_list_with_a_repeated_limit_is_400_naming_the_parameter(client: Client) -> None:
    response = await client.get("/invocations?limit=5&limit=500")
    assert response.status == 400
    message = (await response.json())["message"]
    assert "?limit=" in message and "2 times" in message and "give it once" in message


async def test_list_with_a_repeated_service_is_400(client: Client) -> None:
    response = await client.get("/invocations?service=Checkout&service=Greeter")
    assert response.status == 400
    assert "?service=" in (await response.json())["message"]


async def test_list_with_repeated_status_matches_any_of_them(
    client: Client, cluster: FakeCluster
) -> None:
    paused = cluster.add(make_view(status=Status.PAUSED))
    backing_off = cluster.add(make_view(status=Status.BACKING_OFF))
    cluster.add(make_view(status=Status.RUNNING))
    response = await client.get("/invocations?status=paused&status=backing-off")
    assert response.status == 200, await response.text()
    ids = {row["id"] for row in (await response.json())["invocations"]}
    assert ids == {paused.id, backing_off.id}


async def test_resume_with_two_deployment_options_is_400_and_appends_nothing(
    client: Client, cluster: FakeCluster
) -> None:
    paused = cluster.add(make_view(status=Status.PAUSED))
    response = await client.patch(
        f"/invocations/{paused.id}/resume?deployment=latest&deployment=keep"
    )
    assert response.status == 400
    assert "?deployment=" in (await response.json())["message"]
    assert cluster.commands() == []
    assert cluster.view(paused.id) == paused
