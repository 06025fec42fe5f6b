"""What the browser tests stand on: Debian's Chromium, a real ``rollback-runbook lab``, no orphans.

Chromium comes from Debian's packages (``apt-get install chromium``), never from a
Playwright download. The lab runs as the engineer runs it — the CLI in a
subprocess, on loopback, with a sandbox world — and is stopped with SIGINT
(Ctrl+C); every process it started must be gone afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import descendants, kill, wait_gone

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")  # the reports' icons
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def ensure_chromium() -> Path:
    """Debian's Chromium (and the emoji font the reports use), installed with apt if missing."""
    packages = [name for name, path in (("chromium", CHROMIUM),
                                        ("fonts-noto-color-emoji", EMOJI_FONT))
                if not path.exists()]
    if not packages:
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        if not CHROMIUM.exists():
            pytest.skip(f"{CHROMIUM} is missing and installing Debian's chromium package needs "
                        "root and apt-get: run `apt-get install chromium` as root.")
        return CHROMIUM  # only the font is missing: icons render as boxes, tests still hold
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900,
                              check=False)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(argv)}` failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return CHROMIUM


URL = re.compile(r"Open:\s+(http://127\.0\.0\.1:\d+/\S+)")


class Lab:
    """``rollback-runbook lab --no-browser`` in a subprocess, and its URL, workspace and world."""

    def __init__(self, root: Path, *, scenario: str = "default", speed: float = 40.0) -> None:
        self.root = root
        self.workspace = root / "workspace"
        self.incidents = root / "incidents"
        env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
        env.update(ROLLBACK_INCIDENTS_DIR=str(self.incidents), ROLLBACK_OPERATOR="drill-operator",
                   JUPYTERLAB_SETTINGS_DIR=str(root / "no-user-settings"), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rollback_helpers", "lab", "--no-browser", "--scenario",
             scenario, "--speed", str(speed), "--workspace", str(self.workspace)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True)
        self._url_found = threading.Event()
        self._reader = threading.Thread(target=self._tee, daemon=True)
        self._reader.start()
        self.url = self._wait_for_url()
        self.base_url = self.url.split("/lab/")[0]
        self.token = self.url.rsplit("token=", 1)[1]
        self.sandbox = self.workspace / ".sandbox"

    def output(self) -> str:
        return (self.root / "lab.out").read_text()

    def _tee(self) -> None:
        """Copy the lab's output to lab.out; signal when its URL shows (or it ends)."""
        assert self.process.stdout is not None
        with open(self.root / "lab.out", "w") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if URL.search(line):
                    self._url_found.set()
        self._url_found.set()  # the lab ended: nothing more will come

    def _wait_for_url(self, timeout: float = 120.0) -> str:
        self._url_found.wait(timeout)
        found = URL.search(self.output())
        if found:
            return found.group(1)
        self.stop()
        pytest.fail(f"rollback-runbook lab did not print its URL:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 40.0) -> tuple[int | None, set[int]]:
        """Ctrl+C, as an engineer stops it; returns the exit code and the processes left over."""
        started = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=10)
        leftovers = wait_gone(started, timeout=10)
        kill(leftovers)  # never leave them behind, even when the test fails
        return self.process.returncode, leftovers


@contextlib.contextmanager
def lab_page(driver: Any, profile: Path, *, step_ms: int) -> Iterator[Any]:
    """A page in a Chromium of its own profile, sized for the lab, every step waiting
    ``step_ms`` at most."""
    context = driver.chromium.launch_persistent_context(
        str(profile), executable_path=str(ensure_chromium()), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(step_ms)
    try:
        yield context.pages[0] if context.pages else context.new_page()
    finally:
        context.close()
