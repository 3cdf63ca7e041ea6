"""The ingress builds the Invoke command positionally from `_prepare`'s fields: the order of those
fields must be Invoke's declaration order."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import make_mocked_request

from processor.api import ingress
from processor.commands import Invoke
from processor.retry import RetryPolicy


class _Registry:
    def handler_exists(self, service: str, handler: str) -> bool:
        return True

    def resolve_retry_policy(self, service: str, handler: str, default: RetryPolicy) -> RetryPolicy:
        return default


class _Router:
    def for_id(self, invocation_id: str) -> str:
        return "partition"

    for_key = for_id


def test_positional_invoke_from_the_prepared_fields_equals_the_keyword_built_command() -> None:
    api = ingress.Ingress(_Router(), _Registry(), RetryPolicy(max_attempts=3))  # type: ignore[arg-type]
    request = make_mocked_request(
        "POST",
        "/S/h",
        headers={"idempotency-key": "k-1", "x-custom": "v"},
        match_info={"service": "S", "handler": "h"},
    )
    fields: dict[str, Any] = ingress.Ingress._prepare(api, request, b"in", 42)[0]
    built = ingress._invoke(*fields.values(), "rid")
    assert built == Invoke(**fields, request_id="rid")
    assert (built.service, built.handler, built.input, built.execute_at) == ("S", "h", b"in", 42)
    assert built.idempotency_key == "k-1" and built.headers["x-custom"] == "v"
