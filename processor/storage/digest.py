"""The state digest (sha256 over every state table in primary-key order) and the first difference.

Canonical form: for each table of `STATE_TABLES` in order, the table name, then every row (its
state columns, ordered by invocation id and the row's own key) as a msgpack array. SQLite values
are ints, strs, bytes, floats and NULL, all of which msgpack encodes unambiguously, so two stores
have the same digest exactly when their state tables hold the same rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from processor.storage.schema import STATE_TABLES
from processor.storage.view_codec import decode_view


def _rows(
    conn: sqlite3.Connection, table: str, cols: tuple[str, ...], pk: tuple[str, ...]
) -> sqlite3.Cursor:
    return conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {', '.join(pk)}")


def digest_conn(conn: sqlite3.Connection) -> str:
    """The digest of the state `conn` sees, read in one transaction (a consistent snapshot)."""
    if conn.in_transaction:
        return _digest(conn)
    conn.execute("BEGIN")
    try:
        return _digest(conn)
    finally:
        conn.execute("ROLLBACK")


def _digest(conn: sqlite3.Connection) -> str:
    h = hashlib.sha256()
    pack = msgpack.Packer(use_bin_type=True).pack
    for table, cols, pk in STATE_TABLES:
        h.update(pack(table))
        cur = _rows(conn, table, cols, pk)
        while True:
            chunk = cur.fetchmany(4096)
            if not chunk:
                break
            for row in chunk:
                h.update(pack(row))
    return h.hexdigest()


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    if not Path(path).exists():
        raise FileNotFoundError(f"state store {path} does not exist")
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)


def digest_file(path: str | Path) -> str:
    conn = connect_readonly(path)
    try:
        return digest_conn(conn)
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Difference:
    """The first row (in digest order) where two stores differ; a side is None if the row is
    missing there."""

    table: str
    key: tuple[Any, ...]
    row_a: dict[str, Any] | None
    row_b: dict[str, Any] | None

    def describe(self, name_a: str = "a", name_b: str = "b") -> str:
        return (
            f"first difference in table {self.table!r} at key {self.key!r}:\n"
            f"  {name_a}: {_show(self.row_a)}\n"
            f"  {name_b}: {_show(self.row_b)}"
        )


def _show(row: dict[str, Any] | None) -> str:
    if row is None:
        return "(missing)"
    return ", ".join(f"{k}={v!r}" for k, v in row.items())


def _readable(table: str, cols: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col, value in zip(cols, row, strict=True):
        if isinstance(value, bytes):
            try:
                value = (
                    decode_view(value)
                    if (table, col) == ("invocations", "view")
                    else msgpack.unpackb(value, raw=False, strict_map_key=False)
                )
            except Exception:
                value = value.hex()
        out[col] = value
    return out


def first_difference_conn(a: sqlite3.Connection, b: sqlite3.Connection) -> Difference | None:
    for table, state_cols, pk in STATE_TABLES:
        cur_a, cur_b = _rows(a, table, state_cols, pk), _rows(b, table, state_cols, pk)
        cols = [d[0] for d in cur_a.description]
        idx = [cols.index(c) for c in pk]
        ra, rb = cur_a.fetchone(), cur_b.fetchone()
        while ra is not None or rb is not None:
            ka = tuple(ra[i] for i in idx) if ra is not None else None
            kb = tuple(rb[i] for i in idx) if rb is not None else None
            if ra is not None and rb is not None and ka is not None and ka == kb:
                if ra != rb:
                    return Difference(
                        table, ka, _readable(table, cols, ra), _readable(table, cols, rb)
                    )
                ra, rb = cur_a.fetchone(), cur_b.fetchone()
                continue
            # the smaller key exists on one side only (SQLite orders the same types as Python here)
            if kb is None or (ka is not None and ka < kb):
                assert ra is not None and ka is not None
                return Difference(table, ka, _readable(table, cols, ra), None)
            assert rb is not None and kb is not None
            return Difference(table, kb, None, _readable(table, cols, rb))
    return None


def first_difference(path_a: str | Path, path_b: str | Path) -> Difference | None:
    a, b = connect_readonly(path_a), connect_readonly(path_b)
    try:
        return first_difference_conn(a, b)
    finally:
        a.close()
        b.close()
