"""Headless execution: papermill's engine with an IPC kernel, and saves before code cells."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from nbformat import v4
from papermill.exceptions import PapermillExecutionError

from rollback_helpers.run import headless, kernel_launcher
from rollback_helpers.run.headless import SavesBeforeCodeCells, papermill_options

PROBE = """\
import json, os, sys
connection = sys.argv[sys.argv.index("-f") + 1]
print(json.dumps({"answer": answer, "transport": json.load(open(connection))["transport"],
                  "connection": connection, "python": sys.executable,
                  "debugpy": sys.modules.get("debugpy") is not None,
                  "pydantic plugins": os.environ.get("PYDANTIC_DISABLE_PLUGINS"),
                  "frozen": __import__("gc").get_freeze_count()}))
"""


def code(source: str, **fields: Any) -> Any:
    return v4.new_code_cell(source, **fields)  # type: ignore[no-untyped-call]


def markdown(source: str) -> Any:
    return v4.new_markdown_cell(source)  # type: ignore[no-untyped-call]


def notebook(*cells: Any) -> Any:
    nb = v4.new_notebook(cells=list(cells))  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write(nb: Any, path: Path) -> Path:
    nbformat.write(nb, str(path))  # type: ignore[no-untyped-call]
    return path


def read(path: Path) -> Any:
    return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]


@pytest.mark.e2e
def test_a_notebook_runs_on_an_ipc_kernel_of_this_python_without_the_debugger(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parameters in, outputs out, over IPC; the kernel's private directory is gone afterwards."""
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "")
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS")  # unset here, restored afterwards
    source = write(notebook(code("answer = 0", metadata={"tags": ["parameters"]}),
                            code(PROBE)), tmp_path / "probe.ipynb")
    out = tmp_path / "out.ipynb"
    nb = papermill.execute_notebook(str(source), str(out), parameters={"answer": 42},
                                    kernel_name="python3", progress_bar=False,
                                    **papermill_options())
    seen = json.loads(nb.cells[-1].outputs[0]["text"])
    assert seen["answer"] == 42 and seen["transport"] == "ipc"
    assert seen["python"] == sys.executable and seen["debugpy"] is False
    assert seen["pydantic plugins"] == "__all__"
    assert seen["frozen"] > 10_000  # ipykernel's and IPython's start-up objects
    assert not Path(seen["connection"]).parent.exists()
    assert read(out).cells[-1].outputs == nb.cells[-1].outputs


def test_a_temp_folder_too_deep_for_a_socket_still_gets_an_ipc_kernel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$TMPDIR 150 bytes deep: a Unix socket's path would not fit there, so the kernel's private
    folder goes to /tmp (still IPC), and it is gone afterwards."""
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    source = write(notebook(code("answer = 0", metadata={"tags": ["parameters"]}),
                            code(PROBE)), tmp_path / "probe.ipynb")
    nb = papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"),
                                    parameters={"answer": 1}, kernel_name="python3",
                                    progress_bar=False, **papermill_options())
    seen = json.loads(nb.cells[-1].outputs[0]["text"])
    assert seen["transport"] == "ipc"
    assert Path(seen["connection"]).parent.parent == Path("/tmp")
    assert not Path(seen["connection"]).parent.exists()


@pytest.mark.e2e
def test_a_failing_cell_is_still_written_with_papermills_error_banner(tmp_path: Path) -> None:
    """The engine keeps papermill's failure handling: structured error, notebook on disk."""
    source = write(notebook(code("x = 1"), code("raise ValueError('boom')"),
                            code("never = True")), tmp_path / "fails.ipynb")
    out = tmp_path / "out.ipynb"
    with pytest.raises(PapermillExecutionError) as raised:
        papermill.execute_notebook(str(source), str(out), kernel_name="python3",
                                   progress_bar=False, **papermill_options())
    assert raised.value.ename == "ValueError" and raised.value.evalue == "boom"
    written = read(out)
    assert any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in written.cells)
    assert any(o.get("ename") == "ValueError" for c in written.cells if c.cell_type == "code"
               for o in c.outputs)


def test_saves_happen_at_the_start_at_each_code_cell_and_at_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not around Markdown cells, nor as a cell ends: what a code cell's start saves covers it."""
    saved: list[list[str]] = []
    monkeypatch.setattr("papermill.engines.write_ipynb", lambda nb, path: saved.append(
        [c.metadata.papermill["status"] for c in nb.cells]))
    nb = notebook(markdown("# one"), code("a"), markdown("# two"),
                  code("b"))
    nb.metadata["papermill"] = {}  # as papermill.execute prepares it
    manager = SavesBeforeCodeCells(nb, output_path=str(tmp_path / "out.ipynb"), progress_bar=False)
    manager.notebook_start()
    for index, cell in enumerate(nb.cells):
        manager.cell_start(cell, index)
        manager.cell_complete(cell, index)
    manager.notebook_complete()
    assert saved == [["pending"] * 4,                                        # the run began
                     ["completed", "running", "pending", "pending"],         # code cell 1 starts
                     ["completed", "completed", "completed", "running"],     # code cell 2 starts
                     ["completed"] * 4]                                      # the notebook ended


