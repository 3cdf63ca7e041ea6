"""`make run`: start the daemon with the example deployments running and registered.

Starts the Greeter and Checkout example deployments and `processor serve` (data under ./data) as
child processes, registers the deployments through the admin API, prints what to try next, and
stays in the foreground until Ctrl-C, which stops everything it started.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN = os.environ.get("PROCESSOR_ADMIN_URL", "http://127.0.0.1:9070")
INGRESS = "http://127.0.0.1:8080"
DEPLOYMENTS = [("greeter.py", 9080, []), ("checkout.py", 9081, ["--version", "v1"])]


def wait_for(url: str, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not come up at {url} within {timeout:.0f}s") from None
            time.sleep(0.1)


def register(uri: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{ADMIN}/deployments",
        data=json.dumps({"uri": uri}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, object] = json.loads(answer.read())
        return result


def warn_about_newer_deployments(ours: list[dict[str, object]]) -> None:
    """The registry lives in ./data: a deployment registered in an earlier run (the fixed v2 of
    the demo) may still be the latest of its service, and new invocations go to it."""
    with urllib.request.urlopen(f"{ADMIN}/deployments", timeout=10) as answer:
        registered = json.loads(answer.read())["deployments"]  # newest first
    our_ids = {d["id"] for d in ours}
    seen: set[str] = set()
    for d in registered:
        for service in d["services"]:
            name = service["name"]
            if name in seen:
                continue
            seen.add(name)
            if d["id"] not in our_ids:
                print(
                    f"note: the latest deployment of {name} is {d['id']} at {d['uri']}, registered "
                    "in an earlier run (the registry is kept in ./data); new invocations of "
                    f"{name} go there. Start it again, or `rm -rf data` to begin afresh.",
                    flush=True,
                )


def already_running() -> str | None:
    """Why `make run` cannot start here (another daemon on ./data, or a port in use), or None.

    Checked before anything starts: otherwise the example deployments fail to bind with
    tracebacks and the banner is printed for a daemon that then exits."""
    lock = ROOT / "data" / "LOCK"
    if lock.exists():
        with open(lock, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                pid = handle.read().strip() or "unknown"
                return (
                    f"a daemon (pid {pid}) is already running on ./data, probably an earlier "
                    "`make run`; use it, or stop it (Ctrl-C in its terminal) first"
                )
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    ports = [port for _, port, _ in DEPLOYMENTS] + [8080, 9070]
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no user
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return (
                    f"port {port} is already in use (make run needs {', '.join(map(str, ports))}); "
                    "stop what uses it first"
                )
    return None


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # run the cleanup below, as Ctrl-C does


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    children: list[subprocess.Popen[bytes]] = []
    python = sys.executable
    ledger = ROOT / "data" / "checkout-ledger.txt"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    problem = already_running()
    if problem is not None:
        print(f"make run: {problem}", file=sys.stderr)
        return 1
    try:
        for script, port, extra in DEPLOYMENTS:
            cmd = [python, str(ROOT / "examples" / script), "--port", str(port), *extra]
            if script == "checkout.py":
                cmd += ["--ledger", str(ledger)]
            children.append(subprocess.Popen(cmd))
        daemon = subprocess.Popen([python, "-m", "processor", "serve", "--data-dir", "data"])
        children.append(daemon)
        for _, port, _ in DEPLOYMENTS:
            wait_for(f"http://127.0.0.1:{port}/discover", f"deployment on port {port}")
        wait_for(f"{ADMIN}/health", "the daemon's admin API")
        ours: list[dict[str, object]] = []
        for _, port, _ in DEPLOYMENTS:
            d = register(f"http://127.0.0.1:{port}")
            ours.append(d)
            print(f"registered deployment {d['id']} at http://127.0.0.1:{port}", flush=True)
        warn_about_newer_deployments(ours)
        print(
            f"""
The daemon is running (data in ./data). Try:

  curl -X POST {INGRESS}/Greeter/greet -H 'content-type: application/json' -d '"Ada"'
  curl -X POST {INGRESS}/Checkout/process/send -d '{{"id": "o-1"}}'   # v1 fails at step 3
  .venv/bin/processor invocations list
  .venv/bin/processor invocations describe <inv_id>    # after 3 attempts it is paused
  .venv/bin/python examples/checkout.py --port 9082 --version v2 &   # deploy the fix
  .venv/bin/processor deployments register http://127.0.0.1:9082
  .venv/bin/processor invocations resume <inv_id> --deployment latest

Or open the web UI: {ADMIN}/ui/

Ctrl-C stops the daemon and the example deployments.
""",
            flush=True,
        )
        return daemon.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
