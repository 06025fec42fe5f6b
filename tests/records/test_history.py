"""history: the store's records as rows, newest first, filtered, in three formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat

from rollback_helpers.records import history as h
from rollback_helpers.records.store import open_store
from rollback_helpers.ui.display import METADATA_KEY

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def record(i: int, *, env: str = "staging", path: str = "path-a", **block: Any) -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.metadata[METADATA_KEY] = {
        "path": path, "env": env, "exit_code": 0, "outcome": "success", "dry_run": False,
        "mode": "headless", "started_at": (T0 + timedelta(hours=i)).isoformat(timespec="seconds"),
        "seconds": 61.4, "parameters": {"operator": f"op{i}", "reason": f"v{i} crashes " * 12},
        "record_issue": 1000 + i,
        "facts": {"from_image": f"sha256:{i:064x}", "to_image": "app@sha256:" + "a" * 64,
                  "workflow_run": f"https://github.com/o/r/actions/runs/{7000 + i}"}, **block}
    return nbformat.writes(nb).encode()


def fill(tmp_path: Path, runs: int, drills: int = 0) -> Any:
    store = open_store(str(tmp_path / "incidents"))
    for i in range(runs):
        store.put_new(f"run-{i:03d}.ipynb", lambda _loc, i=i: record(i, env=("staging", "production")[i % 2]))
    for i in range(drills):
        store.child("drills").put_new(f"drill-{i:03d}.ipynb",
                                      lambda _loc, i=i: record(runs + i, path="path-b", facts={
                                          "new_cluster": f"cl-{i}"}))
    return store


def test_rows_are_newest_first_with_what_each_run_did(tmp_path: Path) -> None:
    """Every run in the store, newest first, with env, operator, mode, outcome, change, issue."""
    rows = h.history_rows(fill(tmp_path, 3), h.Filters())
    assert [r["record"].rsplit("/", 1)[-1] for r in rows] == ["run-002.ipynb", "run-001.ipynb",
                                                              "run-000.ipynb"]
    top = rows[0]
    assert (top["env"], top["path"], top["operator"], top["mode"]) == (
        "staging", "path-a", "op2", "live, headless")
    assert (top["outcome"], top["exit"], top["duration"], top["issue"]) == (
        "success", 0, 61.4, 1002)
    assert top["change"] == f"sha256:{2:064x}"[:19] + " → sha256:aaaaaaaaaaaa"  # from → to
    assert top["reason"] == "v2 crashes " * 12
    assert top["workflow run"].endswith("/actions/runs/7002")
    assert top["verified"] == "not checked"


def test_drills_are_listed_only_when_asked_and_filters_apply(tmp_path: Path) -> None:
    """--drills adds drills/; --env and --since narrow the rows."""
    store = fill(tmp_path, 4, drills=2)
    assert len(h.history_rows(store, h.Filters())) == 4
    with_drills = h.history_rows(store, h.Filters(drills=True))
    assert len(with_drills) == 6 and with_drills[0]["change"] == "restored into cl-1"
    assert {r["env"] for r in h.history_rows(store, h.Filters(env="production"))} == {"production"}
    since = h.history_rows(store, h.Filters(since=T0 + timedelta(hours=2)))
    assert [r["operator"] for r in since] == ["op3", "op2"]


def test_each_row_carries_the_verifier_word(tmp_path: Path) -> None:
    """The verified column is what the verifier says for that record's bytes."""
    rows = h.history_rows(fill(tmp_path, 2), h.Filters(),
                          verify=lambda location, data: "yes" if b"op1" in data else "NO")
    assert [r["verified"] for r in rows] == ["yes", "NO"]


def test_table_json_and_html_formats(tmp_path: Path) -> None:
    """A pandas table; JSON rows; an HTML page whose rows link to each record's rendering."""
    frame = h.history_frame(h.history_rows(fill(tmp_path, 2), h.Filters()))
    table = h.as_table(frame)
    assert table.splitlines()[0].split()[:3] == ["when", "env", "path"]
    rows = json.loads(h.as_json(frame))
    assert [r["operator"] for r in rows] == ["op1", "op0"]
    assert all(" " not in key for key in rows[0])
    assert (rows[0]["exit_code"], rows[0]["seconds"], rows[0]["issue"]) == (0, 61.4, 1001)
    assert rows[0]["workflow_run"].endswith("/runs/7001") and len(rows[0]["reason"]) == 132
    page = h.as_html(frame, lambda loc: loc.rsplit("/", 1)[-1].replace(".ipynb", ".html"),
                     "Incident <records>")
    assert '<a href="run-001.html">run-001.ipynb</a>' in page
    assert "Incident &lt;records&gt;" in page and "<records>" not in page
    assert h.as_table(h.history_frame([])) == "No archived runs match."


def test_the_table_fits_the_terminal_cutting_wide_columns_and_keeping_the_file_name(
        tmp_path: Path) -> None:
    frame = h.history_frame(h.history_rows(fill(tmp_path, 3), h.Filters()))
    for width in (100, 140, 200):
        lines = h.as_table(frame, width=width).splitlines()
        assert max(len(line) for line in lines) <= width, width
    narrow = h.as_table(frame, width=140).splitlines()
    assert narrow[1].endswith("/incidents/run-002.ipynb") and "…" in narrow[1]
    assert "sha256:000000000000 → sha256:aaaaaaaaaaaa" in narrow[1]  # from → to, whole
    assert "left out to fit 140 columns: workflow run, reason" in " ".join(narrow[4:])
    wide = h.as_table(frame, width=1000)
    assert "…" not in wide and "left out" not in wide and "v2 crashes" in wide


def test_verify_flip_reads_only_and_says_so(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "incidents"))
    store.put_new("flip.ipynb", lambda _loc: record(1, path="verify-flip", dry_run=True))
    (row,) = h.history_rows(store, h.Filters())
    assert row["mode"] == "read only, headless"


def test_the_verified_column_tells_a_changed_record_from_one_without_a_hash() -> None:
    """Tampered → NO; nothing published → no hash; GitHub unreachable → not checked."""
    from rollback_helpers.errors import GitHubUnavailable, RecordHashMissing, RecordTampered

    def raising(error: Exception | None) -> h.Verifier:
        def verify(location: str, data: bytes) -> None:
            if error is not None:
                raise error

        return h.verify_cell(verify)

    assert raising(None)("x", b"") == "yes"
    assert raising(RecordTampered("changed"))("x", b"") == "NO: changed since archived"
    assert raising(RecordHashMissing("none"))("x", b"") == "no hash published"
    assert raising(GitHubUnavailable("GitHub is down"))("x", b"") == "not checked (GitHub is down)"


def test_history_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`history --format html | head`: the reader stops early; no BrokenPipeError traceback."""
    import subprocess
    import sys

    fill(tmp_path, 150)  # more than a pipe's buffer of HTML
    command = (f"{sys.executable} -c 'import sys; from rollback_helpers.cli.main import main; "
               f"sys.exit(main())' history --format html --no-verify --incidents-dir "
               f"{tmp_path / 'incidents'} | head -c 100")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.startswith("<!doctype html>") and len(done.stdout) == 100
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 0
