"""`processor deployments register|list|describe` against a fake admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from processor.cli import main
from processor.status import Status
from processor.status_colors import FAILED_COMPLETION, STATUS_COLORS, status_color

from .fake_admin import FakeAdmin, running_fake_admin

URI = "http://127.0.0.1:9080"
SERVICES: list[dict[str, Any]] = [
    {"name": "Checkout", "handlers": [{"name": "process"}, {"name": "refund"}]},
    {"name": "Greeter", "handlers": ["greet"]},  # the real server sends plain names
]


@pytest.fixture
def admin() -> Iterator[FakeAdmin]:
    with running_fake_admin() as fake:
        fake.discoverable[URI] = SERVICES
        yield fake


def run(admin: FakeAdmin, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--admin-url", admin.url])


def test_register_prints_id_services_and_handlers_then_already_registered(
    admin: FakeAdmin,
) -> None:
    created = run(admin, "deployments", "register", URI)
    assert created.exit_code == 0, created.output
    (dp,) = admin.deployments
    assert f"Registered deployment {dp} at {URI}" in created.stdout
    assert "Checkout: process, refund" in created.stdout
    assert "Greeter: greet" in created.stdout
    assert admin.requests[0].body == {"uri": URI}
    again = run(admin, "deployments", "register", URI)
    assert again.exit_code == 0
    assert f"Already registered: deployment {dp}" in again.stdout


def test_register_json_output_carries_the_id(admin: FakeAdmin) -> None:
    result = run(admin, "deployments", "register", URI, "--output", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["id"] in admin.deployments


def test_register_unreachable_prints_the_servers_message(admin: FakeAdmin) -> None:
    result = run(admin, "deployments", "register", "http://127.0.0.1:1/")
    assert result.exit_code == 1
    assert "400 Bad Request: deployment at http://127.0.0.1:1/ is unreachable" in result.stderr


def test_register_rejects_a_non_http_uri_before_calling(admin: FakeAdmin) -> None:
    result = run(admin, "deployments", "register", "127.0.0.1:9080")
    assert result.exit_code == 2
    assert admin.requests == []


def test_list_in_three_formats(admin: FakeAdmin) -> None:
    assert run(admin, "deployments", "register", URI).exit_code == 0
    (dp,) = admin.deployments
    human = run(admin, "deployments", "list")
    assert human.exit_code == 0
    assert dp in human.stdout and URI in human.stdout and "Checkout, Greeter" in human.stdout
    as_json = json.loads(run(admin, "deployments", "list", "-o", "json").stdout)
    assert [d["id"] for d in as_json["deployments"]] == [dp]
    lines = run(admin, "deployments", "list", "-o", "jsonl").stdout.splitlines()
    assert [json.loads(line)["uri"] for line in lines] == [URI]


def test_list_empty_says_how_to_register(admin: FakeAdmin) -> None:
    result = run(admin, "deployments", "list")
    assert "processor deployments register" in result.stdout


def test_describe_shows_each_service_handler_and_validates_the_id(admin: FakeAdmin) -> None:
    assert run(admin, "deployments", "register", URI).exit_code == 0
    (dp,) = admin.deployments
    result = run(admin, "deployments", "describe", dp)
    assert result.exit_code == 0, result.output
    assert f"Deployment {dp}" in result.stdout and URI in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["Checkout", "refund"] in rows and ["Greeter", "greet"] in rows
    assert json.loads(run(admin, "deployments", "describe", dp, "-o", "json").stdout)["id"] == dp
    bad = run(admin, "deployments", "describe", "dp_123")
    assert bad.exit_code == 2
    assert "'dp_' followed by 22 characters of [0-9A-Za-z]" in bad.stderr
    missing = run(admin, "deployments", "describe", "dp_" + "0" * 22)
    assert missing.exit_code == 1
    assert "404 Not Found: deployment dp_0000000000000000000000 not found" in missing.stderr


def test_every_status_has_a_distinct_colour_and_failed_completion_its_own() -> None:
    assert set(STATUS_COLORS) == {s.value for s in Status}
    rich_styles = [c.rich for c in STATUS_COLORS.values()] + [FAILED_COMPLETION.rich]
    assert len(set(rich_styles)) == len(rich_styles)
    assert status_color("completed", failed=True) == FAILED_COMPLETION
    assert status_color("paused", failed=True) == STATUS_COLORS["paused"]
