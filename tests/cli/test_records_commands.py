"""The records commands end to end: a drill archives to S3 (a real endpoint on loopback) or to a
GitHub folder (the sandbox), history lists it, verify-record accepts it and catches one changed
byte (and publish-record refuses to publish it), render writes a page; an unwritable store
stops a run before it starts."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import fsspec
import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.sandbox.core.world import World

pytestmark = pytest.mark.e2e
GITHUB_STORE = "github://renewa/renewa-one@main/incident-records"


def drill(sandbox: Path, *extra: str) -> int:
    return cli.main(["drill", "path-a", "--env", "staging", "--speed", "0", "--quiet",
                     "--sandbox-dir", str(sandbox), *extra])


def history(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert cli.main(["history", "--format", "json", *args]) == 0
    return list(json.loads(capsys.readouterr().out))


def one_byte_changed(data: bytes) -> bytes:
    changed = data.replace(b'"outcome": "success"', b'"outcome": "sUccess"', 1)
    assert changed != data and len(changed) == len(data)
    return changed


def test_a_drill_archives_to_s3_and_the_record_verifies_until_a_byte_changes(
        s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """ROLLBACK_INCIDENTS_DIR=s3://…: the drill's record lands in drills/ there (and nowhere
    local); history lists it as verified; verify-record exits 0, then 8 after one byte."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLLBACK_INCIDENTS_DIR", f"s3://{s3_bucket}/incidents")
    sandbox = tmp_path / "sandbox"
    assert drill(sandbox) == 0
    out = capsys.readouterr()
    s3 = fsspec.filesystem("s3", skip_instance_cache=True)
    keys = s3.find(f"{s3_bucket}/incidents")
    assert len(keys) == 1 and keys[0].startswith(f"{s3_bucket}/incidents/drills/")
    location = f"s3://{keys[0]}"
    assert f"Archived notebook: {location}" in out.out
    assert "s3-secret-never-printed" not in out.out + out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sandbox"]  # nothing local

    rows = history(capsys, "--drills", "--sandbox-dir", str(sandbox))
    assert [(r["record"], r["env"], r["outcome"], r["verified"]) for r in rows] == [
        (location, "staging", "success", "yes")]
    assert history(capsys) == []  # runs only: the drill is under drills/
    assert cli.main(["verify-record", location, "--sandbox-dir", str(sandbox)]) == 0

    s3.pipe(keys[0], one_byte_changed(s3.cat(keys[0])))
    capsys.readouterr()
    assert cli.main(["verify-record", location, "--sandbox-dir", str(sandbox)]) == 8
    err = capsys.readouterr().err
    assert location in err and "#1010" in err  # names the record and its issue
    assert cli.main(["verify-record", location.replace(".ipynb", "-x.ipynb"),
                     "--sandbox-dir", str(sandbox)]) == 9


def test_a_drill_archives_to_a_github_folder_and_the_record_verifies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--incidents-dir github://…: the record is a file in the sandbox repository, next to
    the run's record comment (which names it and its hash); one changed byte is caught."""
    sandbox = tmp_path / "sandbox"
    assert drill(sandbox, "--incidents-dir", GITHUB_STORE) == 0
    world = World.load(sandbox)
    files = [p for p in world.state["github"]["files"] if p.startswith("incident-records/")]
    assert len(files) == 1
    location = f"{GITHUB_STORE}/{files[0].rsplit('/', 1)[-1]}"
    comments = [c["body"] for c in world.state["github"]["comments"]["1010"]]
    digest = hashlib.sha256(world.state["github"]["files"][files[0]].encode()).hexdigest()
    assert any(f"- **archive:** `{location}`" in body and f"- **sha256:** `{digest}`" in body
               for body in comments)  # the record comment publishes exactly the stored bytes
    assert len(world.state["github"]["runs"]) == 1  # the run's own state survived the write

    rows = history(capsys, "--incidents-dir", GITHUB_STORE, "--sandbox-dir", str(sandbox))
    assert [(r["record"], r["verified"]) for r in rows] == [(location, "yes")]
    assert cli.main(["verify-record", location, "--sandbox-dir", str(sandbox)]) == 0
    capsys.readouterr()
    assert cli.main(["publish-record", location, "--sandbox-dir", str(sandbox)]) == 0
    assert capsys.readouterr().out.startswith("Already published: issue #1010")

    text = world.state["github"]["files"][files[0]]
    world.state["github"]["files"][files[0]] = one_byte_changed(text.encode()).decode()
    world.save()
    assert cli.main(["verify-record", location, "--sandbox-dir", str(sandbox)]) == 8
    # publishing the changed copy is refused: the published hash is never replaced
    assert cli.main(["publish-record", location, "--sandbox-dir", str(sandbox)]) == 8
    assert comments == [c["body"] for c in World.load(sandbox).state["github"]["comments"]["1010"]]


def a_record(n: int) -> bytes:
    """A small record as a drill archives it: the metadata block history reads, no outputs."""
    minute = f"2026-11-{1 + n // 1440:02}T{n // 60 % 24:02}:{n % 60:02}:00+00:00"
    block = {"env": "staging", "path": "path-a", "backend": "sandbox", "mode": "headless",
             "started_at": minute, "outcome": "success", "exit_code": 0, "dry_run": True,
             "parameters": {"operator": f"operator-{n}"}}
    return json.dumps({"cells": [], "metadata": {"rollback_runbook": block},
                       "nbformat": 4, "nbformat_minor": 5}).encode()


