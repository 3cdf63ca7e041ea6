"""`processor invocations pause|resume|cancel|kill|purge` by id and by query, against a fake admin
API: answers and messages, the `--deployment` parameter, which statuses a query selects, the
confirmation prompt (declined, EOF under CI=true, accepted, skipped with --yes) and the summary."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from processor.cli import main
from processor.ids import new_deployment_id
from processor.status import Status

from .fake_admin import FakeAdmin, running_fake_admin

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ALL = [s.value for s in Status]


@pytest.fixture
def admin() -> Iterator[FakeAdmin]:
    with running_fake_admin() as fake:
        yield fake


def run(admin: FakeAdmin, *args: str, input: str | None = None, ci: bool = True) -> Result:
    env = {"CI": "true"} if ci else {}
    return CliRunner().invoke(main, [*args, "--admin-url", admin.url], input=input, env=env)


def patched_ids(admin: FakeAdmin, verb: str) -> set[str]:
    ids = set()
    for request in admin.patches():
        _, _, invocation_id, patched_verb = request.path.split("/")
        assert patched_verb == verb
        ids.add(invocation_id)
    return ids


def test_pause_by_id_prints_202_then_200_already_paused(admin: FakeAdmin) -> None:
    inv = admin.add("Checkout/process", "running")
    first = run(admin, "invocations", "pause", inv["id"])
    assert first.exit_code == 0, first.output
    assert f"{inv['id']}: paused (202 Accepted): invocation {inv['id']} paused" in first.stdout
    again = run(admin, "invocations", "pause", inv["id"])
    assert again.exit_code == 0
    assert "was already paused (200 OK)" in again.stdout
    assert [r.path for r in admin.patches()] == [f"/invocations/{inv['id']}/pause"] * 2


def test_pause_completed_invocation_prints_409_message_and_exits_1(admin: FakeAdmin) -> None:
    inv = admin.add("Checkout/process", "completed")
    result = run(admin, "invocations", "pause", inv["id"])
    assert result.exit_code == 1
    assert "conflict (409 Conflict)" in result.stderr
    assert "only running or backing-off can be paused" in result.stderr
    assert result.stdout == ""


def test_resume_passes_deployment_latest_and_defaults_to_keep(admin: FakeAdmin) -> None:
    inv = admin.add("Checkout/process", "paused")
    latest = run(admin, "invocations", "resume", inv["id"], "--deployment", "latest")
    assert latest.exit_code == 0, latest.output
    assert "resumed (200 OK)" in latest.stdout
    inv["status"] = "paused"
    dp = new_deployment_id()
    assert run(admin, "invocations", "resume", inv["id"], "--deployment", dp).exit_code == 0
    inv["status"] = "paused"
    assert run(admin, "invocations", "resume", inv["id"]).exit_code == 0
    sent = [r.query for r in admin.patches()]
    assert sent == [{"deployment": ["latest"]}, {"deployment": [dp]}, {"deployment": ["keep"]}]


def test_resume_running_invocation_says_it_was_already_running(admin: FakeAdmin) -> None:
    inv = admin.add("Checkout/process", "running")
    result = run(admin, "invocations", "resume", inv["id"])
    assert result.exit_code == 0, result.output
    assert f"{inv['id']}: was already running, nothing to resume (200 OK)" in result.stdout
    assert "resumed" not in result.stdout


def test_resume_scheduled_invocation_reports_425(admin: FakeAdmin) -> None:
    inv = admin.add("Checkout/process", "scheduled")
    result = run(admin, "invocations", "resume", inv["id"])
    assert result.exit_code == 1
    assert "not started yet (425 Too Early)" in result.stderr


def test_resume_rejects_a_malformed_deployment_before_calling(admin: FakeAdmin) -> None:
    inv = admin.add("Checkout/process", "paused")
    result = run(admin, "invocations", "resume", inv["id"], "--deployment", "newest")
    assert result.exit_code == 2
    assert "expected 'keep', 'latest' or a deployment id" in result.stderr
    assert admin.requests == []


def test_verb_rejects_malformed_id_and_bad_query_before_calling(admin: FakeAdmin) -> None:
    bad_id = run(admin, "invocations", "kill", "inv_short")
    assert bad_id.exit_code == 2
    assert "'inv_' followed by 33 characters" in bad_id.stderr
    bad_query = run(admin, "invocations", "kill", "A/b/c", "--yes")
    assert bad_query.exit_code == 2
    assert "neither an invocation id (inv_…) nor a query 'Service' or 'Service/handler'" in (
        bad_query.stderr
    )
    assert admin.requests == []


@pytest.mark.parametrize(
    ("verb", "applies_to"),
    [
        ("pause", {"running", "backing-off"}),
        ("resume", {"paused", "suspended", "backing-off"}),
        ("cancel", set(ALL) - {"completed"}),
        ("kill", set(ALL) - {"completed"}),
        ("purge", {"completed"}),
    ],
)
def test_query_selects_only_the_statuses_the_verb_applies_to(
    admin: FakeAdmin, verb: str, applies_to: set[str]
) -> None:
    mine = {status: admin.add("Checkout/process", status)["id"] for status in ALL}
    for status in ALL:  # same service other handler, and another service: never selected
        admin.add("Checkout/refund", status)
        admin.add("Greeter/greet", status)
    result = run(admin, "invocations", verb, "Checkout/process", "--yes")
    assert result.exit_code == 0, result.output
    assert patched_ids(admin, verb) == {mine[s] for s in applies_to}
    listed = [r.query for r in admin.requests if r.method == "GET"]
    assert sorted(q["status"][0] for q in listed) == sorted(applies_to)
    assert all(q["service"] == ["Checkout"] and q["handler"] == ["process"] for q in listed)
    assert all(q["limit"] == ["500"] for q in listed)
    assert f"{len(applies_to)} " in result.stdout and ", 0 failed." in result.stdout


def test_query_by_service_covers_all_its_handlers(admin: FakeAdmin) -> None:
    a = admin.add("Checkout/process", "running")["id"]
    b = admin.add("Checkout/refund", "backing-off")["id"]
    admin.add("Greeter/greet", "running")
    result = run(admin, "invocations", "pause", "Checkout", "--yes")
    assert result.exit_code == 0, result.output
    assert patched_ids(admin, "pause") == {a, b}
    assert all("handler" not in r.query for r in admin.requests if r.method == "GET")


def test_query_prompt_declined_changes_nothing(admin: FakeAdmin) -> None:
    for _ in range(2):
        admin.add("Checkout/process", "running")
    admin.add("Checkout/process", "backing-off")
    result = run(admin, "invocations", "pause", "Checkout/process", input="n\n")
    assert result.exit_code == 1
    assert "Pause 3 invocations (running, backing-off) of Checkout/process? [y/N]" in (
        result.stderr
    )
    assert "Nothing was changed." in result.stderr
    assert "pass --yes when not at a terminal" in result.stderr  # stdin here is not a terminal
    assert admin.patches() == []
    assert result.stdout.count("Checkout/process") == 3  # the selection was shown


def test_query_prompt_at_eof_under_ci_is_a_no(admin: FakeAdmin) -> None:
    admin.add("Checkout/process", "paused")
    result = run(admin, "invocations", "resume", "Checkout/process", input="", ci=True)
    assert result.exit_code == 1
    assert "[y/N]" in result.stderr
    assert admin.patches() == []


def test_query_prompt_yes_runs_and_mentions_the_deployment(admin: FakeAdmin) -> None:
    inv = admin.add("Checkout/process", "paused")
    result = run(
        admin, "invocations", "resume", "Checkout/process", "--deployment", "latest", input="y\n"
    )
    assert result.exit_code == 0, result.output
    assert (
        "Resume 1 invocation (paused, suspended, backing-off) of Checkout/process on "
        "deployment latest? [y/N]" in result.stderr
    )
    assert patched_ids(admin, "resume") == {inv["id"]}
    assert admin.patches()[0].query == {"deployment": ["latest"]}
    assert "1 resumed, 0 failed." in result.stdout


def test_query_with_failures_prints_reason_per_id_and_exits_1(admin: FakeAdmin) -> None:
    ok = admin.add("Checkout/process", "running")["id"]
    bad = admin.add("Checkout/process", "running")["id"]
    admin.forced[bad, "pause"] = (409, f"invocation {bad} completed meanwhile")
    result = run(admin, "invocations", "pause", "Checkout/process", "--yes")
    assert result.exit_code == 1
    assert patched_ids(admin, "pause") == {ok, bad}
    assert "1 paused, 1 failed." in result.stdout
    assert f"{bad}: conflict (409 Conflict): invocation {bad} completed meanwhile" in result.stdout
    assert f"{ok}:" not in result.stdout
    progress = ANSI.sub("", result.stderr)
    assert "2/2" in progress and "━" not in result.stdout  # progress on stderr only


def test_query_status_option_narrows_and_is_checked(admin: FakeAdmin) -> None:
    admin.add("Checkout/process", "running")
    backing = admin.add("Checkout/process", "backing-off")["id"]
    narrowed = run(
        admin, "invocations", "pause", "Checkout/process", "--status", "backing-off", "--yes"
    )
    assert narrowed.exit_code == 0, narrowed.output
    assert patched_ids(admin, "pause") == {backing}
    wrong = run(admin, "invocations", "pause", "Checkout/process", "--status", "completed", "--yes")
    assert wrong.exit_code == 2
    assert "pause applies to running, backing-off, not completed" in wrong.stderr


def test_query_limit_caps_the_selection(admin: FakeAdmin) -> None:
    for age in range(5):
        admin.add("Checkout/process", "running", age_s=10 + age)
    result = run(admin, "invocations", "kill", "Checkout/process", "--limit", "3", "--yes")
    assert result.exit_code == 0, result.output
    assert len(admin.patches()) == 3
    assert "raise --limit" in result.stderr


def test_query_with_nothing_selected_exits_0_without_prompting(admin: FakeAdmin) -> None:
    admin.add("Checkout/process", "completed")
    result = run(admin, "invocations", "pause", "Checkout/process")
    assert result.exit_code == 0
    assert "No invocations (running, backing-off) of Checkout/process; nothing to pause." in (
        result.stdout
    )
    assert "[y/N]" not in result.stderr


def test_kill_by_id_shows_the_new_status_when_the_answer_has_no_message(admin: FakeAdmin) -> None:
    inv = admin.add("Checkout/process", "suspended")
    result = run(admin, "invocations", "kill", inv["id"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{inv['id']}: killed (200 OK): now completed"
    again = run(admin, "invocations", "kill", inv["id"])
    assert again.exit_code == 1
    assert f"invocation {inv['id']} is already completed" in again.stderr
