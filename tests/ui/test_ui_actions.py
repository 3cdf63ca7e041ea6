"""Actions from the web UI go through the admin API's verb path: the fake partition receives the
same commands the JSON routes would propose, rejections are shown with the API's message, nothing
is proposed for a malformed id or an unresolvable deployment, and bulk actions confirm first."""

from __future__ import annotations

import dataclasses
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from processor.api.ui import PAGE_SIZE
from processor.api.ui_format import VERB_STATUSES
from processor.cli.invocations_cmd import VERBS as CLI_VERBS
from processor.commands import Cancel, Kill, Pause, Purge, Resume
from processor.partition import PartitionNotRunning
from processor.registry import Registry
from processor.status import Status
from tests.ui.fakes import FakeCluster, discovery_server, make_view

Client = TestClient[web.Request, web.Application]


async def post(client: Client, path: str, data: object, status: int = 200) -> str:
    response = await client.post(path, data=data)
    text = await response.text()
    assert response.status == status, text
    return text


async def test_pause_from_the_invocation_page_proposes_pause_and_shows_the_new_status(
    client: Client, cluster: FakeCluster
) -> None:
    view = cluster.add(make_view(status=Status.RUNNING))
    html = await post(client, f"/ui/invocations/{view.id}/pause", {})  # redirect followed
    (command,) = cluster.commands()
    assert isinstance(command, Pause) and command.invocation_id == view.id
    assert "Pause succeeded (202)" in html and 'id="status">paused<' in html
    # Post/redirect/get: reloading the page shows the answer again without proposing again.
    response = await client.post(f"/ui/invocations/{view.id}/pause", allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(f"/ui/invocations/{view.id}?")
    assert "Pause succeeded (200)" in await (await client.get(location)).text()
    assert len(cluster.commands()) == 2


async def test_resume_on_latest_resolves_the_deployment_before_proposing(
    client: Client, cluster: FakeCluster, registry: Registry
) -> None:
    async with discovery_server({"Checkout": ["process"]}) as (uri, served):
        v1, _ = await registry.register(uri)
        served["Checkout"].append("refund")
        v2, _ = await registry.register(uri)
    view = cluster.add(make_view(status=Status.PAUSED, pinned_deployment=v1.id, retry_count=3))
    html = await post(client, f"/ui/invocations/{view.id}/resume", {"deployment": "latest"})
    (command,) = cluster.commands()
    assert isinstance(command, Resume)
    assert (command.invocation_id, command.deployment_id) == (view.id, v2.id)
    assert command.retry_policy is not None
    assert "Resume succeeded (200)" in html and "now running" in html
    assert f'<dd class="mono">{v2.id}</dd>' in html  # the new pin


async def test_resume_of_a_running_invocation_says_it_was_already_running(
    client: Client, cluster: FakeCluster
) -> None:
    view = cluster.add(make_view(status=Status.RUNNING))
    html = await post(client, f"/ui/invocations/{view.id}/resume", {})
    assert "Resume succeeded (200)" in html
    assert "was already running, nothing to resume" in html


async def test_the_page_and_the_json_api_propose_the_same_command(
    client: Client, cluster: FakeCluster, registry: Registry
) -> None:
    async with discovery_server({"Checkout": ["process"]}) as (uri, _):
        deployment, _ = await registry.register(uri)
    first = cluster.add(make_view(status=Status.PAUSED))
    second = cluster.add(make_view(status=Status.PAUSED, invocation_id=None))
    response = await client.patch(f"/invocations/{first.id}/resume?deployment={deployment.id}")
    assert response.status == 200 and await response.json() == {"status": "running"}
    await post(client, f"/ui/invocations/{second.id}/resume", {"deployment": deployment.id})
    # The fake lists commands partition by partition; pick each one out by its invocation id.
    resumes = {c.invocation_id: c for c in cluster.commands() if isinstance(c, Resume)}
    assert set(resumes) == {first.id, second.id}
    by_api, by_page = resumes[first.id], resumes[second.id]
    same = dataclasses.replace(by_page, invocation_id=first.id, request_id=by_api.request_id)
    assert same == by_api


async def test_rejections_show_the_api_message_and_propose_nothing_when_validation_fails(
    client: Client, cluster: FakeCluster, registry: Registry
) -> None:
    async with discovery_server({"Greeter": ["greet"]}) as (uri, _):
        greeter, _ = await registry.register(uri)
    paused = cluster.add(make_view(status=Status.PAUSED))
    html = await post(client, f"/ui/invocations/{paused.id}/resume", {"deployment": greeter.id})
    assert "Resume failed (400)" in html
    assert f"deployment {greeter.id} (" in html and "does not serve service" in html
    assert cluster.commands() == []  # resolved before anything is appended

    completed = cluster.add(make_view(status=Status.COMPLETED))
    html = await post(client, f"/ui/invocations/{completed.id}/pause", {})
    assert "Pause failed (409)" in html and f"invocation {completed.id} is completed" in html
    assert [type(c) for c in cluster.commands()] == [Pause]


async def test_action_on_a_malformed_id_is_a_400_page_and_appends_nothing(
    client: Client, cluster: FakeCluster
) -> None:
    html = await post(client, "/ui/invocations/inv_bad/kill", {}, status=400)
    assert "malformed invocation id" in html
    assert cluster.commands() == []


async def test_purge_from_the_page_returns_to_the_list_saying_so(
    client: Client, cluster: FakeCluster
) -> None:
    view = cluster.add(make_view(status=Status.COMPLETED))
    html = await post(client, f"/ui/invocations/{view.id}/purge", {})
    assert [type(c) for c in cluster.commands()] == [Purge]
    assert f"invocation {view.id} purged" in html and "Purge succeeded (200)" in html
    assert cluster.view(view.id) is None


async def test_cross_site_posts_are_refused(client: Client, cluster: FakeCluster) -> None:
    view = cluster.add(make_view(status=Status.RUNNING))
    for headers in (
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},  # a sandboxed frame
        {"Origin": f"https://{client.host}:{client.port}"},  # same host, other scheme
    ):
        response = await client.post(f"/ui/invocations/{view.id}/kill", headers=headers)
        assert response.status == 403, headers
    assert cluster.commands() == []
    same_origin = {"Origin": f"http://{client.host}:{client.port}"}
    response = await client.post(f"/ui/invocations/{view.id}/kill", headers=same_origin)
    assert response.status == 200 and [type(c) for c in cluster.commands()] == [Kill]


