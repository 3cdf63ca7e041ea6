"""Hypothesis strategies and plain builders for invocation views (storage tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from processor.retry import RetryPolicy
from processor.status import Failure, InvocationView, Result, Status

ints = st.integers(min_value=0, max_value=2**53)
small = st.integers(min_value=0, max_value=1000)
text = st.text(max_size=20)

failures = st.builds(
    Failure,
    code=st.integers(min_value=0, max_value=999),
    message=text,
    stacktrace=st.none() | text,
    attempt=st.none() | small,
    related_index=st.none() | small,
)
results = st.builds(Result, value=st.none() | st.binary(max_size=20), failure=st.none() | failures)
policies = st.builds(
    RetryPolicy,
    initial_interval_ms=small,
    exponentiation_factor=st.floats(min_value=1.0, max_value=10.0),
    max_interval_ms=ints,
    max_attempts=st.none() | st.integers(min_value=1, max_value=100),
    on_max_attempts=st.sampled_from(["pause", "kill"]),
)
views = st.builds(
    InvocationView,
    id=text,
    service=text,
    handler=text,
    status=st.sampled_from(list(Status)),
    created_at=ints,
    modified_at=ints,
    retry_policy=policies,
    idempotency_key=st.none() | text,
    headers=st.dictionaries(text, text, max_size=3),
    execute_at=st.none() | ints,
    running_at=st.none() | ints,
    completed_at=st.none() | ints,
    next_retry_at=st.none() | ints,
    attempt=small,
    retry_count=small,
    pinned_deployment=st.none() | text,
    last_attempt_deployment=st.none() | text,
    journal_length=small,
    completed_ids=st.frozensets(small, max_size=5),
    sleeping=st.frozensets(small, max_size=5),
    cancel_requested=st.booleans(),
    awaiting=st.lists(small, max_size=4).map(tuple),
    last_failure=st.none() | failures,
    result=st.none() | results,
    event_count=small,
    transient_streak=small,
)


def make_view(inv: str = "inv_1", **fields: Any) -> InvocationView:
    base: dict[str, Any] = {
        "id": inv,
        "service": "Greeter",
        "handler": "greet",
        "status": Status.RUNNING,
        "created_at": 1_000,
        "modified_at": 1_000,
        "retry_policy": RetryPolicy(),
    }
    base.update(fields)
    return InvocationView(**base)
