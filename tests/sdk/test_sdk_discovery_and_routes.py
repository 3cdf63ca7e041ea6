"""Discovery, routing and request validation of a deployment served by the SDK."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from processor.sdk import Context, Service
from processor.sdk.testing import DeployFactory, attempt_body, input_entry, split_frames


def _services() -> list[Service]:
    shop = Service("Shop", retry_policy={"initial-interval": "100ms", "max-attempts": 3})

    @shop.handler(retry_policy={"max-attempts": "unlimited", "on-max-attempts": "kill"})
    async def buy(ctx: Context, item: str) -> str:
        return f"bought {item}"

    @shop.handler(name="ping")
    async def ping_handler(ctx: Context) -> str:
        return "pong"

    plain = Service("Plain")

    @plain.handler()
    async def echo(ctx: Context, arg: Any) -> Any:
        return arg

    return [shop, plain]


EXPECTED_DISCOVERY = {
    "protocol": 1,
    "services": [
        {
            "name": "Shop",
            "retry_policy": {"initial-interval": "100ms", "max-attempts": 3},
            "handlers": [
                {
                    "name": "buy",
                    "retry_policy": {"max-attempts": "unlimited", "on-max-attempts": "kill"},
                },
                {"name": "ping"},
            ],
        },
        {"name": "Plain", "handlers": [{"name": "echo"}]},
    ],
}


async def test_discovery_answers_msgpack_with_service_and_handler_retry_policies(
    deploy: DeployFactory,
) -> None:
    d = await deploy(_services())
    async with d.session.get(f"{d.url}/discover") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-msgpack"
        assert msgpack.unpackb(await resp.read(), raw=False) == EXPECTED_DISCOVERY


async def test_discovery_answers_json_when_asked(deploy: DeployFactory) -> None:
    d = await deploy(_services())
    async with d.session.get(f"{d.url}/discover", headers={"Accept": "application/json"}) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == EXPECTED_DISCOVERY


def test_invalid_retry_policy_is_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="max-attempt"):
        Service("Bad", retry_policy={"max-attempt": 3})
    svc = Service("Bad")
    with pytest.raises(ValueError, match=r"Bad/h.*on-max-attempts"):
        svc.handler(name="h", retry_policy={"on-max-attempts": "explode"})


def test_handler_must_be_async_and_take_ctx_and_at_most_one_input() -> None:
    svc = Service("S")
    with pytest.raises(TypeError, match="async"):
        svc.handler()(lambda ctx: None)  # type: ignore[type-var]

    async def too_many(ctx: Context, a: int, b: int) -> None:
        return None

    with pytest.raises(TypeError, match=r"\(ctx\) or \(ctx, input\)"):
        svc.handler()(too_many)


async def test_zero_step_handler_answers_its_output_alone(deploy: DeployFactory) -> None:
    d = await deploy(_services())
    entries, final = split_frames(await d.invoke("Shop/buy", [input_entry("tea")]))
    assert entries == []
    assert final == {"t": "output", "value": b'"bought tea"'}


async def test_handler_taking_only_ctx_ignores_the_input(deploy: DeployFactory) -> None:
    d = await deploy(_services())
    _, final = split_frames(await d.invoke("Shop/ping", [input_entry({"x": 1})]))
    assert final == {"t": "output", "value": b'"pong"'}


async def test_empty_input_reaches_the_handler_as_none(deploy: DeployFactory) -> None:
    d = await deploy(_services())
    _, final = split_frames(await d.invoke("Plain/echo", [input_entry(raw=b"")]))
    assert final == {"t": "output", "value": b"null"}


async def test_input_that_is_not_json_is_a_terminal_400(deploy: DeployFactory) -> None:
    d = await deploy(_services())
    _, final = split_frames(await d.invoke("Plain/echo", [input_entry(raw=b"{not json")]))
    assert final["t"] == "output"
    assert final["failure"]["code"] == 400
    assert "not JSON" in final["failure"]["message"]


@pytest.mark.parametrize(
    ("path", "needle"),
    [("Nope/buy", "unknown service 'Nope'"), ("Shop/nope", "has no handler 'nope'")],
)
async def test_unknown_service_or_handler_is_404(
    deploy: DeployFactory, path: str, needle: str
) -> None:
    d = await deploy(_services())
    body = attempt_body([input_entry("x")])
    async with d.session.post(f"{d.url}/invoke/{path}", data=body) as resp:
        assert resp.status == 404
        assert needle in (await resp.json())["message"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"\xc1garbage", "not valid msgpack"),
        (msgpack.packb([1, 2]), "must be a msgpack map"),
        (msgpack.packb({"attempt": 1, "journal": []}), "invocation_id"),
        (msgpack.packb({"invocation_id": "inv_1", "attempt": "one"}), "attempt"),
        (msgpack.packb({"invocation_id": "inv_1", "attempt": 1, "journal": []}), "journal"),
        (
            msgpack.packb({"invocation_id": "inv_1", "attempt": 1, "journal": [{"kind": "run"}]}),
            "must be the input",
        ),
        (
            msgpack.packb(
                {
                    "invocation_id": "inv_1",
                    "attempt": 1,
                    "journal": [{"kind": "input", "value": b""}, {"kind": "sleep"}],
                }
            ),
            "completion_id",
        ),
        (attempt_body([input_entry("x")], seed=None)[:-3], "msgpack"),
    ],
)
async def test_malformed_invoke_body_is_400_with_the_reason(
    deploy: DeployFactory, body: bytes, needle: str
) -> None:
    d = await deploy(_services())
    async with d.session.post(f"{d.url}/invoke/Plain/echo", data=body) as resp:
        assert resp.status == 400
        assert needle in (await resp.json())["message"]


async def test_missing_seed_is_derived_from_the_invocation_id(deploy: DeployFactory) -> None:
    svc = Service("R")

    @svc.handler()
    async def roll(ctx: Context) -> float:
        return ctx.random()

    d = await deploy([svc])
    first = split_frames(await d.invoke("R/roll", [input_entry()], seed=None))[1]
    second = split_frames(await d.invoke("R/roll", [input_entry()], seed=None, attempt=2))[1]
    other = split_frames(
        await d.invoke("R/roll", [input_entry()], seed=None, invocation_id="inv_other")
    )[1]
    assert first == second
    assert first != other