def selection(verb: str, ids: list[str], **extra: str) -> list[tuple[str, str]]:
    return [("verb", verb), *(("id", i) for i in ids), *extra.items()]


async def test_bulk_action_first_confirms_how_many_and_which_statuses_it_applies_to(
    client: Client, cluster: FakeCluster
) -> None:
    statuses = [Status.RUNNING, Status.RUNNING, Status.BACKING_OFF, Status.COMPLETED, Status.PAUSED]
    views = [cluster.add(make_view(status=s)) for s in statuses]
    html = await post(client, "/ui/actions", selection("pause", [v.id for v in views]))
    assert "Pause 3 invocations?" in html
    assert "applies to invocations that are <strong>running, backing-off</strong>" in html
    assert "Of the 5 selected, 3 will be paused (2 running, 1 backing-off)" in html
    assert "skipped: 1 completed, 1 paused" in html
    hidden = re.findall(r'<input type="hidden" name="id" value="([^"]+)">', html)
    assert hidden == [v.id for v in views[:3]]
    assert cluster.commands() == []


async def test_confirmed_bulk_action_runs_the_verb_on_each_and_shows_every_answer(
    client: Client, cluster: FakeCluster
) -> None:
    running = [cluster.add(make_view(status=Status.RUNNING)) for _ in range(3)]
    done = cluster.add(make_view(status=Status.COMPLETED))  # completed meanwhile: a 409
    ids = [v.id for v in running] + [done.id]
    html = await post(client, "/ui/actions", selection("cancel", ids, confirmed="yes"))
    assert sorted(c.invocation_id for c in cluster.commands() if isinstance(c, Cancel)) == sorted(
        ids
    )
    assert "Cancel: 3 canceled, 1 failed" in html
    assert html.count("<td>now running</td>") == 3
    assert f"invocation {done.id} is completed" in html


async def test_bulk_resume_carries_the_chosen_deployment(
    client: Client, cluster: FakeCluster, registry: Registry
) -> None:
    async with discovery_server({"Checkout": ["process"]}) as (uri, _):
        deployment, _ = await registry.register(uri)
    views = [cluster.add(make_view(status=Status.PAUSED)) for _ in range(2)]
    ids = [v.id for v in views]
    confirm = await post(client, "/ui/actions", selection("resume", ids, deployment="latest"))
    assert "Resume 2 invocations?" in confirm and "latest" in confirm
    await post(
        client, "/ui/actions", selection("resume", ids, deployment="latest", confirmed="yes")
    )
    commands = cluster.commands()
    assert len(commands) == 2
    assert all(isinstance(c, Resume) and c.deployment_id == deployment.id for c in commands)


async def test_bulk_action_with_nothing_applicable_or_selected_says_so(
    client: Client, cluster: FakeCluster
) -> None:
    done = cluster.add(make_view(status=Status.COMPLETED))
    html = await post(client, "/ui/actions", selection("pause", [done.id]))
    assert "Nothing to pause" in html and "skipped: 1 completed" in html
    html = await post(client, "/ui/actions", selection("kill", []), status=400)
    assert "No invocation was selected" in html
    assert "unknown action" in await post(client, "/ui/actions", selection("x", []), status=400)
    html = await post(client, "/ui/actions", selection("kill", ["inv_<b>"]), status=400)
    assert "malformed invocation id" in html
    assert cluster.commands() == []