def test_the_engine_is_registered_under_its_name() -> None:
    """papermill_options names an engine papermill knows."""
    from papermill.engines import papermill_engines

    options = papermill_options()
    assert papermill_engines.get_engine(options["engine_name"]) is headless.HeadlessEngine


class StubKernelApp:
    """IPKernelApp as the launcher drives it: what the environment and the collector hold."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.steps: list[str] = []
        monkeypatch.setattr("ipykernel.kernelapp.IPKernelApp.instance", lambda: self)
        monkeypatch.setattr("gc.freeze", lambda: self.steps.append("freeze"))

    def initialize(self) -> None:
        self.steps.append("initialize")

    def start(self) -> None:
        self.steps.append(f"start {os.environ.get('PYDANTIC_DISABLE_PLUGINS')}")


@pytest.mark.parametrize(("given", "kept"), [(None, "__all__"), ("logfire", "logfire")])
def test_the_kernel_looks_for_no_pydantic_plugins_unless_told(
        monkeypatch: pytest.MonkeyPatch, given: str | None, kept: str) -> None:
    """The launcher turns pydantic's plugin search off (a setting already there is kept) and
    freezes the kernel's start-up objects once it is initialised, before it serves."""
    app = StubKernelApp(monkeypatch)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "debugpy", sys.modules.get("debugpy"))
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", given or "")
    if given is None:
        monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS")
    kernel_launcher.main()
    assert app.steps == ["initialize", "freeze", f"start {kept}"]


def test_kernel_folders_of_killed_makers_are_swept_and_others_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder whose maker is gone (or whose pid now runs another process) is removed; a live
    maker's folder and a folder without an owner are kept."""
    import subprocess

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mine = headless._private_dir()
    child = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    started = headless.process_start(child.pid)
    child.kill()
    child.wait()
    gone = tmp_path / "rollback-kernel-gone"
    gone.mkdir()
    (gone / headless.OWNER).write_text(f"{child.pid} {started}")
    reused = tmp_path / "rollback-kernel-reused"
    reused.mkdir()
    (reused / headless.OWNER).write_text(f"{os.getpid()} 12345.0")  # this pid, another start
    unowned = tmp_path / "rollback-kernel-unowned"
    unowned.mkdir()
    try:
        assert headless.sweep_kernel_dirs() >= 2
        assert not gone.exists() and not reused.exists()
        assert mine.is_dir() and unowned.is_dir()
    finally:
        shutil.rmtree(mine, ignore_errors=True)


def test_a_save_cut_off_midway_leaves_the_last_whole_save(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed while it saves (here: the write stops half-way) leaves on disk the notebook
    as it was last saved whole, never a cut-off one, and no partial file under its name."""
    out = tmp_path / "out.ipynb"
    nb = notebook(code("a"), code("b"))
    nb.metadata["papermill"] = {}
    manager = SavesBeforeCodeCells(nb, output_path=str(out), progress_bar=False)
    manager.notebook_start()
    manager.cell_start(nb.cells[0], 0)
    whole = out.read_bytes()
    read(out)  # a whole notebook

    def cut_off(nb: Any, path: str) -> None:
        Path(path).write_text(nbformat.writes(nb)[:100])
        raise KeyboardInterrupt  # the kill, half-way through the write

    monkeypatch.setattr("papermill.engines.write_ipynb", cut_off)
    manager.cell_complete(nb.cells[0], 0)
    with pytest.raises(KeyboardInterrupt):
        manager.cell_start(nb.cells[1], 1)
    assert out.read_bytes() == whole
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".ipynb") and p != out] == \
        [".out.saving.ipynb"]  # the cut-off write lies beside it, under no record's name


def test_a_save_cut_off_midway_leaves_nothing_more_open_than_the_notebook(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private notebook (a working copy is 0600) saved by a run that is killed as it writes:
    the partial file beside it was 0600 from its first byte, under any umask."""
    out = tmp_path / "out.ipynb"
    out.touch(mode=0o600)
    nb = notebook(code("a"))
    nb.metadata["papermill"] = {}
    manager = SavesBeforeCodeCells(nb, output_path=str(out), progress_bar=False)
    modes: list[int] = []

    def killed_as_it_writes(nb: Any, path: str) -> None:
        with open(path, "w") as handle:  # as papermill writes: open "w", then the text
            modes.append(stat.S_IMODE(os.fstat(handle.fileno()).st_mode))
            raise KeyboardInterrupt

    monkeypatch.setattr("papermill.engines.write_ipynb", killed_as_it_writes)
    old_umask = os.umask(0o022)
    try:
        with pytest.raises(KeyboardInterrupt):
            manager.notebook_start()
    finally:
        os.umask(old_umask)
    assert modes == [0o600]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {
        "out.ipynb": 0o600, ".out.saving.ipynb": 0o600}
