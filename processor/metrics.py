"""Prometheus metrics of the daemon, on a registry of its own (never the process-global one).

Labels are limited to small fixed sets (status, outcome, reason, partition, route kind, HTTP code):
never an invocation id, service or deployment, so the number of series stays bounded. Label values
outside the fixed sets are rejected with ValueError rather than silently growing the series set.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily

from processor.status import Status

ATTEMPT_OUTCOMES = ("completed", "suspended", "failed", "aborted")
PAUSE_REASONS = ("manual", "max-attempts")
ROUTE_KINDS = ("call", "send", "output", "attach", "other")

# 50 µs .. 10 s: an fsync'd append or a batch commit is sub-millisecond to seconds under load.
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class LoopHistogram:
    """A histogram with one label, updated from the event loop's thread only.

    prometheus_client's `Histogram.observe` takes a lock per counter it touches; these are
    observed on every log append and every batch, on the loop, so they are plain lists here,
    turned into the same exposition (`_bucket{le=...}`, `_sum`, `_count`) when scraped."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = tuple(float(b) for b in buckets)
        # label value -> [counts per bucket (the last is +Inf), sum]
        self._series: dict[int, tuple[list[int], list[float]]] = {}
        registry.register(self)

    def observe(self, label_value: int, value: float) -> None:
        series = self._series.get(label_value)
        if series is None:
            series = self._series[label_value] = ([0] * (len(self.bounds) + 1), [0.0])
        series[0][bisect_left(self.bounds, value)] += 1
        series[1][0] += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, (counts, total) in sorted(self._series.items()):
            cumulative, running = [], 0
            for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == math.inf else repr(bound), running))
            family.add_metric([str(value)], cumulative, total[0])
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=[self.label])


def _check(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; accepted: {', '.join(allowed)}")


class Metrics:
    """All metrics of one daemon; `render()` answers `GET /metrics`."""

    def __init__(self) -> None:
        # Labelled children by (metric name, label values): prometheus_client's `labels()` takes
        # a lock and builds its key on every call, and some of these run several times per
        # invocation.
        self._children: dict[tuple[str, ...], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.invocations = Gauge(
            "processor_invocations",
            "Invocations currently stored, by partition and status.",
            ["partition", "status"],
            registry=r,
        )
        self.attempts = Counter(
            "processor_attempts", "Attempts that ended, by outcome.", ["outcome"], registry=r
        )
        self.pauses = Counter(
            "processor_pauses", "Invocations paused, by reason.", ["reason"], registry=r
        )
        self.log_append_seconds = LoopHistogram(
            "processor_log_append_seconds",
            "Latency of one log append (including fsync when configured).",
            "partition",
            LATENCY_BUCKETS,
            registry=r,
        )
        self.apply_batch_seconds = LoopHistogram(
            "processor_apply_batch_seconds",
            "Latency of applying and committing one batch of commands.",
            "partition",
            LATENCY_BUCKETS,
            registry=r,
        )
        self.apply_batch_size = LoopHistogram(
            "processor_apply_batch_commands",
            "Number of commands in one applied batch.",
            "partition",
            BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.applied_lsn = Gauge(
            "processor_applied_lsn",
            "Last log sequence number applied to the partition's state.",
            ["partition"],
            registry=r,
        )
        self.ingress_requests = Counter(
            "processor_ingress_requests",
            "Ingress HTTP requests answered, by route kind and status code.",
            ["route", "code"],
            registry=r,
        )
        # Expose the fixed series at 0 from the start, so rates work from the first scrape.
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(outcome)
        for reason in PAUSE_REASONS:
            self.pauses.labels(reason)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def set_invocations_by_status(self, partition: int, counts: Mapping[str | Status, int]) -> None:
        """Set the partition's counts; statuses missing from `counts` are set to 0."""
        by_value = {str(Status(s)): n for s, n in counts.items()}
        for status in Status:
            self.invocations.labels(str(partition), status.value).set(by_value.get(status.value, 0))

    def attempt_ended(self, outcome: str) -> None:
        _check("attempt outcome", outcome, ATTEMPT_OUTCOMES)
        self._child(self.attempts, outcome).inc()

    def paused(self, reason: str) -> None:
        _check("pause reason", reason, PAUSE_REASONS)
        self._child(self.pauses, reason).inc()

    def observe_log_append(self, partition: int, seconds: float) -> None:
        self.log_append_seconds.observe(partition, seconds)

    def observe_apply_batch(self, partition: int, seconds: float, commands: int) -> None:
        self.apply_batch_seconds.observe(partition, seconds)
        self.apply_batch_size.observe(partition, commands)

    def set_applied_lsn(self, partition: int, lsn: int) -> None:
        self._child(self.applied_lsn, str(partition)).set(lsn)

    def ingress_request(self, route: str, code: int) -> None:
        _check("route kind", route, ROUTE_KINDS)
        if not 100 <= code <= 599:
            raise ValueError(f"not an HTTP status code: {code}")
        self.ingress_requests.labels(route, str(code)).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type, for `GET /metrics`."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
