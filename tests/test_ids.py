"""Invocation ids (SPEC §7): their form, round trips, routing, and the ingress's random source."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.ids import (
    INVOCATION_BODY_LEN,
    InvalidId,
    RandomIds,
    idempotent_invocation_id,
    make_invocation_id,
    parse_invocation_id,
    partition_of_key,
)


@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 128) - 1))
def test_invocation_id_round_trips_its_partition_key(key: int, suffix: int) -> None:
    text = make_invocation_id(key, suffix)
    assert text.startswith("inv_") and len(text) == 4 + INVOCATION_BODY_LEN
    assert parse_invocation_id(text) == key


def test_invocation_id_encoding_is_stable() -> None:
    # Ids are stored in logs: their encoding must never change.
    assert make_invocation_id(0, 0) == "inv_" + "0" * 33
    assert make_invocation_id(0, 61) == "inv_" + "0" * 32 + "z"
    assert make_invocation_id(0, 62) == "inv_" + "0" * 31 + "10"
    assert make_invocation_id(1, 0) == "inv_000000000007n42DGM5Tflk9n8mt7Fhc8"
    assert (
        idempotent_invocation_id("Checkout", "process", "order-42")
        == "inv_2WkhX9vUbpXnKbI7XRBGpSpIDdRNxDR97"
    )


def test_random_ids_are_distinct_well_formed_and_spread_over_partitions() -> None:
    ids = RandomIds(batch=4)
    drawn = [ids.next() for _ in range(2_000)]
    assert len({text for text, _ in drawn}) == len(drawn)
    for text, key in drawn:
        assert parse_invocation_id(text) == key
    partitions = {partition_of_key(key, 8) for _, key in drawn}
    assert partitions == set(range(8))


@pytest.mark.parametrize(
    "bad", ["", "inv_", "inv_" + "!" * 33, "dp_" + "0" * 33, "inv_" + "0" * 34]
)
def test_malformed_invocation_id_is_rejected_with_the_expected_form(bad: str) -> None:
    with pytest.raises(InvalidId, match="followed by 33 characters"):
        parse_invocation_id(bad)
