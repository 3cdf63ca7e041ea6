"""The partition state store (SQLite): schema and migrations, batch load/write, read queries,
the state digest used by replay."""

from processor.storage.batch import BatchWrites
from processor.storage.digest import Difference, digest_file, first_difference
from processor.storage.schema import SCHEMA_VERSION, SchemaError
from processor.storage.store import JournalRow, PartitionRow, Store, TimerRow

__all__ = [
    "SCHEMA_VERSION",
    "BatchWrites",
    "Difference",
    "JournalRow",
    "PartitionRow",
    "SchemaError",
    "Store",
    "TimerRow",
    "digest_file",
    "first_difference",
]
