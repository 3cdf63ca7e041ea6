"""The deployment registry against discovery servers on loopback."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiohttp import web

from processor.ids import new_deployment_id
from processor.registry import (
    RegistrationError,
    Registry,
    ResumeRejected,
    ResumeTarget,
    resolve_resume_deployment,
    validate_deployment_uri,
)
from processor.retry import MAX_ATTEMPTS_LIMIT, RetryPolicy
from processor.status import InvocationView, Status


def doc(*services: dict[str, Any]) -> dict[str, Any]:
    return {"protocol": 1, "services": list(services)}


GREETER = {"name": "Greeter", "handlers": [{"name": "greet"}]}
CHECKOUT = {
    "name": "Checkout",
    "retry_policy": {"max-attempts": 3, "initial-interval": "20ms"},
    "handlers": [
        {"name": "checkout", "retry_policy": {"initial-interval": "50ms"}},
        {"name": "refund"},
    ],
}


class Discovery:
    """A discovery endpoint whose answer the test changes."""

    def __init__(self, answer: Any, as_json: bool = False, status: int = 200) -> None:
        self.answer = answer
        self.as_json = as_json
        self.status = status

    async def handle(self, _: web.Request) -> web.Response:
        if self.as_json:
            return web.Response(
                status=self.status, text=json.dumps(self.answer), content_type="application/json"
            )
        body = msgpack.packb(self.answer, use_bin_type=True)
        return web.Response(status=self.status, body=body, content_type="application/x-msgpack")


@asynccontextmanager
async def discovery_server(d: Discovery) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/discover", d.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_register_stores_the_deployment_and_survives_reopen(tmp_path: Path) -> None:
    d = Discovery(doc(GREETER, CHECKOUT))
    registry = Registry(tmp_path / "deployments.db")
    async with discovery_server(d) as uri:
        deployment, created = await registry.register(uri + "/")
    assert created and deployment.id.startswith("dp_") and deployment.uri == uri
    assert set(deployment.services) == {"Greeter", "Checkout"}
    assert deployment.services["Checkout"].handlers == {
        "checkout": {"initial-interval": "50ms"},
        "refund": None,
    }
    registry.close()
    reopened = Registry(tmp_path / "deployments.db")
    assert reopened.list() == [deployment]
    assert reopened.get(deployment.id) == deployment
    assert reopened.latest_for("Greeter") == deployment
    assert deployment.to_json()["services"][0]["name"] == "Greeter"


async def test_discovery_answer_in_json_is_accepted(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "deployments.db")
    async with discovery_server(Discovery(doc(GREETER), as_json=True)) as uri:
        _, created = await registry.register(uri)
    assert created and registry.handler_exists("Greeter", "greet")


async def test_registering_the_same_uri_with_same_services_returns_the_existing_one(
    tmp_path: Path,
) -> None:
    registry = Registry(tmp_path / "deployments.db")
    async with discovery_server(Discovery(doc(GREETER))) as uri:
        first, created1 = await registry.register(uri)
        again, created2 = await registry.register(uri)
    assert (created1, created2) == (True, False)
    assert again == first and len(registry.list()) == 1


async def test_same_uri_with_different_services_is_a_new_version(tmp_path: Path) -> None:
    d = Discovery(doc(GREETER))
    registry = Registry(tmp_path / "deployments.db")
    async with discovery_server(d) as uri:
        v1, _ = await registry.register(uri)
        d.answer = doc({"name": "Greeter", "handlers": [{"name": "greet"}, {"name": "wave"}]})
        v2, created = await registry.register(uri)
    assert created and v2.id != v1.id
    assert registry.latest_for("Greeter") == v2
    assert [d.id for d in registry.list()] == [v2.id, v1.id]  # newest first


async def test_handler_only_an_older_deployment_serves_is_not_invokable_and_the_message_says_why(
    tmp_path: Path,
) -> None:
    d = Discovery(doc({"name": "Greeter", "handlers": [{"name": "greet"}, {"name": "wave"}]}))
    registry = Registry(tmp_path / "deployments.db")
    async with discovery_server(d) as uri:
        v1, _ = await registry.register(uri)
        d.answer = doc(GREETER)  # the new version dropped `wave`
        v2, _ = await registry.register(uri)
    assert registry.handler_exists("Greeter", "greet")
    assert not registry.handler_exists("Greeter", "wave")
    message = registry.unknown_target_message("Greeter", "wave")
    assert f"latest deployment of service 'Greeter', {v2.id}" in message, message
    assert "has no handler 'wave' (it has greet)" in message, message
    assert f"the older {v1.id} serving it is not used" in message, message
    assert "processor deployments register" in message, message
    unknown = registry.unknown_target_message("Nowhere", "run")
    assert unknown.startswith("no registered deployment serves Nowhere/run;"), unknown
    for typo in ("greeter", "Greter"):
        message = registry.unknown_target_message(typo, "greet")
        assert "did you mean Greeter/greet?" in message and "case-sensitive" in message, message


async def test_latest_for_is_the_most_recent_deployment_serving_the_service(
    tmp_path: Path,
) -> None:
    registry = Registry(tmp_path / "deployments.db")
    async with (
        discovery_server(Discovery(doc(GREETER))) as a,
        discovery_server(Discovery(doc(CHECKOUT))) as b,
        discovery_server(Discovery(doc(GREETER))) as c,
    ):
        da, _ = await registry.register(a)
        db, _ = await registry.register(b)
        assert registry.latest_for("Greeter") == da
        dc, _ = await registry.register(c)
    assert registry.latest_for("Greeter") == dc
    assert registry.latest_for("Checkout") == db
    assert registry.latest_for("Nope") is None
    assert registry.serves(da.id, "Greeter") and not registry.serves(da.id, "Checkout")
    assert not registry.serves("dp_missing", "Greeter")
    assert registry.handler_exists("Checkout", "refund")
    assert not registry.handler_exists("Checkout", "greet")
    assert not registry.handler_exists("Nope", "greet")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"protocol": 2, "services": [GREETER]}, "unsupported protocol 2"),
        ({"services": [GREETER]}, "unsupported protocol None"),
        (doc(), "at least one service"),
        (doc({"name": "", "handlers": [{"name": "x"}]}), "services[0].name must be a non-empty"),
        (doc({"name": 7, "handlers": [{"name": "x"}]}), "services[0].name must be a non-empty"),
        (doc({"name": "A", "handlers": []}), "service 'A' must list at least one handler"),
        (doc({"name": "A", "handlers": [{"name": None}]}), "handlers[0].name must be a non-empty"),
        (doc({"name": "A", "handlers": [{"name": "h"}, {"name": "h"}]}), "handler 'h' twice"),
        (doc(GREETER, GREETER), "service 'Greeter' is listed twice"),
        (
            doc({"name": "A", "handlers": [{"name": "h", "retry_policy": {"max-attempts": 0}}]}),
            "invalid retry_policy of handler A/h",
        ),
        (
            doc(
                {
                    "name": "A",
                    "retry_policy": {"exponentiation-factor": float("nan")},
                    "handlers": [{"name": "h"}],
                }
            ),
            "'exponentiation-factor' must be a finite number >= 1",
        ),
        (
            doc(
                {
                    "name": "A",
                    "retry_policy": {"max-attempts": 1 << 63},
                    "handlers": [{"name": "h"}],
                }
            ),
            "'max-attempts' must be an integer from 1 to 2147483647",
        ),
        (
            doc({"name": "A", "retry_policy": {"bogus": 1}, "handlers": [{"name": "h"}]}),
            "unknown retry policy key 'bogus'",
        ),
        ([1, 2], "must be a map"),
    ],
)
async def test_invalid_discovery_answer_is_rejected_and_nothing_stored(
    tmp_path: Path, answer: Any, expected: str
) -> None:
    registry = Registry(tmp_path / "deployments.db")
    async with discovery_server(Discovery(answer)) as uri:
        with pytest.raises(RegistrationError) as err:
            await registry.register(uri)
    assert expected in str(err.value) and uri in str(err.value)
    assert registry.list() == []
    assert Registry(tmp_path / "deployments.db").list() == []


async def test_non_200_discovery_is_rejected(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "deployments.db")
    async with discovery_server(Discovery("down for maintenance", status=503)) as uri:
        with pytest.raises(RegistrationError, match="answered HTTP 503"):
            await registry.register(uri)
    assert registry.list() == []


async def test_unreachable_uri_is_rejected_and_nothing_stored(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "deployments.db")
    async with discovery_server(Discovery(doc(GREETER))) as uri:
        pass  # the server is gone now
    with pytest.raises(RegistrationError, match="cannot reach deployment at") as err:
        await registry.register(uri)
    assert uri in str(err.value)
    with pytest.raises(RegistrationError, match="must start with http"):
        await registry.register("ftp://example")
    assert registry.list() == []


def test_registry_written_before_stricter_policy_checks_still_loads(tmp_path: Path) -> None:
    # Earlier versions accepted these; a registry holding them must not stop the daemon.
    path = tmp_path / "deployments.db"
    Registry(path).close()
    services = [
        {
            "name": "Old",
            "retry_policy": {"exponentiation-factor": math.nan, "max-attempts": 1 << 40},
            "handlers": [{"name": "h", "retry_policy": None}],
        }
    ]
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO deployments (id, uri, protocol, services, registered_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (new_deployment_id(), "http://127.0.0.1:9", 1, json.dumps(services), 0),
        )
    registry = Registry(path)
    policy = registry.resolve_retry_policy("Old", "h", RetryPolicy(), None)
    assert policy.max_attempts == MAX_ATTEMPTS_LIMIT  # clamped so invoke records still encode
    assert math.isnan(policy.exponentiation_factor)  # backoff treats it as "cap at once"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://127.0.0.1:99999", "invalid port: it must be a number from 1 to 65535"),
        ("http://127.0.0.1:abc", "invalid port"),
        ("http://127.0.0.1:0", "invalid port"),
        ("http://127.0.0.1:9080/?v=2", "has a query or fragment"),
        ("http://127.0.0.1:9080/v2#top", "has a query or fragment"),
        ("http://127.0.0.1:9080?", "has a query or fragment"),
        ("http://", "has no host"),
        ("http://:9080", "has no host"),
        ("http://::1:9080", r"IPv6 address goes in brackets"),
        ("http://[::1", "is malformed"),
        ("http://[::g]:80", "is malformed"),
        ("http://a b:9080", "contains whitespace"),
        ("http://h:9080/a b", "contains whitespace"),
        ("http://user:secret@h:9080", "carries credentials"),
        ("http://h:9080/invoke/..", "'.' or '..' path segment"),
        ("http://h:9080/a/%2E%2e/b", "'.' or '..' path segment"),
        ("http://h:9080/./v2", "'.' or '..' path segment"),
    ],
)
async def test_malformed_deployment_uri_is_rejected_saying_which_part_is_wrong(
    tmp_path: Path, uri: str, expected: str
) -> None:
    registry = Registry(tmp_path / "deployments.db")
    with pytest.raises(RegistrationError, match=expected) as err:
        await registry.register(uri)
    assert "secret" not in str(err.value)
    assert registry.list() == []


def test_well_formed_deployment_uris_are_accepted_without_trailing_slash() -> None:
    assert validate_deployment_uri(" http://[::1]:9080/ ") == "http://[::1]:9080"
    assert validate_deployment_uri("https://h.example.com/v2/") == "https://h.example.com/v2"
    assert validate_deployment_uri("HTTP://H:9080/V2") == "http://H:9080/V2"  # scheme only


async def test_retry_policy_resolution_handler_beats_service_beats_default(
    tmp_path: Path,
) -> None:
    registry = Registry(tmp_path / "deployments.db")
    default = RetryPolicy(initial_interval_ms=100, max_attempts=10, max_interval_ms=1000)
    async with discovery_server(Discovery(doc(CHECKOUT, GREETER))) as uri:
        await registry.register(uri)
    checkout = registry.resolve_retry_policy("Checkout", "checkout", default)
    assert checkout == RetryPolicy(initial_interval_ms=50, max_attempts=3, max_interval_ms=1000)
    refund = registry.resolve_retry_policy("Checkout", "refund", default)
    assert refund == RetryPolicy(initial_interval_ms=20, max_attempts=3, max_interval_ms=1000)
    assert registry.resolve_retry_policy("Greeter", "greet", default) == default
    assert registry.resolve_retry_policy("Unknown", "x", default) == default


def view(service: str = "Checkout", handler: str = "checkout") -> InvocationView:
    return InvocationView(
        id="inv_1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        service=service,
        handler=handler,
        status=Status.PAUSED,
        created_at=0,
        modified_at=0,
        retry_policy=RetryPolicy(),
        pinned_deployment="dp_0000000000000000000001",
    )


async def test_resolve_resume_deployment_keep_latest_and_explicit(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "deployments.db")
    async with (
        discovery_server(Discovery(doc(CHECKOUT))) as a,
        discovery_server(Discovery(doc(GREETER))) as b,
        discovery_server(Discovery(doc(CHECKOUT))) as c,
    ):
        v1, _ = await registry.register(a)
        greeter, _ = await registry.register(b)
        v2, _ = await registry.register(c)
    default = RetryPolicy(max_attempts=9)
    assert resolve_resume_deployment(view(), None, registry) == ResumeTarget(None, None)
    assert resolve_resume_deployment(view(), "keep", registry) == ResumeTarget(None, None)
    latest = resolve_resume_deployment(view(), "latest", registry, default)
    assert latest == ResumeTarget(v2.id, RetryPolicy(initial_interval_ms=50, max_attempts=3))
    explicit = resolve_resume_deployment(view(), v1.id, registry, default)
    assert isinstance(explicit, ResumeTarget) and explicit.deployment_id == v1.id

    wrong = resolve_resume_deployment(view(), greeter.id, registry)
    assert isinstance(wrong, ResumeRejected) and wrong.code == 400
    assert greeter.id in wrong.message and "does not serve service 'Checkout'" in wrong.message
    unknown = resolve_resume_deployment(view(), "dp_0000000000000000000009", registry)
    assert isinstance(unknown, ResumeRejected) and unknown.code == 400
    assert unknown.message.startswith("deployment dp_0000000000000000000009 is not registered;")
    assert "processor deployments list" in unknown.message
    malformed = resolve_resume_deployment(view(), "newest", registry)
    assert isinstance(malformed, ResumeRejected) and "malformed deployment id" in malformed.message
    no_handler = resolve_resume_deployment(view(handler="ship"), v2.id, registry)
    assert isinstance(no_handler, ResumeRejected) and "not its handler 'ship'" in no_handler.message
    nobody = resolve_resume_deployment(view(service="Nope"), "latest", registry)
    assert isinstance(nobody, ResumeRejected) and "no registered deployment" in nobody.message
