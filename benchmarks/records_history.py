"""Benchmark: `rollback-runbook history` over a store holding 50+ records.

One real Path A drill is run (live, on the sandbox) and its record — an executed
notebook as big as a real one — is copied into a store as N records (runs and
drills, several environments and paths, each with its own start time). Then the
`history` command lists them, as the CLI does: read every record's metadata,
build the pandas table, print it. Measured in-process, best of `--repeat` (and
the median for the local folder):

- a local folder, and S3 (s3fs against moto's server, in its own process on loopback), without
  checking hashes (`--no-verify`);
- the local folder again with every row's hash checked against the drill's
  record comment on the sandbox's GitHub (the default).

Writes its figures to benchmarks/results/history.json.

    .venv/bin/python benchmarks/records_history.py [--records 60] [--repeat 3]

:func:`measure` returns the figures (``median_seconds``: the local folder, no hash
checks, the median of the rounds), for a suite that collects every benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import fsspec

from rollback_helpers.cli import main as cli
from rollback_helpers.records.store import RecordStore, open_store

RESULTS = Path(__file__).parent / "results" / "history.json"
ENVS = ("staging", "production", "development")
PATHS = ("path-a", "path-b", "verify-flip")
TARGET_SECONDS = 2.0


def template(work: Path) -> tuple[bytes, Path]:
    """One real record (a live Path A drill); its bytes and the kept sandbox world."""
    sandbox, incidents = work / "sandbox", work / "template"
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["drill", "path-a", "--env", "staging", "--speed", "0", "--quiet",
                         "--sandbox-dir", str(sandbox), "--incidents-dir", str(incidents)])
    assert code == 0, f"the template drill failed with exit code {code}"
    return next(incidents.glob("*.ipynb")).read_bytes(), sandbox


def variant(data: bytes, i: int) -> bytes:
    """The template with another start time, env and path (its size stays a real record's)."""
    when = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=7 * i)).isoformat(
        timespec="seconds")
    block = json.loads(data)
    meta = block["metadata"]["rollback_runbook"]
    meta.update(started_at=when, env=ENVS[i % 3], path=PATHS[i % len(PATHS)])
    return (json.dumps(block, indent=1) + "\n").encode()


def _variant_at(data: bytes, i: int, _location: str) -> bytes:
    return variant(data, i)


def fill(store: RecordStore, data: bytes, count: int) -> None:
    for i in range(count):
        target = store.child("drills") if i % 2 else store  # half runs, half drills
        target.put_new(f"rec-{i:03d}.ipynb", partial(_variant_at, data, i))
    store.put_new("original.ipynb", lambda _loc: data)  # verifies against its comment


def rounds(repeat: int, action: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return times


def history(location: str, *extra: str) -> Callable[[], None]:
    def run() -> None:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert cli.main(["history", "--drills", "--incidents-dir", location, *extra]) == 0
        assert out.getvalue().count("\n") > 50

    return run


def s3_endpoint() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in its own process on loopback (as a real endpoint is: not sharing
    this process's interpreter), and the environment pointing at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                      AWS_EC2_METADATA_DISABLED="true")
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("bench-records")
    return server, "s3://bench-records/incidents"


def measure(records: int = 60, repeat: int = 3) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="rollback-bench-history-"))
    server = None
    try:
        data, sandbox = template(work)
        local = str(work / "incidents")
        fill(open_store(local), data, records)
        server, s3 = s3_endpoint()
        fill(open_store(s3), data, records)
        local_rounds = rounds(repeat, history(local, "--no-verify"))
        return {
            "records": records + 1, "record_bytes": len(data), "repeat": repeat,
            "target_seconds": TARGET_SECONDS,
            "median_seconds": round(statistics.median(local_rounds), 3),
            "local_no_verify_seconds": round(min(local_rounds), 3),
            "s3_loopback_no_verify_seconds": round(min(rounds(repeat, history(s3, "--no-verify"))),
                                                   3),
            "local_verified_on_sandbox_seconds": round(min(rounds(
                repeat, history(local, "--sandbox-dir", str(sandbox)))), 3),
            "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        from rollback_helpers.run.backends import stop_drill_world

        stop_drill_world(work / "sandbox")
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = measure(args.records, args.repeat)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
