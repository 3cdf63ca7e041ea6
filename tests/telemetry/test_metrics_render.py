"""Metrics: own registry, the documented metric names, bounded labels."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from processor.metrics import Metrics
from processor.status import Status


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def exercised() -> Metrics:
    m = Metrics()
    m.set_invocations_by_status(0, {"running": 3, Status.PAUSED: 1})
    m.set_invocations_by_status(1, {"completed": 5})
    m.attempt_ended("completed")
    m.attempt_ended("failed")
    m.attempt_ended("failed")
    m.paused("manual")
    m.paused("max-attempts")
    m.observe_log_append(0, 0.0004)
    m.observe_apply_batch(0, 0.002, 64)
    m.set_applied_lsn(0, 1234)
    m.set_applied_lsn(1, 7)
    m.ingress_request("call", 200)
    m.ingress_request("send", 202)
    m.ingress_request("other", 404)
    return m


def test_render_contains_every_metric_with_its_values() -> None:
    body, content_type = exercised().render()
    assert content_type.startswith("text/plain")
    text = body.decode()
    for name in (
        "processor_invocations",
        "processor_attempts_total",
        "processor_pauses_total",
        "processor_log_append_seconds_bucket",
        "processor_apply_batch_seconds_bucket",
        "processor_apply_batch_commands_bucket",
        "processor_applied_lsn",
        "processor_ingress_requests_total",
    ):
        assert name in text
    got = samples(exercised())
    assert (
        got[("processor_invocations", frozenset({("partition", "0"), ("status", "running")}))] == 3
    )
    assert (
        got[("processor_invocations", frozenset({("partition", "0"), ("status", "paused")}))] == 1
    )
    assert got[("processor_attempts_total", frozenset({("outcome", "failed")}))] == 2
    assert got[("processor_pauses_total", frozenset({("reason", "max-attempts")}))] == 1
    assert got[("processor_applied_lsn", frozenset({("partition", "0")}))] == 1234
    assert (
        got[("processor_ingress_requests_total", frozenset({("route", "send"), ("code", "202")}))]
        == 1
    )
    assert got[("processor_apply_batch_commands_sum", frozenset({("partition", "0")}))] == 64


def test_invocation_counts_reset_statuses_missing_from_a_new_count() -> None:
    m = Metrics()
    m.set_invocations_by_status(0, {"running": 3})
    m.set_invocations_by_status(0, {"completed": 3})
    got = samples(m)
    running = ("processor_invocations", frozenset({("partition", "0"), ("status", "running")}))
    assert got[running] == 0
    for status in Status:
        key = ("processor_invocations", frozenset({("partition", "0"), ("status", status.value)}))
        assert key in got


def test_outcomes_and_reasons_are_exposed_at_zero_before_any_event() -> None:
    got = samples(Metrics())
    for outcome in ("completed", "suspended", "failed", "aborted"):
        assert got[("processor_attempts_total", frozenset({("outcome", outcome)}))] == 0
    for reason in ("manual", "max-attempts"):
        assert got[("processor_pauses_total", frozenset({("reason", reason)}))] == 0


def test_no_per_invocation_labels_and_only_bounded_label_names() -> None:
    body, _ = exercised().render()
    text = body.decode()
    assert "inv_" not in text
    label_names = set(re.findall(r"[{,]([a-z_]+)=", text))
    assert label_names <= {"partition", "status", "outcome", "reason", "route", "code", "le"}


def test_metrics_use_their_own_registry() -> None:
    first, second = exercised(), Metrics()
    assert first.registry is not REGISTRY
    assert REGISTRY.get_sample_value("processor_applied_lsn", {"partition": "0"}) is None
    # Two instances coexist (a global registry would reject the duplicate names).
    assert ("processor_applied_lsn", frozenset({("partition", "0")})) not in samples(second)


@pytest.mark.parametrize(
    ("call", "arg"),
    [("attempt_ended", "exploded"), ("paused", "bored")],
)
def test_unknown_label_values_are_rejected(call: str, arg: str) -> None:
    with pytest.raises(ValueError, match="accepted"):
        getattr(Metrics(), call)(arg)


def test_unknown_route_kind_or_code_is_rejected() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="accepted"):
        m.ingress_request("/Svc/handler", 200)
    with pytest.raises(ValueError, match="status code"):
        m.ingress_request("call", 42)


def test_latency_histogram_buckets_are_cumulative_with_bounds_inclusive() -> None:
    m = Metrics()
    for seconds in (0.001, 0.0011, 7.0, 99.0):  # 0.001 is a bound: counted in le="0.001"
        m.observe_log_append(2, seconds)
    got = samples(m)

    def bucket(le: str) -> float:
        labels = frozenset({("partition", "2"), ("le", le)})
        return got[("processor_log_append_seconds_bucket", labels)]

    assert (bucket("0.0005"), bucket("0.001"), bucket("0.0025")) == (0, 1, 2)
    assert (bucket("5.0"), bucket("10.0"), bucket("+Inf")) == (2, 3, 4)
    count = ("processor_log_append_seconds_count", frozenset({("partition", "2")}))
    total = ("processor_log_append_seconds_sum", frozenset({("partition", "2")}))
    assert got[count] == 4 and got[total] == pytest.approx(106.0021)
