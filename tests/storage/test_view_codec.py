"""The view blob round-trips every InvocationView and is canonical."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given

from processor.status import InvocationView, Status
from processor.storage.view_codec import ViewCodecError, decode_view, encode_view

from .strategies import make_view, views


@given(views)
def test_any_view_round_trips_through_the_blob(view: InvocationView) -> None:
    assert decode_view(encode_view(view)) == view


@given(views)
def test_encoding_is_canonical_so_equal_views_give_equal_bytes(view: InvocationView) -> None:
    assert encode_view(decode_view(encode_view(view))) == encode_view(view)


def test_sets_are_encoded_sorted_whatever_their_iteration_order() -> None:
    a = make_view(completed_ids=frozenset([3, 1, 2]), sleeping=frozenset([9, 7]))
    b = make_view(completed_ids=frozenset([2, 3, 1]), sleeping=frozenset([7, 9]))
    assert encode_view(a) == encode_view(b)


def test_blob_written_before_a_field_was_added_decodes_with_its_default() -> None:
    view = make_view(status=Status.PAUSED, event_count=4, transient_streak=2)
    raw = msgpack.unpackb(encode_view(view))
    old = msgpack.packb(raw[:-2], use_bin_type=True)  # as if the last two fields did not exist
    decoded = decode_view(old)
    assert decoded.event_count == 0 and decoded.transient_streak == 0
    assert decoded.status is Status.PAUSED


def test_unknown_blob_version_is_a_clear_error() -> None:
    raw = msgpack.unpackb(encode_view(make_view()))
    raw[0] = 99
    with pytest.raises(ViewCodecError, match="version 99"):
        decode_view(msgpack.packb(raw))


def test_garbage_blob_is_a_view_codec_error() -> None:
    with pytest.raises(ViewCodecError):
        decode_view(b"\xc1not msgpack")


def test_codec_covers_every_field_of_the_view() -> None:
    # A field added to InvocationView must be added to the codec too, or it would be lost on write.
    from dataclasses import fields

    from processor.storage.view_codec import view_to_wire

    assert len(view_to_wire(make_view())) - 1 == len(fields(InvocationView))
