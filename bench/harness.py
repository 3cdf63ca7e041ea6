"""Processes for the end-to-end benchmarks: the daemon, example deployments and the load generator.

Everything runs as a separate OS process on loopback, on free ports, in a throw-away data directory:

- `deployment(script, ...)` starts `examples/<script>` (or any script printing
  `listening on http://HOST:PORT`) with `--port 0` and yields its URL;
- `daemon(...)` starts `processor serve` with `--data-dir` and `--partitions`, the ingress and admin
  API on free ports (`PROCESSOR_INGRESS__LISTEN` / `PROCESSOR_ADMIN__LISTEN`), waits for
  `GET /health`, registers the given deployments and yields a `DaemonProcess`;
- `run_loadgen(...)` runs `bench/loadgen.py` in its own process and returns its summary.

`PROCESSOR_BENCH_PYSPY=<dir>` records py-spy samples (collapsed stacks, `<dir>/daemon-<pid>.txt`,
readable by flamegraph tools and `bench/harness.py top <file>`) of every daemon started; py-spy
must be installed in the virtualenv (a local profiling aid, not a dependency).
Processes are stopped with SIGTERM (then SIGKILL after a grace period), by pid, never by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
EXAMPLES = ROOT / "examples"
PYTHON = sys.executable
STARTUP_TIMEOUT_S = 30.0


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus the caller's PROCESSOR_* settings (the daemon rejects unknown ones)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCESSOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def stop_process(
    proc: subprocess.Popen[Any], grace_s: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


def http_json(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _stat_fields(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` and its live children (a daemon's
    partitions write their large batches in child processes: their CPU is the daemon's too)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(entry.name)
        except OSError:  # exited meanwhile
            continue
        if entry.name == str(pid) or fields[1] == str(pid):  # fields[1]: the parent's pid
            total += int(fields[11]) + int(fields[12])
    return total / ticks


@contextmanager
def listening_process(args: Sequence[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """Start a process that prints `listening on http://...`; yield that URL; stop it after."""
    proc = subprocess.Popen(
        list(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env(env)
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("listening on "):
                url = line.split()[-1].strip()
                break
        if url is None:
            raise RuntimeError(f"{' '.join(args)} did not start (exit {proc.poll()})")
        yield url
    finally:
        stop_process(proc)


@contextmanager
def deployment(script: str, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    path = EXAMPLES / script if not script.startswith("/") else Path(script)
    with listening_process([PYTHON, str(path), "--port", "0", *args], env) as url:
        yield url


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    ingress: str
    admin: str
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)


def wait_healthy(
    admin: str, proc: subprocess.Popen[Any], timeout: float = STARTUP_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited during startup (exit {proc.returncode})")
        try:
            http_json("GET", f"{admin}/health", timeout=1.0)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the daemon did not become healthy within {timeout:.0f}s")


@contextmanager
def daemon(
    *,
    partitions: int = 4,
    deployments: Sequence[str] = (),
    env: dict[str, str] | None = None,
    data_dir: Path | None = None,
) -> Iterator[DaemonProcess]:
    """Run `processor serve` in a fresh (or the given) data directory until the block ends."""
    own_dir = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="bench-data-")) if data_dir is None else data_dir
    ingress_port, admin_port = free_port(), free_port()
    daemon_env = {
        "PROCESSOR_INGRESS__LISTEN": f"127.0.0.1:{ingress_port}",
        "PROCESSOR_ADMIN__LISTEN": f"127.0.0.1:{admin_port}",
        "PROCESSOR_LOGGING__LEVEL": "warning",
        **(env or {}),
    }
    args = [PYTHON, "-m", "processor", "serve", "--data-dir", str(directory)]
    args += ["--partitions", str(partitions)]
    proc = subprocess.Popen(args, env=clean_env(daemon_env), stdout=subprocess.DEVNULL)
    spy: subprocess.Popen[bytes] | None = None
    try:
        admin = f"http://127.0.0.1:{admin_port}"
        wait_healthy(admin, proc)
        for uri in deployments:
            http_json("POST", f"{admin}/deployments", {"uri": uri})
        spy = _start_pyspy(proc.pid)
        yield DaemonProcess(proc, f"http://127.0.0.1:{ingress_port}", admin, directory)
    finally:
        if spy is not None:
            stop_process(spy, grace_s=60.0, sig=signal.SIGINT)  # py-spy writes on SIGINT
        stop_process(proc)
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


def _start_pyspy(pid: int) -> subprocess.Popen[bytes] | None:
    out_dir = os.environ.get("PROCESSOR_BENCH_PYSPY")
    exe = Path(PYTHON).parent / "py-spy"
    if not out_dir or not exe.exists():
        return None
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = Path(out_dir) / f"daemon-{pid}.txt"
    progress(f"py-spy: recording the daemon (pid {pid}) into {out}")
    args = ["record", "--pid", str(pid), "--rate", "250", "--gil", "--format", "raw"]
    return subprocess.Popen(
        [str(exe), *args, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass(frozen=True)
class LoadResult:
    count: int
    errors: int
    seconds: float
    per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    total: int = 0  # answered requests including the warm-up
    first_error: str = ""  # what the first failed request got


def run_loadgen(
    url: str,
    *,
    concurrency: int,
    seconds: float,
    body: str = '"Ada"',
    warmup_s: float = 1.0,
    max_requests: int | None = None,
    rate: float | None = None,
    path: str = "",
) -> LoadResult:
    """Run bench/loadgen.py in its own process against `url` and return its summary."""
    args = [
        PYTHON,
        str(BENCH / "loadgen.py"),
        "--url",
        url + path,
        "--concurrency",
        str(concurrency),
    ]
    args += ["--seconds", str(seconds), "--warmup", str(warmup_s), "--body", body]
    if max_requests is not None:
        args += ["--max-requests", str(max_requests)]
    if rate is not None:
        args += ["--rate", str(rate)]
    out = subprocess.run(args, capture_output=True, text=True, env=clean_env(), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr.strip()[-2000:]}")
    return _load_result(out.stdout)


def start_loadgen(
    url: str, *, concurrency: int, seconds: float, body: str = '"Ada"', rate: float | None = None
) -> subprocess.Popen[str]:
    """Start bench/loadgen.py in the background (read its summary with `finish_loadgen`)."""
    args = [PYTHON, str(BENCH / "loadgen.py"), "--url", url, "--concurrency", str(concurrency)]
    args += ["--seconds", str(seconds), "--warmup", "0", "--body", body]
    if rate is not None:
        args += ["--rate", str(rate)]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()
    )


def finish_loadgen(proc: subprocess.Popen[str], timeout: float = 120.0) -> LoadResult:
    stdout, stderr = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed: {stderr.strip()[-2000:]}")
    return _load_result(stdout)


def _load_result(stdout: str) -> LoadResult:
    """The load generator's summary: the JSON object on its last line of output."""
    data = json.loads(stdout.strip().splitlines()[-1])
    return LoadResult(
        data["count"],
        data["errors"],
        data["seconds"],
        data["per_s"],
        data["p50_ms"],
        data["p90_ms"],
        data["p99_ms"],
        data.get("total", 0),
        data.get("first_error", ""),
    )
