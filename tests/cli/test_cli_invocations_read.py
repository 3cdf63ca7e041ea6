"""`processor invocations list|describe` against a fake admin API: all three output formats, the
filters on the wire, client-side id validation and the connection-error message."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from processor.cli import main
from processor.ids import new_deployment_id

from .fake_admin import FakeAdmin, iso, running_fake_admin

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def admin() -> Iterator[FakeAdmin]:
    with running_fake_admin() as fake:
        yield fake


def run(admin: FakeAdmin, *args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, [*args, "--admin-url", admin.url], env=env)
    return result


def plain(text: str) -> str:
    return ANSI.sub("", text)


def failing_invocation(admin: FakeAdmin) -> dict[str, Any]:
    dp = new_deployment_id()
    return admin.add(
        "Checkout/process",
        "backing-off",
        age_s=300,
        attempt=3,
        retry_count=2,
        next_retry_at=iso(30),
        pinned_deployment=dp,
        last_attempt_deployment=dp,
        idempotency_key="order-42",
        retry_policy={
            "initial-interval-ms": 100,
            "exponentiation-factor": 2.0,
            "max-interval-ms": 1000,
            "max-attempts": 3,
            "on-max-attempts": "pause",
        },
        last_failure={
            "code": 500,
            "message": "ship failed:\nwarehouse [closed]",
            "stacktrace": 'Traceback (most recent call last):\n  File "svc.py", line 9, in ship\n'
            "RuntimeError: warehouse [closed]",
            "attempt": 3,
            "related_index": 2,
        },
        journal=[
            {
                "index": 0,
                "kind": "input",
                "appended_at": iso(-300),
                "value": {"order": 42},
                "value_size": 13,
            },
            {
                "index": 1,
                "kind": "run",
                "name": "charge-card",
                "appended_at": iso(-290),
                "value": "ch_1",
                "value_size": 6,
            },
            {
                "index": 2,
                "kind": "run",
                "name": "reserve",
                "appended_at": iso(-200),
                "failure": {"code": 409, "message": "out of stock"},
            },
        ],
        events=[
            {"kind": "created", "at": iso(-300), "seq": 0},
            {
                "kind": "transient-error",
                "at": iso(-250),
                "seq": 1,
                "code": 500,
                "message": "ship failed",
                "attempt": 1,
                "count": 1,
            },
            {
                "kind": "transient-error",
                "at": iso(-100),
                "seq": 2,
                "code": 500,
                "message": "ship failed",
                "attempt": 3,
                "count": 2,
            },
        ],
    )


def test_list_human_shows_a_row_per_invocation_with_failure_and_pin(admin: FakeAdmin) -> None:
    inv = failing_invocation(admin)
    done = admin.add(
        "Greeter/greet", "completed", result={"failure": {"code": 409, "message": "killed"}}
    )
    result = run(admin, "invocations", "list")
    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    assert inv["id"] in out and done["id"] in out
    assert "backing-off" in out and "completed (failed)" in out
    assert "500: ship failed: warehouse [closed]" in out  # one line, brackets not eaten as markup
    assert inv["pinned_deployment"] in out
    # next retry is relative ("in 29s"); how much is left depends on when the suite reached here
    assert re.search(r"\b(in \d+[sm]|due \d+[sm] ago)\b", out)
    assert out.index(done["id"]) < out.index(inv["id"])  # newest first, as the server sent them


def test_list_shows_no_failure_for_an_invocation_that_completed_after_one(
    admin: FakeAdmin,
) -> None:
    # v1 failed, an operator resumed it on v2 and it succeeded: the old failure is history.
    admin.add(
        "Checkout/process",
        "completed",
        last_failure={"code": 500, "message": "v1 bug", "attempt": 3},
        result={"value": {"ok": True}},
    )
    out = plain(run(admin, "invocations", "list").stdout)
    assert "completed" in out and "v1 bug" not in out


def test_list_passes_every_filter_to_the_admin_api(admin: FakeAdmin) -> None:
    dp = new_deployment_id()
    result = run(
        admin,
        "invocations",
        "list",
        "--service",
        "Checkout",
        "--handler",
        "process",
        "--status",
        "paused",
        "--deployment",
        dp,
        "--limit",
        "7",
    )
    assert result.exit_code == 0, result.output
    assert "No invocations match" in result.stdout
    # then GET /deployments: an empty answer checks whether the service is registered at all
    assert [r.path for r in admin.requests] == ["/invocations", "/deployments"]
    request = admin.requests[0]
    assert request.query == {
        "service": ["Checkout"],
        "handler": ["process"],
        "status": ["paused"],
        "deployment": [dp],
        "limit": ["7"],
    }


def test_list_json_is_the_api_answer_and_jsonl_one_invocation_per_line(admin: FakeAdmin) -> None:
    first = admin.add("A/a", "running", age_s=10)
    second = admin.add("B/b", "paused", age_s=20)
    as_json = run(admin, "invocations", "list", "--output", "json")
    assert as_json.exit_code == 0
    body = json.loads(as_json.stdout)
    assert [i["id"] for i in body["invocations"]] == [first["id"], second["id"]]
    as_jsonl = run(admin, "invocations", "list", "-o", "jsonl")
    lines = as_jsonl.stdout.splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["running", "paused"]


def test_list_rejects_a_malformed_deployment_filter_before_calling(admin: FakeAdmin) -> None:
    result = run(admin, "invocations", "list", "--deployment", "dp_nope")
    assert result.exit_code == 2
    assert "'dp_' followed by 22 characters" in result.stderr
    assert admin.requests == []


def test_describe_human_shows_header_failure_with_trace_and_merged_timeline(
    admin: FakeAdmin,
) -> None:
    inv = failing_invocation(admin)
    result = run(admin, "invocations", "describe", inv["id"])
    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    assert f"Invocation {inv['id']}" in out
    assert "Checkout/process" in out and "backing-off" in out
    assert f"Pinned deployment  {inv['pinned_deployment']}" in out
    assert "Next retry" in out and "(in " in out
    assert "Retry policy       3 attempts; backoff 100ms ×2.0 up to 1000ms; then pause" in out
    assert "Idempotency key    order-42" in out
    assert "Last failure (attempt 3, journal index 2)" in out
    assert 'File "svc.py", line 9, in ship' in out
    assert "RuntimeError: warehouse [closed]" in out
    timeline = out[out.index("Timeline") :]
    order = [
        "event: created",
        "input",
        "charge-card",
        "event: transient-error",
        "reserve",
        "event: transient-error",
    ]
    positions = [timeline.index(order[0])]
    for marker in order[1:]:
        positions.append(timeline.index(marker, positions[-1] + 1))
    assert "13 B" in timeline and "failure 409: out of stock" in timeline
    assert "count=2" in timeline


def test_describe_running_attempt_not_reported_yet_says_so_instead_of_a_bare_dash(
    admin: FakeAdmin,
) -> None:
    inv = admin.add("Checkout/slow", "running", attempt=2)
    result = run(admin, "invocations", "describe", inv["id"])
    assert result.exit_code == 0, result.output
    assert "attempt 2 has not reported its deployment yet" in result.stdout


def test_describe_failure_the_engine_recorded_says_to_check_the_deployment_not_the_handler(
    admin: FakeAdmin,
) -> None:
    dp = new_deployment_id()
    unreachable = {"code": 503, "message": "cannot reach http://127.0.0.1:9/", "attempt": 1}
    inv = admin.add(
        "Checkout/process", "paused", last_attempt_deployment=dp, last_failure=unreachable
    )
    out = plain(run(admin, "invocations", "describe", inv["id"]).stdout)
    assert "the engine recorded this failure, the handler did not raise it" in out
    assert f"processor deployments describe {dp}" in out and "then resume" in out

    raised = {"code": 500, "message": "boom", "attempt": 1}
    inv = admin.add("Checkout/process", "paused", last_attempt_deployment=dp, last_failure=raised)
    out = plain(run(admin, "invocations", "describe", inv["id"]).stdout)
    assert "the handler reported this failure without one" in out


def test_describe_json_and_jsonl_print_the_answer(admin: FakeAdmin) -> None:
    inv = failing_invocation(admin)
    as_json = run(admin, "invocations", "describe", inv["id"], "--output", "json")
    assert json.loads(as_json.stdout) == inv
    as_jsonl = run(admin, "invocations", "describe", inv["id"], "--output", "jsonl")
    assert len(as_jsonl.stdout.splitlines()) == 1
    assert json.loads(as_jsonl.stdout) == inv


def test_describe_unknown_id_prints_the_servers_message_and_exits_1(admin: FakeAdmin) -> None:
    missing = "inv_" + "1" * 33
    result = run(admin, "invocations", "describe", missing)
    assert result.exit_code == 1
    assert f"404 Not Found: invocation {missing} not found" in result.stderr
    assert "Traceback" not in result.output


def test_describe_malformed_id_says_the_expected_form_without_calling(admin: FakeAdmin) -> None:
    result = run(admin, "invocations", "describe", "inv_123")
    assert result.exit_code == 2
    assert "'inv_' followed by 33 characters of [0-9A-Za-z]" in result.stderr
    assert admin.requests == []


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    "args",
    [["invocations", "list"], ["deployments", "list"], ["invocations", "pause", "inv_" + "2" * 33]],
)
def test_connection_refused_names_the_url_and_how_to_point_elsewhere(args: list[str]) -> None:
    url = _refused_url()
    result = CliRunner().invoke(main, [*args, "--admin-url", url])
    assert result.exit_code == 1
    assert f"cannot reach the admin API at {url} (connection refused)" in result.stderr
    assert "--admin-url" in result.stderr and "PROCESSOR_ADMIN_URL" in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_admin_url_comes_from_the_environment_or_the_group_option(admin: FakeAdmin) -> None:
    admin.add("A/a", "running")
    from_env = CliRunner().invoke(
        main, ["invocations", "list"], env={"PROCESSOR_ADMIN_URL": admin.url}
    )
    assert from_env.exit_code == 0, from_env.output
    from_group = CliRunner().invoke(
        main,
        ["invocations", "--admin-url", admin.url, "list"],
        env={"PROCESSOR_ADMIN_URL": _refused_url()},
    )
    assert from_group.exit_code == 0, from_group.output
    assert len(admin.requests) == 2


def test_invalid_admin_url_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["invocations", "list", "--admin-url", "localhost:9070"])
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.stderr


def test_list_on_a_narrow_terminal_keeps_whole_ids_and_one_line_per_row(admin: FakeAdmin) -> None:
    inv = failing_invocation(admin)
    other = admin.add("Greeter/greet", "running")
    result = run(admin, "invocations", "list", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = plain(result.stdout).splitlines()
    assert len(lines) == 3  # header + one line per invocation
    assert all(len(line.rstrip()) <= 100 for line in lines)
    assert inv["id"] in lines[2] and other["id"] in lines[1]
    assert "500: ship fail" in lines[2]  # shortened to the room left, still on the row
    assert "DEPLOYMENT" not in lines[0]  # dropped first; `describe` shows it


def test_empty_list_for_an_unregistered_service_suggests_the_registered_name(
    admin: FakeAdmin,
) -> None:
    dp = new_deployment_id()
    admin.deployments[dp] = {
        "id": dp,
        "uri": "http://127.0.0.1:9081",
        "protocol": 1,
        "services": [{"name": "Checkout", "handlers": [{"name": "process"}]}],
        "registered_at": iso(-60),
    }
    for typo in ("checkout", "Chekout"):
        out = run(admin, "invocations", "list", "--service", typo).stdout
        assert "No invocations match." in out
        assert f"No registered deployment serves a service '{typo}'" in out
        assert "did you mean Checkout?" in out
    out = run(admin, "invocations", "list", "--service", "Checkout").stdout
    assert out.strip() == "No invocations match."  # a known service with nothing yet: no hint
