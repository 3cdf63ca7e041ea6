"""Times far in the future (a deployment's sleep entry carries any 64-bit `wake_up_at`) are shown
without failing the page or the JSON answer: Python's datetime stops at year 9999."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from processor.actions import ScheduleTimer
from processor.commands import TimerKey, TimerKind
from processor.replay import describe_action
from processor.status import Status
from tests.ui.fakes import FakeCluster, make_view

Client = TestClient[web.Request, web.Application]

FAR = 2**62  # ms: year ~146 million


async def test_describe_and_page_of_an_invocation_sleeping_until_far_in_the_future(
    client: Client, cluster: FakeCluster
) -> None:
    view = cluster.add(
        make_view("Checkout", "process", Status.SUSPENDED, awaiting=(1,), journal_length=2),
        journal=[
            (0, {"kind": "input", "value": b"{}"}, 1_000),
            (1, {"kind": "sleep", "completion_id": 1, "wake_up_at": FAR}, 2_000),
        ],
    )
    response = await client.get(f"/invocations/{view.id}")
    body = await response.json()
    assert response.status == 200, body
    assert str(FAR) in body["journal"][1]["wake_up_at"]
    response = await client.get(f"/ui/invocations/{view.id}")
    assert response.status == 200, await response.text()
    assert str(FAR) in await response.text()


async def test_list_with_a_retry_time_far_in_the_future(
    client: Client, cluster: FakeCluster
) -> None:
    view = cluster.add(make_view("Checkout", "process", Status.BACKING_OFF, next_retry_at=FAR))
    response = await client.get("/invocations")
    body = await response.json()
    assert response.status == 200, body
    assert [row["id"] for row in body["invocations"]] == [view.id]
    response = await client.get("/ui/")
    assert response.status == 200, await response.text()


def test_replay_trace_describes_a_timer_far_in_the_future() -> None:
    line = describe_action(ScheduleTimer("inv_x", TimerKey(TimerKind.SLEEP, 1), FAR))
    assert str(FAR) in line
