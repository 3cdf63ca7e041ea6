"""The admin API's JSON shapes (`processor.api.render`): times and payloads."""

from __future__ import annotations

import json
import math

import msgpack

from processor.api.render import event_json, journal_entry_json, result_json
from processor.state_machine.types import Event
from processor.status import Result

MS = 1_795_843_858_038  # 2026-11-28T05:30:58.038Z


def test_event_data_times_are_iso_8601_like_every_other_time() -> None:
    created = Event(0, "created", MS, {"status": "scheduled", "execute_at": MS + 1500})
    assert event_json(created) == {
        "kind": "created",
        "at": "2026-11-28T05:30:58.038Z",
        "seq": 0,
        "status": "scheduled",
        "execute_at": "2026-11-28T05:30:59.538Z",
    }


def test_event_data_that_is_not_a_time_is_left_as_it_is() -> None:
    event = Event(3, "transient-error", MS, {"code": 500, "attempt": 2, "related_at": "x"})
    body = event_json(event)
    assert (body["code"], body["attempt"], body["related_at"]) == (500, 2, "x")


def test_journal_wake_up_time_is_iso_8601() -> None:
    entry = journal_entry_json(2, {"kind": "sleep", "completion_id": 1, "wake_up_at": MS}, MS)
    assert entry["wake_up_at"] == "2026-11-28T05:30:58.038Z"


def test_result_is_decoded_json_or_base64_under_its_own_key() -> None:
    assert result_json(Result(value=b'{"ok": true}')) == {"value": {"ok": True}, "value_size": 12}
    binary = result_json(Result(value=b"\xff\x00"))
    assert binary == {"value_size": 2, "value_base64": "/wA="}


def _standard_json(body: object) -> object:
    """`body` through a strict JSON round trip: fails on NaN/Infinity and on non-string keys."""
    return json.loads(json.dumps(body, allow_nan=False))


def test_journal_entry_with_odd_msgpack_values_renders_as_standard_json() -> None:
    entry = {
        "kind": "run",
        b"raw-key": 1,
        7: "int key",
        "at": msgpack.Timestamp.from_unix_nano(MS * 1_000_000),
        "ext": msgpack.ExtType(42, b"\x01\x02"),
        "ratio": math.nan,
        "limit": -math.inf,
    }
    body = _standard_json(journal_entry_json(1, entry, MS))
    assert body == {
        "index": 1,
        "kind": "run",
        "appended_at": "2026-11-28T05:30:58.038Z",
        "raw-key": 1,
        "7": "int key",
        "at": "2026-11-28T05:30:58.038Z",
        "ext": {"ext": 42, "base64": "AQI="},
        "ratio": "nan",
        "limit": "-inf",
    }


def test_deeply_nested_entry_is_cut_off_instead_of_failing_the_answer() -> None:
    nested: object = "bottom"
    for _ in range(900):
        nested = [nested]
    body = _standard_json(journal_entry_json(1, {"kind": "run", "data": nested}, MS))
    assert "nested deeper than" in json.dumps(body)


def test_payload_that_is_not_standard_json_is_shown_as_base64() -> None:
    for raw in (b"NaN", b'{"x": Infinity}', b"1e400", b"[-1e999]", b"[" * 5000 + b"]" * 5000):
        body = _standard_json(result_json(Result(value=raw)))
        assert isinstance(body, dict) and "value_base64" in body and "value" not in body


def test_entry_keys_that_collide_with_api_fields_or_each_other_are_all_kept() -> None:
    entry = {"kind": "run", "index": "mine", b"kind": "raw", 7: "int", "7": "str"}
    body = journal_entry_json(3, entry, MS)
    assert (body["index"], body["kind"]) == (3, "run")
    assert body["entry.index"] == "mine" and body["entry.kind"] == "raw"
    assert sorted([body["7"], body["entry.7"]]) == ["int", "str"]
