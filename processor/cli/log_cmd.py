"""`processor log …`: inspect a partition's command log, read-only."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import msgpack

from log import FileLog, LogError, Record
from log.segment import SUFFIX as SEGMENT_SUFFIX
from processor.codec import KIND_NAMES, VERSION


@click.group()
def log() -> None:
    """Inspect a command log."""


def _jsonable(value: Any) -> Any:
    """msgpack data -> JSON data: bytes as UTF-8 text when printable, else {"base64": …}."""
    if isinstance(value, bytes):
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None and text.isprintable():
            return text
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code, "base64": base64.b64encode(value.data).decode()}
    return value


def decode_payload(payload: bytes) -> tuple[str, Any]:
    """("msgpack", JSON-able value) when the payload is one msgpack value, else ("hex", hex)."""
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:
        return "hex", binascii.hexlify(payload).decode()
    return "msgpack", _jsonable(value)


def command_kind(decoded: Any) -> str | None:
    """The command name when the payload is this build's command envelope."""
    if isinstance(decoded, list) and len(decoded) >= 2 and decoded[0] == VERSION:
        kind = decoded[1]
        return KIND_NAMES.get(kind) if isinstance(kind, int) else None
    return None


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def render(record: Record, as_json: bool) -> str:
    encoding, payload = decode_payload(record.payload)
    if as_json:
        entry = {
            "lsn": record.lsn,
            "timestamp_ms": record.timestamp_ms,
            "time": iso_time(record.timestamp_ms),
            "size": len(record.payload),
            "encoding": encoding,
            "payload": payload,
        }
        kind = command_kind(payload) if encoding == "msgpack" else None
        if kind is not None:
            entry["command"] = kind
        return json.dumps(entry, ensure_ascii=False)
    shown = json.dumps(payload, ensure_ascii=False) if encoding == "msgpack" else f"hex:{payload}"
    kind = command_kind(payload) if encoding == "msgpack" else None
    label = f"{kind} " if kind else ""
    return (
        f"{record.lsn:>8}  {iso_time(record.timestamp_ms)}  "
        f"{len(record.payload):>6} B  {label}{shown}"
    )


def warn_if_no_segments(directory: Path | str) -> None:
    """A note on stderr when `directory` holds no log segment: an empty log looks like a wrong
    path, so say which files were expected and where a partition keeps them."""
    if Path(directory).is_dir() and not any(Path(directory).glob("*" + SEGMENT_SUFFIX)):
        click.echo(
            f"note: {directory} holds no log segments (files named like "
            f"00000000000000000001{SEGMENT_SUFFIX}); a partition's log is "
            "<data-dir>/partitions/<n>/log",
            err=True,
        )


async def _dump(directory: str, from_lsn: int | None, limit: int | None, as_json: bool) -> None:
    warn_if_no_segments(directory)
    opened = FileLog(directory, readonly=True)  # no lock, never truncates
    try:
        lsn = opened.first_lsn() if from_lsn is None else from_lsn
        remaining = limit
        while remaining is None or remaining > 0:
            batch = await opened.read_batch(
                lsn, 1024 if remaining is None else min(1024, remaining)
            )
            if not batch:
                break
            click.echo("\n".join(render(r, as_json) for r in batch))
            lsn = batch[-1].lsn + 1
            if remaining is not None:
                remaining -= len(batch)
        if opened.torn_tail_bytes:
            click.echo(
                f"note: ignored {opened.torn_tail_bytes} bytes of a partly written record at "
                "the end of the log",
                err=True,
            )
    finally:
        await opened.close()


@log.command()
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="The log directory (e.g. data/partitions/0/log).",
)
@click.option(
    "--from-lsn",
    type=click.IntRange(min=1),
    default=None,
    help="First LSN to print (default: the first readable one).",
)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Print at most N records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record.")
def dump(directory: str, from_lsn: int | None, limit: int | None, as_json: bool) -> None:
    """Print the records of a log: LSN, time, size and payload.

    Payloads that are msgpack are shown as JSON (bytes as text when printable, else base64),
    others as hex. Opens the log read-only: it works while a daemon writes to it.
    """
    try:
        asyncio.run(_dump(directory, from_lsn, limit, as_json))
    except LogError as exc:
        raise click.ClickException(str(exc)) from None
