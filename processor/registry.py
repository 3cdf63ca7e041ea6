"""The deployment registry (PROTOCOL.md §1, SPEC §3.4 and §5): discovery, storage, lookups.

Deployments are registered by URI: the registry calls `GET {uri}/discover`, validates the answer and
stores it in `deployments.db` (stdlib sqlite3: the file is tiny and written only on registration).
Every lookup is served from an in-memory copy, so the hot path (ingress, leader) never touches disk.

Versions: the same URI answering the same services again is the same deployment; the same URI with
different services is a new deployment (a new version). "The latest deployment of a service" is the
most recently registered one that serves it.

`resolve_resume_deployment` turns the resume option (`keep` / `latest` / `dp_…`) into the concrete
deployment id and retry policy that the Resume command carries, or a 400 with a reason, before
anything is appended (SPEC §3.4).
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgpack

from processor.ids import InvalidId, new_deployment_id, validate_deployment_id
from processor.names import closest_name
from processor.retry import RetryPolicy, policy_from_mapping
from processor.status import InvocationView

PROTOCOL_VERSION = 1
DISCOVERY_TIMEOUT_S = 10.0

PolicyMap = dict[str, Any]


class RegistrationError(Exception):
    """Discovery failed or answered something invalid; nothing was stored."""


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str
    handlers: dict[str, PolicyMap | None]  # handler name -> its retry-policy map (or None)
    retry_policy: PolicyMap | None = None

    def to_json(self) -> dict[str, Any]:
        handlers: list[dict[str, Any]] = []
        for name, policy in self.handlers.items():
            item: dict[str, Any] = {"name": name}
            if policy is not None:
                item["retry_policy"] = policy
            handlers.append(item)
        doc: dict[str, Any] = {"name": self.name, "handlers": handlers}
        if self.retry_policy is not None:
            doc["retry_policy"] = self.retry_policy
        return doc


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    uri: str
    protocol: int
    services: dict[str, ServiceInfo]
    registered_at: int  # epoch ms

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uri": self.uri,
            "protocol": self.protocol,
            "services": [s.to_json() for s in self.services.values()],
            "registered_at": self.registered_at,
        }


# --- validation of a discovery answer ---------------------------------------------------------


def _name(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise RegistrationError(f"{what} must be a non-empty string, got {raw!r}")
    if "/" in raw:
        raise RegistrationError(f"{what} must not contain '/', got {raw!r}")
    return raw


def _policy(raw: Any, what: str, stored: bool) -> PolicyMap | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise RegistrationError(f"retry_policy of {what} must be a map, got {raw!r}")
    try:
        policy_from_mapping(raw, lenient=stored)
    except ValueError as exc:
        raise RegistrationError(f"invalid retry_policy of {what}: {exc}") from None
    return dict(raw)


def parse_discovery(doc: Any, *, stored: bool = False) -> tuple[int, dict[str, ServiceInfo]]:
    """Validate a discovery document; raise RegistrationError saying what is wrong. `stored`: the
    document comes from the registry file, written by this or an earlier version (retry policies
    are then checked leniently, see `policy_from_mapping`)."""
    if not isinstance(doc, Mapping):
        raise RegistrationError(f"discovery answer must be a map, got {type(doc).__name__}")
    protocol = doc.get("protocol")
    if protocol != PROTOCOL_VERSION or isinstance(protocol, bool):
        raise RegistrationError(
            f"unsupported protocol {protocol!r}: this processor speaks protocol {PROTOCOL_VERSION}"
        )
    raw_services = doc.get("services")
    if not isinstance(raw_services, list) or not raw_services:
        raise RegistrationError("discovery answer must list at least one service under 'services'")
    services: dict[str, ServiceInfo] = {}
    for i, raw in enumerate(raw_services):
        if not isinstance(raw, Mapping):
            raise RegistrationError(f"services[{i}] must be a map, got {raw!r}")
        name = _name(raw.get("name"), f"services[{i}].name")
        if name in services:
            raise RegistrationError(f"service {name!r} is listed twice")
        raw_handlers = raw.get("handlers")
        if not isinstance(raw_handlers, list) or not raw_handlers:
            raise RegistrationError(f"service {name!r} must list at least one handler")
        handlers: dict[str, PolicyMap | None] = {}
        for j, h in enumerate(raw_handlers):
            if not isinstance(h, Mapping):
                raise RegistrationError(f"service {name!r} handlers[{j}] must be a map, got {h!r}")
            hname = _name(h.get("name"), f"service {name!r} handlers[{j}].name")
            if hname in handlers:
                raise RegistrationError(f"service {name!r} lists handler {hname!r} twice")
            handlers[hname] = _policy(h.get("retry_policy"), f"handler {name}/{hname}", stored)
        services[name] = ServiceInfo(
            name, handlers, _policy(raw.get("retry_policy"), f"service {name}", stored)
        )
    return PROTOCOL_VERSION, services


def _decode_answer(body: bytes, content_type: str) -> Any:
    if "json" in content_type:
        return json.loads(body)
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:
        # Some deployments may answer JSON without saying so; accept it if it parses.
        return json.loads(body)


async def fetch_discovery(
    uri: str, session: aiohttp.ClientSession | None = None, timeout_s: float = DISCOVERY_TIMEOUT_S
) -> tuple[int, dict[str, ServiceInfo]]:
    """GET {uri}/discover and validate it; RegistrationError names the URI and the reason."""
    url = uri.rstrip("/") + "/discover"
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.get(
            url,
            headers={"Accept": "application/x-msgpack, application/json;q=0.5"},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                excerpt = body[:200].decode("utf-8", "replace")
                raise RegistrationError(
                    f"discovery at {url} answered HTTP {resp.status}: {excerpt!r}"
                )
            content_type = resp.headers.get("content-type", "")
    except RegistrationError:
        raise
    except (aiohttp.InvalidURL, ValueError) as exc:
        raise RegistrationError(f"invalid deployment URI {uri!r}: {exc}") from None
    except TimeoutError:
        raise RegistrationError(
            f"discovery at {url} did not answer within {timeout_s:g}s"
        ) from None
    except aiohttp.ClientError as exc:
        raise RegistrationError(f"cannot reach deployment at {url}: {exc}") from None
    finally:
        if own:
            await client.close()
    try:
        doc = _decode_answer(body, content_type)
    except Exception as exc:
        raise RegistrationError(
            f"discovery at {url} answered something that is neither msgpack nor JSON: {exc}"
        ) from None
    try:
        return parse_discovery(doc)
    except RegistrationError as exc:
        raise RegistrationError(f"invalid discovery answer from {url}: {exc}") from None


# --- the registry ------------------------------------------------------------------------------

_SCHEMA = """CREATE TABLE IF NOT EXISTS deployments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    uri TEXT NOT NULL,
    protocol INTEGER NOT NULL,
    services TEXT NOT NULL,
    registered_at INTEGER NOT NULL
)"""


def _services_to_text(services: Mapping[str, ServiceInfo]) -> str:
    return json.dumps([s.to_json() for s in services.values()], sort_keys=True)


def _services_from_text(text: str) -> dict[str, ServiceInfo]:
    doc = {"protocol": PROTOCOL_VERSION, "services": json.loads(text)}
    _, services = parse_discovery(doc, stored=True)
    return services


def validate_deployment_uri(uri: str) -> str:
    """`uri` without surrounding blanks and trailing slashes; RegistrationError saying which part
    is wrong when it is not `http(s)://host[:port][/path]` (the processor appends `/discover` and
    `/invoke/...`, so a query or fragment would end up in the middle of every request)."""
    example = "e.g. http://127.0.0.1:9080 or https://handlers.example.com/v2"
    uri = uri.strip()
    scheme, sep, rest = uri.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        uri = f"{scheme.lower()}://{rest}"  # schemes are case-insensitive (RFC 3986 §3.1)
    if not uri.startswith(("http://", "https://")):
        raise RegistrationError(
            f"deployment URI must start with http:// or https://: {uri!r} ({example})"
        )
    if any(c.isspace() for c in uri):
        raise RegistrationError(
            f"deployment URI {uri!r} contains whitespace; percent-encode it (%20) or remove it"
        )
    try:
        parts = urllib.parse.urlsplit(uri)
        host = parts.hostname
    except ValueError as exc:  # e.g. an unclosed or invalid [IPv6] address
        raise RegistrationError(f"deployment URI {uri!r} is malformed: {exc} ({example})") from None
    if not host:
        ipv6 = parts.netloc.count(":") > 1
        hint = "an IPv6 address goes in brackets: http://[::1]:9080" if ipv6 else example
        raise RegistrationError(f"deployment URI {uri!r} has no host ({hint})")
    if parts.username is not None or parts.password is not None:
        raise RegistrationError(
            f"deployment URI {parts.scheme}://…@{parts.netloc.rpartition('@')[2]} carries "
            "credentials; they would be stored and shown in listings, so they are refused"
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise RegistrationError(
            f"deployment URI {uri!r} has an invalid port: it must be a number from 1 to 65535"
            + (" (an IPv6 address goes in brackets: http://[::1]:9080)" if ":" in host else "")
        )
    if any(seg.lower().replace("%2e", ".") in (".", "..") for seg in parts.path.split("/")):
        raise RegistrationError(
            f"deployment URI {uri!r} has a '.' or '..' path segment; give the path as it is "
            "(discovery would resolve it, but every invoke URL would keep it)"
        )
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise RegistrationError(
            f"deployment URI {uri!r} has a query or fragment; give the base URL the handlers are "
            f"served under ({example})"
        )
    return uri.rstrip("/")


class Registry:
    """Deployments stored in `path` (SQLite), cached in memory in registration order."""

    def __init__(self, path: Path | str, session: aiohttp.ClientSession | None = None) -> None:
        self.path = Path(path)
        self._session = session
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._ordered: list[Deployment] = []  # oldest first
        self._by_id: dict[str, Deployment] = {}
        rows = self._db.execute(
            "SELECT id, uri, protocol, services, registered_at FROM deployments ORDER BY seq"
        )
        for dep_id, uri, protocol, services, registered_at in rows:
            self._remember(
                Deployment(dep_id, uri, protocol, _services_from_text(services), registered_at)
            )

    def close(self) -> None:
        self._db.close()

    def _remember(self, deployment: Deployment) -> None:
        self._ordered.append(deployment)
        self._by_id[deployment.id] = deployment

    async def register(self, uri: str) -> tuple[Deployment, bool]:
        """Discover `uri` and store it. Returns (deployment, created). Raises RegistrationError."""
        uri = validate_deployment_uri(uri)
        protocol, services = await fetch_discovery(uri, self._session)
        text = _services_to_text(services)
        for existing in reversed(self._ordered):
            if existing.uri == uri:
                if _services_to_text(existing.services) == text:
                    return existing, False
                break  # the URI now serves something else: a new version
        deployment = Deployment(
            new_deployment_id(), uri, protocol, services, int(time.time() * 1000)
        )
        self._db.execute(
            "INSERT INTO deployments (id, uri, protocol, services, registered_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (deployment.id, uri, protocol, text, deployment.registered_at),
        )
        self._remember(deployment)
        return deployment, True

    def list(self) -> list[Deployment]:
        """All deployments, the most recently registered first."""
        return list(reversed(self._ordered))

    def get(self, deployment_id: str) -> Deployment | None:
        return self._by_id.get(deployment_id)

    def latest_for(self, service: str) -> Deployment | None:
        for deployment in reversed(self._ordered):
            if service in deployment.services:
                return deployment
        return None

    def serves(self, deployment_id: str, service: str) -> bool:
        deployment = self._by_id.get(deployment_id)
        return deployment is not None and service in deployment.services

    def handler_exists(self, service: str, handler: str) -> bool:
        """Whether the latest deployment of `service` (where a new attempt goes) has `handler`."""
        deployment = self.latest_for(service)
        return deployment is not None and handler in deployment.services[service].handlers

    def unknown_target_message(self, service: str, handler: str) -> str:
        """Why `service/handler` cannot be invoked (`handler_exists` is False), and what to do.

        New invocations start on the latest deployment of their service, so a handler that only an
        older deployment still serves is not invokable (as in Restate, the latest deployment
        defines a service's handlers); the message says which deployment that is."""
        register = "`processor deployments register <uri>` (POST /deployments on the admin API)"
        latest = self.latest_for(service)
        if latest is None:
            known = sorted({name for d in self._ordered for name in d.services})
            close = closest_name(service, known)
            if close is not None:  # a typo or the wrong case: names are case-sensitive
                return (
                    f"no registered deployment serves a service {service!r}; did you mean "
                    f"{close}/{handler}? (service names are case-sensitive; registered: "
                    f"{', '.join(known)})"
                )
            return (
                f"no registered deployment serves {service}/{handler}; register one with {register}"
            )
        older = [
            d.id
            for d in self._ordered
            if d is not latest and service in d.services and handler in d.services[service].handlers
        ]
        served = ", ".join(sorted(latest.services[service].handlers)) or "no handlers"
        message = (
            f"the latest deployment of service {service!r}, {latest.id} ({latest.uri}), has no "
            f"handler {handler!r} (it has {served}); new invocations start on the latest "
            "deployment"
        )
        if older:
            message += f", so the older {', '.join(older)} serving it is not used"
        return f"{message}. Register a deployment that serves {service}/{handler} with {register}"

    def resolve_retry_policy(
        self,
        service: str,
        handler: str,
        default: RetryPolicy,
        deployment_id: str | None = None,
    ) -> RetryPolicy:
        """The effective policy: handler beats service beats `default` (key by key).

        Taken from `deployment_id` when given, else from the latest deployment of the service.
        """
        deployment = self.get(deployment_id) if deployment_id else self.latest_for(service)
        if deployment is None or service not in deployment.services:
            return default
        info = deployment.services[service]
        policy = default
        if info.retry_policy:
            policy = policy_from_mapping(info.retry_policy, base=policy, lenient=True)
        handler_policy = info.handlers.get(handler)
        if handler_policy:
            policy = policy_from_mapping(handler_policy, base=policy, lenient=True)
        return policy


# --- resume: keep / latest / dp_… --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResumeTarget:
    """What the Resume command carries: None/None keeps the pinned deployment."""

    deployment_id: str | None
    retry_policy: RetryPolicy | None


@dataclass(frozen=True, slots=True)
class ResumeRejected:
    code: int
    message: str


def resolve_resume_deployment(
    view: InvocationView,
    option: str | None,
    registry: Registry,
    default_policy: RetryPolicy | None = None,
) -> ResumeTarget | ResumeRejected:
    """Resolve `keep` (default) / `latest` / `dp_…` for resuming `view` (SPEC §3.4).

    Rejections are 400s whose message names the deployment and the reason. Whether a deployment
    change is allowed in the invocation's status (409 while running) is the state machine's call.
    """
    choice = "keep" if option is None else option.strip()
    if choice == "keep":
        return ResumeTarget(None, None)
    if not choice:
        return ResumeRejected(
            400, "the deployment option is empty; use 'keep', 'latest' or a deployment id"
        )
    target = f"{view.service}/{view.handler}"
    if choice == "latest":
        deployment = registry.latest_for(view.service)
        if deployment is None:
            return ResumeRejected(
                400,
                f"no registered deployment serves service {view.service!r}; register one "
                f"before resuming invocation {view.id} with deployment=latest",
            )
    else:
        try:
            validate_deployment_id(choice)
        except InvalidId as exc:
            return ResumeRejected(
                400, f"{exc}; the deployment option is 'keep', 'latest' or a deployment id"
            )
        found = registry.get(choice)
        if found is None:
            return ResumeRejected(
                400,
                f"deployment {choice} is not registered; list the registered ones with "
                "`processor deployments list`, or use deployment=latest",
            )
        deployment = found
    info = deployment.services.get(view.service)
    if info is None:
        served = ", ".join(sorted(deployment.services)) or "nothing"
        return ResumeRejected(
            400,
            f"deployment {deployment.id} ({deployment.uri}) does not serve service "
            f"{view.service!r} of invocation {view.id} (it serves {served})",
        )
    if view.handler not in info.handlers:
        return ResumeRejected(
            400,
            f"deployment {deployment.id} ({deployment.uri}) serves service {view.service!r} "
            f"but not its handler {view.handler!r} ({target})",
        )
    policy = registry.resolve_retry_policy(
        view.service, view.handler, default_policy or RetryPolicy(), deployment.id
    )
    return ResumeTarget(deployment.id, policy)
