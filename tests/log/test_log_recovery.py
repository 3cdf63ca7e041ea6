"""Opening a damaged log: torn tails are cut (with a warning), real corruption refuses to open."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from log import CorruptLog, FileLog, LogLocked, open_log
from log.segment import HEADER_SIZE, segment_name
from tests.log.log_helpers import payload_for

RECORDS = 12


def write_log(directory: Path, count: int = RECORDS, segment_size: int = 64 << 20) -> None:
    async def go() -> None:
        log = open_log(directory, fsync="never", segment_size=segment_size)
        for lsn in range(1, count + 1):
            await log.append(payload_for(lsn, 20 + lsn % 7))
        await log.close()

    asyncio.run(go())


def record_offsets(count: int = RECORDS) -> list[int]:
    """Byte offset of each record in a single-segment log written by `write_log`."""
    offsets, off = [], 0
    for lsn in range(1, count + 1):
        offsets.append(off)
        off += HEADER_SIZE + 20 + lsn % 7
    return [*offsets, off]


def read_all(directory: Path, readonly: bool = False) -> list[tuple[int, bytes]]:
    async def go() -> list[tuple[int, bytes]]:
        log = FileLog(directory, readonly=readonly)
        try:
            return [(r.lsn, r.payload) async for r in log.read(1)]
        finally:
            await log.close()

    return asyncio.run(go())


def expected(count: int) -> list[tuple[int, bytes]]:
    return [(lsn, payload_for(lsn, 20 + lsn % 7)) for lsn in range(1, count + 1)]


def segment(directory: Path, first_lsn: int = 1) -> Path:
    return directory / segment_name(first_lsn)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=1, max_value=10_000))
def test_truncated_last_record_is_cut_back_to_the_records_before_it(cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_log(directory)
        offsets = record_offsets()
        last_start, end = offsets[-2], offsets[-1]
        keep = last_start + cut % (end - last_start)  # anywhere inside the last record
        os.truncate(segment(directory), keep)
        with capture_logs() as logs:
            records = read_all(directory)
        assert records == expected(RECORDS - 1)
        dropped = keep - last_start
        if dropped:
            assert logs[0]["log_level"] == "warning"
            assert logs[0]["bytes_dropped"] == dropped
            assert f"dropped {dropped} bytes" in logs[0]["message"]
        assert segment(directory).stat().st_size == last_start
        assert read_all(directory) == expected(RECORDS - 1)  # a second open finds nothing to cut


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0, max_value=10_000), flip=st.integers(1, 255))
def test_a_damaged_last_record_is_dropped_as_a_torn_tail(position: int, flip: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_log(directory)
        offsets = record_offsets()
        last_start, end = offsets[-2], offsets[-1]
        at = last_start + position % (end - last_start)
        data = bytearray(segment(directory).read_bytes())
        data[at] ^= flip
        segment(directory).write_bytes(bytes(data))
        with capture_logs() as logs:
            records = read_all(directory)
        assert records == expected(RECORDS - 1)
        assert logs and logs[0]["bytes_dropped"] == end - last_start
        assert asyncio.run(append_one(directory)) == RECORDS  # appending reuses the cut LSN


async def append_one(directory: Path) -> int:
    log = open_log(directory)
    try:
        return await log.append(b"again")
    finally:
        await log.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    victim=st.integers(1, RECORDS - 1), position=st.integers(0, 10_000), flip=st.integers(1, 255)
)
def test_damage_followed_by_intact_records_refuses_to_open(
    victim: int, position: int, flip: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_log(directory)
        offsets = record_offsets()
        start, end = offsets[victim - 1], offsets[victim]
        data = bytearray(segment(directory).read_bytes())
        data[start + position % (end - start)] ^= flip
        segment(directory).write_bytes(bytes(data))
        size_before = segment(directory).stat().st_size
        with pytest.raises(CorruptLog) as info:
            FileLog(directory)
        error = info.value
        assert error.path == segment(directory)
        assert error.offset == start
        assert error.lsn == victim
        message = str(error)
        assert str(segment(directory)) in message
        assert f"byte offset {start}" in message
        assert f"LSN {victim}" in message
        assert "backup" in message and f"truncate -s {start}" in message
        assert segment(directory).stat().st_size == size_before  # nothing was cut
        with pytest.raises(CorruptLog):
            FileLog(directory, readonly=True)


def test_damage_in_a_sealed_segment_refuses_to_open(tmp_path: Path) -> None:
    write_log(tmp_path, count=60, segment_size=1024)
    sealed = sorted(tmp_path.glob("*.seg"))[0]
    size = sealed.stat().st_size
    with open(sealed, "r+b") as f:  # cut the sealed segment's last record in half
        f.truncate(size - 5)
    with pytest.raises(CorruptLog, match="later segment files exist") as info:
        FileLog(tmp_path)
    assert info.value.path == sealed


def test_a_missing_segment_is_an_lsn_gap_that_refuses_to_open(tmp_path: Path) -> None:
    write_log(tmp_path, count=60, segment_size=1024)
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) >= 3
    segments[1].unlink()
    with pytest.raises(CorruptLog, match=r"starts at LSN \d+ but .* ends at LSN \d+") as info:
        FileLog(tmp_path)
    assert info.value.path == segments[2]


def test_an_intact_record_with_the_wrong_lsn_refuses_to_open(tmp_path: Path) -> None:
    write_log(tmp_path, count=3)
    seg = segment(tmp_path)
    seg.rename(tmp_path / segment_name(2))  # every record is now one LSN off
    with pytest.raises(CorruptLog, match="holding LSN 1 where LSN 2 belongs"):
        FileLog(tmp_path)


def test_readonly_open_ignores_a_torn_tail_without_cutting_it(tmp_path: Path) -> None:
    write_log(tmp_path)
    size = segment(tmp_path).stat().st_size
    os.truncate(segment(tmp_path), size - 3)
    reader = FileLog(tmp_path, readonly=True)
    assert reader.torn_tail_bytes == size - 3 - record_offsets()[-2]
    asyncio.run(reader.close())
    with capture_logs() as logs:
        assert read_all(tmp_path, readonly=True) == expected(RECORDS - 1)
    assert logs == []
    assert segment(tmp_path).stat().st_size == size - 3


def test_a_second_process_cannot_open_the_log_for_writing(tmp_path: Path) -> None:
    write_log(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from log import FileLog
                log = FileLog({str(tmp_path)!r})
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(LogLocked) as info:
            FileLog(tmp_path)
        assert str(tmp_path) in str(info.value)
        assert "another process" in str(info.value)
        assert read_all(tmp_path, readonly=True) == expected(RECORDS)  # readers still work
    finally:
        holder.communicate("", timeout=10)
    assert read_all(tmp_path) == expected(RECORDS)  # the lock went with the process


def test_header_layout_is_length_crc_lsn_timestamp(tmp_path: Path) -> None:
    async def go() -> None:
        log = open_log(tmp_path, clock=lambda: 1234)
        await log.append(b"hello")
        await log.close()

    asyncio.run(go())
    data = segment(tmp_path).read_bytes()
    length, _crc, lsn, ts = struct.unpack_from("<IIQQ", data)
    assert (length, lsn, ts, data[HEADER_SIZE:]) == (5, 1, 1234, b"hello")
