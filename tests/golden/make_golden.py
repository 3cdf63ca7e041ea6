"""Generate the golden logs and their digests (run once; the files are checked in).

    python tests/golden/make_golden.py            # refuses to overwrite existing logs
    python tests/golden/make_golden.py --force    # only for a deliberate, documented format break

Each golden log is a FileLog directory `tests/golden/<name>/` written with a fixed clock, so the
bytes are reproducible; `digests.json` holds the state digest that replaying it must give. The
test (test_golden.py) replays them with the current code: a change that alters how an old log
replays shows up as a digest mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "bench"))

from workload import WorkloadConfig, generate, simple  # noqa: E402

from log import open_log  # noqa: E402
from processor.codec import encode  # noqa: E402
from processor.commands import AnnounceLeader  # noqa: E402
from processor.replay import replay  # noqa: E402

START_MS = 1_700_000_000_000


def fixed_clock() -> Callable[[], int]:
    state = [START_MS]

    def now() -> int:
        state[0] += 7
        return state[0]

    return now


def _leaders(payloads: Iterable[bytes]) -> list[bytes]:
    out = [encode(AnnounceLeader(1))]
    for i, p in enumerate(payloads):
        if i == 60:
            out.append(encode(AnnounceLeader(2)))  # a leader change mid-log
        out.append(p)
    return out


GOLDEN: dict[str, Callable[[], list[bytes]]] = {
    "mixed": lambda: _leaders(generate(WorkloadConfig(30, seed=101, concurrency=12))),
    "failures": lambda: list(
        generate(
            WorkloadConfig(
                15,
                seed=202,
                concurrency=6,
                fail_rate=0.45,
                fatal_rate=0.05,
                pause_rate=0.3,
                cancel_rate=0.1,
                kill_rate=0.1,
                purge_rate=0.5,
            )
        )
    ),
    "happy-path": lambda: list(simple(25, seed=303)),
}


async def write(name: str, payloads: list[bytes]) -> dict[str, object]:
    directory = HERE / name
    log = open_log(directory, fsync="never", clock=fixed_clock())
    try:
        await log.append_batch(payloads)
    finally:
        await log.close()
    (directory / "LOCK").unlink(missing_ok=True)
    reader = open_log(directory, readonly=True)
    try:
        result = await replay(reader, log_name=name)
    finally:
        await reader.close()
    return {"records": result.records, "last_lsn": result.last_lsn, "digest": result.digest}


async def main(force: bool) -> None:
    digests: dict[str, object] = {}
    for name, make in GOLDEN.items():
        directory = HERE / name
        if directory.exists():
            if not force:
                raise SystemExit(f"{directory} exists; golden logs are never regenerated silently")
            shutil.rmtree(directory)
        digests[name] = await write(name, make())
        print(name, digests[name])
    (HERE / "digests.json").write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--force", action="store_true")
    asyncio.run(main(parser.parse_args().force))
