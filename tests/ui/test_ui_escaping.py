"""Hostile strings (ids, service and handler names, failure messages, stack traces, deployment URIs,
query parameters) appear escaped on every page, never as markup."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from aiohttp.test_utils import TestClient

from processor.api.ui import UI_KEY
from processor.registry import Registry
from processor.state_machine.types import Event
from processor.status import Failure, Status
from tests.ui.fakes import FakeCluster, discovery_server, make_view

Client = TestClient[web.Request, web.Application]

EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
QUOTE = '" onmouseover="alert(2)'
# Names and ids cannot contain '/' (discovery rejects it; a path segment ends there).
IMG = "<img src=x onerror=alert(3)>"
IMG_ESCAPED = "&lt;img src=x onerror=alert(3)&gt;"


async def html_of(
    client: Client, path: str, status: int = 200, data: dict[str, str] | None = None
) -> str:
    if data is None:
        response = await client.get(path)
    else:
        response = await client.post(path, data=data)
    text = await response.text()
    assert response.status == status, text
    return text


def assert_safe(html: str) -> None:
    assert EVIL not in html
    assert "<script>alert" not in html
    assert 'onmouseover="alert' not in html
    assert "<img" not in html


async def test_hostile_names_messages_and_stack_traces_are_escaped(
    client: Client, cluster: FakeCluster, registry: Registry
) -> None:
    services = {f"Shop{IMG}": [f"buy{IMG}"]}
    async with discovery_server(services) as (uri, _):
        deployment, _ = await registry.register(f"{uri}/{EVIL}")
    failure = Failure(500, f"boom {EVIL}{QUOTE}", f"Traceback {EVIL}", 1, 0)
    view = cluster.add(
        make_view(
            f"Shop{IMG}",
            f"buy{IMG}",
            Status.PAUSED,
            last_failure=failure,
            idempotency_key=EVIL,
            pinned_deployment=deployment.id,
        ),
        journal=[(0, {"kind": "run", "name": EVIL, "failure": {"code": 1, "message": EVIL}}, 1)],
        events=[Event(0, "paused", 2, {"failure": {"code": 500, "message": EVIL}, "x": EVIL})],
    )
    pages = {
        "list": await html_of(client, "/ui/"),
        "detail": await html_of(client, f"/ui/invocations/{view.id}"),
        "deployments": await html_of(client, "/ui/deployments"),
        "confirm": await html_of(client, "/ui/actions", data={"verb": "kill", "id": view.id}),
    }
    for name, html in pages.items():
        assert_safe(html)
        assert IMG_ESCAPED in html, name  # the service name
        assert name == "confirm" or EVIL_ESCAPED in html, name
    assert (
        "boom &lt;script&gt;alert(1)&lt;/script&gt;&#34; onmouseover=&#34;alert(2)"
        in (pages["list"])
    )  # inside the title attribute of the one-line failure
    assert f"Traceback {EVIL_ESCAPED}" in pages["detail"]
    assert f"/{EVIL_ESCAPED}" in pages["deployments"]  # the URI
    assert f"Shop{IMG_ESCAPED}</strong>: buy{IMG_ESCAPED}" in pages["deployments"]


async def test_hostile_ids_and_query_parameters_are_escaped(
    client: Client, cluster: FakeCluster
) -> None:
    html = await html_of(client, f"/ui/invocations/inv_{quote(IMG)}", status=400)
    assert_safe(html)
    assert "malformed invocation id" in html and IMG_ESCAPED in html

    filters = f"/ui/?service={quote(EVIL)}&handler={quote(QUOTE)}&q={quote(EVIL)}"
    html = await html_of(client, filters)
    assert_safe(html)
    assert f'value="{EVIL_ESCAPED}"' in html

    # A banner shows only for an answer this server signed (see `ui_flash`): sign one.
    flash = "?" + client.app[UI_KEY].flash.query(EVIL, 409, EVIL + QUOTE)
    view = cluster.add(make_view())
    for path in (f"/ui/{flash}", f"/ui/invocations/{view.id}{flash}", f"/ui/deployments{flash}"):
        html = await html_of(client, path)
        assert_safe(html)
        assert EVIL_ESCAPED in html

    html = await html_of(client, f"/ui/{quote(IMG)}", status=404)
    assert_safe(html)

    data = {"verb": "pause", "id": view.id, "back": f'x"><a href="javascript:{EVIL}'}
    html = await html_of(client, "/ui/actions", data=data)
    assert_safe(html)
    assert 'href="javascript' not in html

    html = await html_of(client, "/ui/actions", status=400, data={"verb": "kill", "id": EVIL})
    assert_safe(html)
    html = await html_of(client, "/ui/actions", status=400, data={"verb": EVIL})
    assert_safe(html)
    html = await html_of(client, "/ui/deployments", status=400, data={"uri": f"http://{EVIL}"})
    assert_safe(html)
    assert cluster.commands() == []