def test_history_lists_all_1005_records_of_a_github_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A github:// store of 1,005 records: GitHub's contents API lists a folder's first 1,000
    entries only (the sandbox's too), and history still lists every record, newest first."""
    from rollback_helpers.sandbox.scenarios import create_world
    from rollback_helpers.testing import seed_repository_files

    sandbox = tmp_path / "sandbox"
    world = create_world("default", sandbox)
    seed_repository_files(world, {f"incident-records/r{n:04}.ipynb": a_record(n)
                                  for n in range(1005)})
    before = len(world.calls())

    rows = history(capsys, "--incidents-dir", GITHUB_STORE, "--sandbox-dir", str(sandbox))
    assert len(rows) == 1005 and len({r["record"] for r in rows}) == 1005
    assert (rows[0]["record"], rows[0]["operator"]) == (f"{GITHUB_STORE}/r1004.ipynb",
                                                        "operator-1004")
    assert (rows[-1]["record"], rows[-1]["when"]) == (f"{GITHUB_STORE}/r0000.ipynb",
                                                      "2026-11-01T00:00:00+00:00")
    listed = [c["call"] for c in World.load(sandbox).calls()[before:]
              if "/git/trees/" in c["call"] or c["call"].endswith("/contents/incident-records")]
    assert listed[0].endswith("/contents/incident-records")  # 1,000 entries: GitHub's cap
    assert any("/git/trees/" in call for call in listed)     # the rest through the trees API


@pytest.mark.parametrize(("where", "said"), [
    ("s3:/bucket/x", "looks like a URL but is not one"),
    ("s3://no-such-bucket-x/inc", "does not exist"),
    ("ftp2://host/x", "unknown scheme"),
])
def test_an_unwritable_store_stops_the_run_before_it_starts(
        where: str, said: str, s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 with the location named; no notebook ran, nothing was written locally."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLLBACK_INCIDENTS_DIR", where)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_" + "t" * 36)  # the real run's prerequisites are
    monkeypatch.setenv("ROLLBACK_FLYCTL", sys.executable)  # there: the store is what fails
    assert cli.main(["run", "path-a", "--env", "staging", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert said in err and where.split("/")[0] in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_render_and_the_html_history_link_each_record_to_its_page(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """render writes one self-contained page; history --format html -o writes the list and a
    rendering per record beside it, linked."""
    incidents = tmp_path / "incidents"
    assert drill(tmp_path / "sandbox", "--dry-run", "--incidents-dir", str(incidents)) == 0
    record = next(incidents.glob("*.ipynb"))
    out = tmp_path / "page.html"
    assert cli.main(["render", str(record), "-o", str(out)]) == 0
    assert "DRY RUN — plan only: path-a on staging" in out.read_text()
    index = tmp_path / "site" / "index.html"
    assert cli.main(["history", "--incidents-dir", str(incidents), "--format", "html",
                     "--no-verify", "-o", str(index)]) == 0
    link = record.name.replace(".ipynb", ".html")
    assert f'href="{link}"' in index.read_text()
    assert "DRY RUN" in (index.parent / link).read_text()


def test_the_lab_archives_to_the_configured_store_and_refuses_an_unwritable_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local store is made absolute for the kernels; a broken URL stops the lab (exit 2)."""
    from rollback_helpers.cli.lab import lab_incidents
    from rollback_helpers.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    assert lab_incidents("incidents") == str(tmp_path / "incidents")
    assert lab_incidents("github://acme/records/inc") == "github://acme/records/inc"
    with pytest.raises(ConfigError, match="looks like a URL"):
        lab_incidents("s3:/bucket/inc")
    assert not (tmp_path / "s3:").exists()


@pytest.mark.parametrize(("content", "problem"), [
    (b"hello\n", "not JSON"), (b"\xff\xfe", "not JSON"),
    (b'{"metadata": {}}', "JSON, but without a notebook")],
    ids=["text", "binary", "json-without-cells"])
@pytest.mark.parametrize("command", ["render", "verify-record"])
def test_a_file_that_is_not_a_notebook_is_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, content: bytes,
        problem: str) -> None:
    """Exit 2 naming the file and what it is not; no traceback, nothing written."""
    record = tmp_path / "not-a-record.ipynb"
    record.write_bytes(content)
    assert cli.main([command, str(record), "-o", str(tmp_path / "out.html")]
                    if command == "render" else [command, str(record)]) == 2
    err = capsys.readouterr().err
    assert f"{record} is not a notebook: {problem}" in err and "Traceback" not in err
    assert "history" in err  # where to find a real record
    assert not (tmp_path / "out.html").exists()


def test_a_record_that_names_no_issue_is_told_so_without_a_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A notebook with no record issue in its metadata: nothing was published for it (exit 10),
    which needs no GitHub token to say."""
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `gh` to ask either
    record = tmp_path / "plain.ipynb"
    record.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                  "nbformat_minor": 5}))
    assert cli.main(["verify-record", str(record)]) == 10
    err = capsys.readouterr().err
    assert f"The record {record} names no deployment-record issue" in err
    assert "token" not in err.lower()


def test_render_into_a_folder_and_an_unwritable_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o a folder: the page goes inside it under the record's name; -o where nothing can be
    written: exit 2 naming the path, no traceback."""
    record = tmp_path / "plain.ipynb"
    record.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                  "nbformat_minor": 5}))
    folder = tmp_path / "pages"
    folder.mkdir()
    assert cli.main(["render", str(record), "-o", str(folder)]) == 0
    assert (folder / "plain.html").read_text().startswith("<!DOCTYPE html>")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert cli.main(["render", str(record), "-o", str(blocked / "x.html")]) == 2
    err = capsys.readouterr().err
    assert f"Cannot write {blocked / 'x.html'}" in err and "Traceback" not in err