async def test_bulk_back_link_keeps_the_list_filters(client: Client, cluster: FakeCluster) -> None:
    view = cluster.add(make_view(status=Status.RUNNING))
    form = selection("pause", [view.id], back="status=running&service=Checkout")
    html = await post(client, "/ui/actions", form)
    assert 'href="/ui/?status=running&amp;service=Checkout"' in html


async def test_verbs_apply_to_the_same_statuses_as_in_the_cli() -> None:
    assert dict(VERB_STATUSES) == {name: verb.statuses for name, verb in CLI_VERBS.items()}


async def test_registering_a_deployment_from_the_page(client: Client, registry: Registry) -> None:
    async with discovery_server({"Checkout": ["process"]}) as (uri, _):
        html = await post(client, "/ui/deployments", {"uri": uri})
        (deployment,) = registry.list()
        assert f"{uri} registered {deployment.id}" in html and "Register succeeded (201)" in html
        html = await post(client, "/ui/deployments", {"uri": uri})
        assert f"was already registered as {deployment.id}" in html


async def test_registration_errors_are_shown_with_the_uri_kept(
    client: Client, registry: Registry
) -> None:
    html = await post(client, "/ui/deployments", {"uri": "ftp://x"}, status=400)
    assert "must be an http(s) URL" in html and 'value="ftp://x"' in html
    html = await post(client, "/ui/deployments", {"uri": "http://127.0.0.1:1"}, status=400)
    assert 'id="register-error"' in html and "cannot reach deployment" in html
    assert registry.list() == []


async def test_a_stopped_partition_is_a_503_shown_as_a_page_not_json(
    client: Client, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = cluster.add(make_view(status=Status.RUNNING))
    partition = cluster.owner(view.id)

    async def not_running(*args: object, **kwargs: object) -> None:
        raise PartitionNotRunning(f"partition {partition.partition_id} is not running")

    monkeypatch.setattr(partition, "propose", not_running)
    html = await post(client, f"/ui/invocations/{view.id}/pause", {})
    assert "Pause failed (503)" in html and "is not running" in html
    monkeypatch.setattr(partition, "get_view", not_running)
    response = await client.get(f"/ui/invocations/{view.id}")
    assert response.status == 503 and response.content_type == "text/html"
    assert "retry shortly" in await response.text()

    async def broken() -> dict[str, int]:
        raise ZeroDivisionError("a bug in the store")

    monkeypatch.setattr(partition, "count_by_status", broken)
    response = await client.get("/ui/")
    assert response.status == 500 and response.content_type == "text/html"
    assert "internal error while handling GET /ui/" in await response.text()


async def test_admin_api_refuses_state_changes_sent_by_another_site(
    client: Client, cluster: FakeCluster
) -> None:
    # A page on any site can make the operator's browser POST here without a CORS preflight.
    view = cluster.add(make_view(status=Status.RUNNING))
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    response = await client.post(
        "/deployments", data='{"uri": "http://evil.example"}', headers=evil
    )
    assert response.status == 403
    assert "another site" in (await response.json())["message"]
    response = await client.patch(f"/invocations/{view.id}/kill", headers=evil)
    assert response.status == 403
    assert cluster.commands() == []
    # The CLI and scripts send no Origin: unaffected.
    response = await client.patch(f"/invocations/{view.id}/kill")
    assert response.status == 200 and [type(c) for c in cluster.commands()] == [Kill]


async def test_a_banner_written_into_a_link_by_hand_is_not_shown(
    client: Client, cluster: FakeCluster
) -> None:
    # Anyone can send the operator a link; only answers this server gave show as a banner.
    view = cluster.add(make_view(status=Status.RUNNING))
    crafted = "?verb=purge&code=200&message=all+invocations+purged"
    for path in (f"/ui/{crafted}", f"/ui/invocations/{view.id}{crafted}"):
        html = await (await client.get(path)).text()
        assert 'id="flash"' not in html and "all invocations purged" not in html
    response = await client.post(f"/ui/invocations/{view.id}/pause", allow_redirects=False)
    location = response.headers["Location"]
    forged = location.replace("Pause", "Purge").replace("verb=pause", "verb=purge")
    assert 'id="flash"' not in await (await client.get(forged)).text()
    assert 'id="flash"' in await (await client.get(location)).text()


async def test_the_list_links_do_not_carry_the_last_actions_banner(
    client: Client, cluster: FakeCluster
) -> None:
    for _ in range(PAGE_SIZE + 1):
        cluster.add(make_view(status=Status.COMPLETED))
    purged = cluster.add(make_view(status=Status.COMPLETED))
    response = await client.post(f"/ui/invocations/{purged.id}/purge", allow_redirects=False)
    html = await (await client.get(response.headers["Location"])).text()
    assert "Purge succeeded (200)" in html
    assert "page=2" in html
    assert "sig=" not in html and "sig%3D" not in html and "verb=purge" not in html
