"""A real Prometheus for the tests: Debian's package, backfilled with promtool, on loopback.

``prometheus`` (and its ``promtool``) come from Debian (``apt-get install prometheus``),
installed here when missing as the browser tests install Chromium. The sandbox's raw
series are written as OpenMetrics, turned into TSDB blocks by ``promtool tsdb
create-blocks-from openmetrics``, and served by ``prometheus`` on a free loopback
port with that storage. The server is stopped (and waited for) when the session ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
READY = "Server is ready to receive web requests."


def ensure_prometheus() -> None:
    """Debian's prometheus package, installed with apt if missing."""
    if PROMETHEUS.exists() and PROMTOOL.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{PROMETHEUS} is missing and installing Debian's prometheus package needs "
                    "root and apt-get: run `apt-get install prometheus` as root.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "prometheus"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900,
                              check=False)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(argv)}` failed ({done.returncode}):\n{done.stderr[-2000:]}")


def backfill(openmetrics: str, directory: Path) -> Path:
    """TSDB blocks in ``directory/data`` from ``openmetrics`` text."""
    source = directory / "series.om"
    source.write_text(openmetrics)
    data = directory / "data"
    done = subprocess.run([str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics",
                           str(source), str(data)], capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"promtool could not backfill the series:\n{done.stderr[-3000:]}")
    return data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_prometheus(data: Path, directory: Path, timeout: float = 120.0) -> Iterator[str]:
    """``prometheus`` serving ``data`` on loopback; yields its base URL."""
    config = directory / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    port = _free_port()
    process = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    ready = threading.Event()
    log: list[str] = []

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            if READY in line:
                ready.set()
        ready.set()  # it ended

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout) or process.poll() is not None:
            pytest.fail("prometheus did not become ready:\n" + "".join(log[-30:]))
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
