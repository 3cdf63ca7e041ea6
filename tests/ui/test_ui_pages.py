"""Rendering of the web UI's pages against fake partitions: the list (counts, filters, order,
paging, auto-refresh marker), the invocation page (header, failure, timeline, buttons), the
deployments page, and the error pages."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient

from processor.api.ui import PAGE_SIZE
from processor.registry import Registry
from processor.state_machine.types import Event
from processor.status import Failure, Result, Status
from processor.status_colors import FAILED_COMPLETION, STATUS_COLORS
from tests.ui.fakes import FakeCluster, discovery_server, make_view

Client = TestClient[web.Request, web.Application]


async def page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "text/html"
    return text


def row_ids(html: str) -> list[str]:
    return re.findall(r'name="id" value="(inv_[0-9A-Za-z]+)" form="bulk"', html)


def count_of(html: str, status: str) -> tuple[str, int]:
    match = re.search(rf'class="count st-{status}([^"]*)"[^>]*>\s*<span class="n">(\d+)<', html)
    assert match, status
    return match.group(1), int(match.group(2))


async def test_list_shows_counts_per_status_with_paused_and_backing_off_standing_out(
    client: Client, cluster: FakeCluster
) -> None:
    cluster.add(make_view(status=Status.PAUSED))
    cluster.add(make_view(status=Status.PAUSED))
    cluster.add(make_view(status=Status.BACKING_OFF))
    cluster.add(make_view(status=Status.COMPLETED))
    html = await page(client, "/ui/")
    assert count_of(html, "paused") == (" alert", 2)
    assert count_of(html, "backing-off") == (" alert", 1)
    assert count_of(html, "completed") == ("", 1)
    assert count_of(html, "running") == ("", 0)


async def test_list_is_newest_first_with_target_status_retries_failure_and_pin(
    client: Client, cluster: FakeCluster
) -> None:
    old = cluster.add(
        make_view(
            "Checkout",
            "process",
            Status.PAUSED,
            age_s=3600,
            retry_count=2,
            last_failure=Failure(500, "ship failed\nsecond line"),
            pinned_deployment="dp_0000000000000000000001",
        )
    )
    new = cluster.add(make_view("Greeter", "greet", Status.RUNNING, age_s=5))
    html = await page(client, "/ui/")
    assert row_ids(html) == [new.id, old.id]
    assert "Checkout/process" in html and "Greeter/greet" in html
    assert ">500 ship failed</td>" in html  # one line: the first line of the message
    assert "dp_0000000000000000000001" in html
    assert ">1h</time>" in html and re.search(r">5\.\ds</time>", html)


async def test_list_filters_by_status_service_handler_deployment_and_id_text(
    client: Client, cluster: FakeCluster
) -> None:
    paused = cluster.add(
        make_view(
            "Checkout", "process", Status.PAUSED, pinned_deployment="dp_0000000000000000000001"
        )
    )
    running = cluster.add(make_view("Checkout", "slow", Status.RUNNING))
    greeter = cluster.add(make_view("Greeter", "greet", Status.PAUSED))
    assert set(row_ids(await page(client, "/ui/?status=paused"))) == {paused.id, greeter.id}
    assert set(row_ids(await page(client, "/ui/?service=Checkout"))) == {paused.id, running.id}
    assert row_ids(await page(client, "/ui/?service=Checkout&handler=slow")) == [running.id]
    deployment = "/ui/?deployment=dp_0000000000000000000001"
    assert row_ids(await page(client, deployment)) == [paused.id]
    assert row_ids(await page(client, f"/ui/?q={greeter.id[5:20].lower()}")) == [greeter.id]
    assert row_ids(await page(client, f"/ui/?q={running.id}")) == [running.id]
    assert row_ids(await page(client, f"/ui/?q={running.id}&status=paused")) == []


async def test_list_filter_errors_of_the_admin_api_are_shown(client: Client) -> None:
    html = await page(client, "/ui/?deployment=dp_nope", status=400)
    assert "malformed deployment id" in html


async def test_list_pages_newest_first(client: Client, cluster: FakeCluster) -> None:
    views = [cluster.add(make_view(age_s=1000 - i)) for i in range(PAGE_SIZE * 2 + 7)]
    newest_first = [v.id for v in reversed(views)]
    first = await page(client, "/ui/?status=running")
    assert row_ids(first) == newest_first[:PAGE_SIZE]
    assert "status=running&amp;page=2" in first and "Newer" not in first
    third = await page(client, "/ui/?status=running&page=3")
    assert row_ids(third) == newest_first[2 * PAGE_SIZE :]
    assert "Older" not in third and "page=2" in third


async def test_list_refreshes_itself_only_while_something_is_in_flight(
    client: Client, cluster: FakeCluster
) -> None:
    cluster.add(make_view(status=Status.PAUSED))
    assert "data-refresh-ms" not in await page(client, "/ui/")
    for status in (Status.SCHEDULED, Status.SUSPENDED):
        view = cluster.add(make_view(status=status))
        assert "data-refresh-ms" in await page(client, "/ui/")
        del cluster.owner(view.id).views[view.id]
    cluster.add(make_view(status=Status.RUNNING))
    assert "data-refresh-ms" in await page(client, "/ui/")


async def test_empty_list_tells_how_to_start(client: Client) -> None:
    html = await page(client, "/ui/")
    assert "No invocations yet" in html


async def test_invocation_page_shows_header_failure_and_one_timeline_in_time_order(
    client: Client, cluster: FakeCluster
) -> None:
    failure = Failure(500, "ship failed: carrier down", "Traceback:\n  at ship()", 3, 2)
    view = cluster.add(
        make_view(
            "Checkout",
            "process",
            Status.PAUSED,
            attempt=3,
            retry_count=2,
            idempotency_key="order-42",
            pinned_deployment="dp_0000000000000000000001",
            last_attempt_deployment="dp_0000000000000000000002",
            last_failure=failure,
            journal_length=3,
        ),
        journal=[
            (0, {"kind": "input", "value": b'{"order": 42}'}, 1_000),
            (1, {"kind": "run", "name": "reserve", "value": b'"ok"'}, 2_000),
            (
                2,
                {"kind": "run", "name": "charge", "failure": {"code": 402, "message": "no"}},
                4_000,
            ),
        ],
        events=[
            Event(0, "created", 1_000, {}),
            Event(
                1,
                "transient-error",
                3_000,
                {"code": 500, "message": "ship failed", "attempt": 1, "count": 2},
            ),
            Event(2, "paused", 5_000, {"failure": {"code": 500, "message": "ship failed"}}),
        ],
    )
    html = await page(client, f"/ui/invocations/{view.id}")
    for text in (
        "Checkout/process",
        "order-42",
        "dp_0000000000000000000001",
        "dp_0000000000000000000002",
        "2 of 70",
        'id="status">paused<',
        "ship failed: carrier down",
        "Traceback:\n  at ship()",
        "attempt 3",
        "at journal index 2",
    ):
        assert text in html, text
    kinds = re.findall(r'<span class="kind (journal|event)">([a-z-]+)</span>', html)
    assert kinds == [
        ("journal", "input"),
        ("event", "created"),
        ("journal", "run"),
        ("event", "transient-error"),
        ("journal", "run"),
        ("event", "paused"),
    ]
    assert "13 B" in html and "reserve" in html and "402 no" in html and "×2" in html
    assert "data-refresh-ms" not in html


def enabled_buttons(html: str) -> set[str]:
    return {m for m in re.findall(r'id="btn-([a-z]+)"(?! disabled)', html)}


async def test_invocation_buttons_are_enabled_by_status(
    client: Client, cluster: FakeCluster
) -> None:
    expected = {
        Status.RUNNING: {"pause", "cancel", "kill"},
        Status.BACKING_OFF: {"pause", "resume", "cancel", "kill"},
        Status.PAUSED: {"resume", "cancel", "kill"},
        Status.SUSPENDED: {"resume", "cancel", "kill"},
        Status.SCHEDULED: {"cancel", "kill"},
        Status.COMPLETED: {"purge"},
    }
    for status, buttons in expected.items():
        view = cluster.add(make_view(status=status))
        html = await page(client, f"/ui/invocations/{view.id}")
        assert enabled_buttons(html) == buttons, status


async def test_resume_offers_keep_latest_and_the_deployments_serving_the_service(
    client: Client, cluster: FakeCluster, registry: Registry
) -> None:
    async with discovery_server({"Checkout": ["process"]}) as (uri, served):
        v1, _ = await registry.register(uri)
        served["Checkout"].append("refund")  # same URI, new services: a new version
        v2, _ = await registry.register(uri)
    async with discovery_server({"Greeter": ["greet"]}) as (other_uri, _):
        other, _ = await registry.register(other_uri)
    view = cluster.add(make_view(status=Status.PAUSED, pinned_deployment=v1.id))
    html = await page(client, f"/ui/invocations/{view.id}")
    select = html[html.index('id="resume-deployment"') :].split("</select>")[0]
    options = re.findall(r'<option value="([^"]+)"', select)
    assert options == ["keep", "latest", v2.id, v1.id]
    assert f"latest ({v2.id}" in select and f"keep ({v1.id})" in select
    assert other.id not in select


async def test_invocation_page_refreshes_while_in_flight(
    client: Client, cluster: FakeCluster
) -> None:
    view = cluster.add(make_view(status=Status.BACKING_OFF, next_retry_at=10**13))
    assert "data-refresh-ms" in await page(client, f"/ui/invocations/{view.id}")


async def test_completed_invocation_shows_its_result(client: Client, cluster: FakeCluster) -> None:
    ok = cluster.add(make_view(status=Status.COMPLETED, result=Result(value=b'{"a": 1}')))
    assert "value, 8 B" in await page(client, f"/ui/invocations/{ok.id}")
    bad = cluster.add(
        make_view(status=Status.COMPLETED, result=Result(failure=Failure(409, "killed")))
    )
    html = await page(client, f"/ui/invocations/{bad.id}")
    assert "409 killed" in html and "st-completed-failed" in html


async def test_malformed_and_unknown_ids_are_clear_error_pages(
    client: Client, cluster: FakeCluster
) -> None:
    html = await page(client, "/ui/invocations/inv_short", status=400)
    assert "malformed invocation id" in html and "33 characters" in html
    unknown = make_view()
    html = await page(client, f"/ui/invocations/{unknown.id}", status=404)
    assert f"invocation {unknown.id} not found" in html


async def test_unknown_page_is_an_html_404_and_root_redirects_to_the_ui(client: Client) -> None:
    assert "there is no page at /ui/nowhere" in await page(client, "/ui/nowhere", status=404)
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/ui/"
    # Addresses a person types: without the slash, or the list's own name.
    response = await client.get("/ui", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/ui/"
    response = await client.get("/ui/invocations?status=paused", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/ui/?status=paused"


async def test_deployments_page_lists_services_handlers_and_pinned_invocations(
    client: Client, cluster: FakeCluster, registry: Registry
) -> None:
    async with discovery_server({"Checkout": ["process", "slow"], "Greeter": ["greet"]}) as (
        uri,
        _,
    ):
        deployment, _ = await registry.register(uri)
    cluster.add(make_view(pinned_deployment=deployment.id))
    cluster.add(make_view(pinned_deployment=deployment.id, status=Status.PAUSED))
    cluster.add(make_view())
    html = await page(client, "/ui/deployments")
    assert deployment.id in html and uri in html
    assert "<strong>Checkout</strong>: process, slow" in html
    assert "<strong>Greeter</strong>: greet" in html
    assert f'href="/ui/?deployment={deployment.id}">2</a>' in html


async def test_status_colours_are_the_shared_map(client: Client) -> None:
    response = await client.get("/ui/status.css")
    css = await response.text()
    for status, color in STATUS_COLORS.items():
        assert f".st-{status} {{ --c: {color.css}; }}" in css
    assert f".st-completed-failed {{ --c: {FAILED_COMPLETION.css}; }}" in css


async def test_pages_carry_security_headers_and_static_files_are_served(client: Client) -> None:
    response = await client.get("/ui/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("static/ui.css", "static/ui.js"):
        assert (await client.get(f"/ui/{asset}")).status == 200


async def test_list_shows_how_a_completed_invocation_ended_not_an_earlier_failure(
    client: Client, cluster: FakeCluster
) -> None:
    fixed = make_view(
        status=Status.COMPLETED,
        last_failure=Failure(500, "v1 bug in ship", attempt=3),
        result=Result(value=b'{"ok": true}'),
    )
    killed = make_view(status=Status.COMPLETED, result=Result(failure=Failure(409, "killed")))
    cluster.add(fixed)
    cluster.add(killed)
    html = await page(client, "/ui/")
    assert "v1 bug in ship" not in html
    assert "409 killed" in html


async def test_a_page_asked_with_the_wrong_method_is_a_405_naming_the_right_ones(
    client: Client,
) -> None:
    response = await client.put("/ui/deployments")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD, POST"
    assert "/ui/deployments does not take PUT" in await response.text()
    response = await client.post("/ui/")
    assert response.status == 405 and response.headers["Allow"] == "GET, HEAD"
    assert "there is no page at /ui/nowhere" in await page(client, "/ui/nowhere", status=404)
