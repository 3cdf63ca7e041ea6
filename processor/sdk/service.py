"""Services and handlers as declared by a deployment, and the discovery document built from them.

A `Service` collects `async def handler(ctx, arg)` functions through its `@service.handler()`
decorator. Retry policies are plain maps with the config keys of SPEC §5; they are validated here
(with the processor's own parser) so a typo fails when the deployment starts, not at registration.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from processor.retry import policy_from_mapping

if TYPE_CHECKING:
    from processor.sdk.context import Context

PROTOCOL_VERSION = 1

HandlerFn = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=HandlerFn)


def _checked_policy(owner: str, policy: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    try:
        policy_from_mapping(policy)
    except ValueError as exc:
        raise ValueError(f"{owner}: invalid retry policy: {exc}") from None
    return dict(policy)


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    fn: HandlerFn
    takes_input: bool
    retry_policy: dict[str, Any] | None = None

    async def call(self, ctx: Context, arg: Any) -> Any:
        if self.takes_input:
            return await self.fn(ctx, arg)
        return await self.fn(ctx)


def _takes_input(name: str, fn: HandlerFn) -> bool:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"handler {name!r} must be an async function")
    positional = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) not in (1, 2):
        raise TypeError(f"handler {name!r} must take (ctx) or (ctx, input)")
    return len(positional) == 2


class Service:
    """A named group of handlers, e.g. `Service("Greeter")`."""

    def __init__(self, name: str, retry_policy: Mapping[str, Any] | None = None) -> None:
        if not name or "/" in name:
            raise ValueError(f"invalid service name {name!r}")
        self.name = name
        self.retry_policy = _checked_policy(f"service {name!r}", retry_policy)
        self.handlers: dict[str, Handler] = {}

    def handler(
        self, name: str | None = None, retry_policy: Mapping[str, Any] | None = None
    ) -> Callable[[F], F]:
        """Register an `async def fn(ctx[, input])` as a handler of this service."""

        policy = _checked_policy(f"handler {self.name}/{name or '<function name>'}", retry_policy)

        def register(fn: F) -> F:
            handler_name = name or fn.__name__
            if "/" in handler_name:
                raise ValueError(f"invalid handler name {handler_name!r}")
            if handler_name in self.handlers:
                raise ValueError(f"service {self.name!r} already has a handler {handler_name!r}")
            self.handlers[handler_name] = Handler(
                handler_name, fn, _takes_input(handler_name, fn), policy
            )
            return fn

        return register

    def describe(self) -> dict[str, Any]:
        handlers: list[dict[str, Any]] = []
        for h in self.handlers.values():
            entry: dict[str, Any] = {"name": h.name}
            if h.retry_policy is not None:
                entry["retry_policy"] = h.retry_policy
            handlers.append(entry)
        doc: dict[str, Any] = {"name": self.name, "handlers": handlers}
        if self.retry_policy is not None:
            doc["retry_policy"] = self.retry_policy
        return doc


def index_services(services: Iterable[Service]) -> dict[str, Service]:
    by_name: dict[str, Service] = {}
    for service in services:
        if service.name in by_name:
            raise ValueError(f"service {service.name!r} is declared twice")
        by_name[service.name] = service
    return by_name


def discovery_document(services: Iterable[Service]) -> dict[str, Any]:
    return {"protocol": PROTOCOL_VERSION, "services": [s.describe() for s in services]}
