"""The kernel started early: a run launches the one waiting, with the launch's own
environment and folder; a command that launches nothing leaves nothing running."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import papermill
import pytest
from nbformat import v4

from rollback_helpers.cli.main import main
from rollback_helpers.run import prestart
from rollback_helpers.run.headless import papermill_options

PROBE = """\
import json, os, sys
print(json.dumps({"pid": os.getpid(), "probe": os.environ.get("ROLLBACK_PRESTART_PROBE"),
                  "cwd": os.getcwd(), "parent": os.environ.get("JPY_PARENT_PID"),
                  "imported early": "colorsys" in sys.modules,
                  "connection": sys.argv[sys.argv.index("-f") + 1]}))
"""


@pytest.fixture(autouse=True)
def nothing_left_waiting() -> object:
    yield
    prestart.discard()


def probe(tmp_path: Path) -> dict[str, object]:
    nb = v4.new_notebook(cells=[v4.new_code_cell(PROBE)])  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "probe.ipynb"
    source.write_text(json.dumps(nb))
    done = papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"),
                                      kernel_name="python3", progress_bar=False,
                                      cwd=str(tmp_path), **papermill_options())
    seen: dict[str, object] = json.loads(done.cells[-1].outputs[0]["text"])
    return seen


@pytest.mark.e2e
def test_a_run_launches_the_kernel_that_was_waiting_with_the_launchs_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """The waiting kernel imported its module before the launch, and runs with what the launch
    gives it (a variable set after it started, the run's folder), as a fresh kernel would: it
    knows its parent (so it says nothing of how to connect to it, and ends with it)."""
    monkeypatch.delenv("ROLLBACK_PRESTART_PROBE", raising=False)
    waiting = prestart.start("colorsys")  # a module nothing else in a kernel imports
    monkeypatch.setenv("ROLLBACK_PRESTART_PROBE", "set after the kernel started")
    seen = probe(tmp_path)
    assert seen["pid"] == waiting.pid
    assert seen["probe"] == "set after the kernel started"
    assert seen["cwd"] == str(tmp_path) and seen["parent"] == str(os.getpid())
    assert seen["imported early"] is True
    assert waiting is not None and waiting.poll() is not None  # shut down with the run
    assert "connect another client" not in capfd.readouterr().out
    assert not Path(str(seen["connection"])).parent.exists()


@pytest.mark.e2e
def test_without_a_waiting_kernel_a_run_starts_its_own(tmp_path: Path) -> None:
    seen = probe(tmp_path)
    assert seen["imported early"] is False and seen["cwd"] == str(tmp_path)


def test_a_waiting_kernel_is_not_handed_another_command_nor_used_once_dead() -> None:
    """A launch of another kernel (another spec) ends the waiting one and starts its own; so
    does a waiting kernel that died."""
    other = prestart.start()
    assert other is not None
    assert prestart.take(["/usr/bin/other-kernel", "-f", "k.json"], dict(os.environ), "/") is None
    assert other.returncode is not None
    dead = prestart.start()
    assert dead is not None
    dead.kill()
    dead.wait()
    assert prestart.take([*prestart.launcher_command(), "-f", "k.json"], {}, "/") is None


def test_a_waiting_kernel_whose_command_line_ends_exits_having_started_nothing() -> None:
    """End of input instead of a launch (the command line died): the launcher exits 0, quietly."""
    done = subprocess.run([*prestart.launcher_command(), prestart.WAIT], input=b"",
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout == b"" and done.stderr == b""


def test_a_run_stopped_by_bad_input_leaves_no_kernel_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The kernel starts once the inputs make sense; an incidents folder that cannot be written
    (checked after) stops the drill with exit 2, and the waiting kernel is gone with it."""
    started: list[subprocess.Popen[bytes] | None] = []
    real_start = prestart.start
    monkeypatch.setattr(prestart, "start", lambda *m: started.append(real_start(*m)) or started[-1])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["drill", "path-a", "--env", "staging", "--incidents-dir", str(blocker / "x")])
    assert code == 2 and "cannot be created or written" in capsys.readouterr().err
    assert len(started) == 1 and started[0] is not None and started[0].returncode is not None
    assert prestart.take([*prestart.launcher_command()], {}, "/") is None  # nothing waits
