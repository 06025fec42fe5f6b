"""postmortem on a drill's record: a draft whose every time and name is in the record, from a
verified record only; a changed record exits 8 unless told to go on, and the draft says so."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from rollback_helpers.cli import main as cli

pytestmark = pytest.mark.e2e
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


@pytest.fixture(scope="module")
def drilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One Path A drill, its world kept: (the world, the record)."""
    root = tmp_path_factory.mktemp("postmortem")
    sandbox = root / "sandbox"
    assert cli.main(["drill", "path-a", "--env", "staging", "--speed", "0", "--quiet",
                     "--sandbox-dir", str(sandbox), "--incidents-dir", str(root / "incidents"),
                     "--operator", "mara"]) == 0
    yield sandbox, next((root / "incidents").glob("*.ipynb"))


def seconds(text: str) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%S")


def test_every_time_and_name_in_the_draft_is_in_the_record(
        drilled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Verified first; each timestamp (to the second) and each person named is the record's."""
    sandbox, record = drilled
    out = tmp_path / "draft.md"
    assert cli.main(["postmortem", str(record), "--sandbox-dir", str(sandbox), "-o", str(out)]) == 0
    draft = out.read_text()
    data = record.read_text()
    in_record = {seconds(t) for t in ISO.findall(data)}
    in_draft = {seconds(t) for t in ISO.findall(draft)}
    # a timeline: the deploy, the start, the dispatch, the run's end, the verdict (a drill's
    # record is told in its world's clock, where reads overlap and writes burst: some share a second)
    assert len(in_draft) >= 5 and in_draft <= in_record, sorted(in_draft - in_record)
    block = json.loads(data)["metadata"]["rollback_runbook"]
    people = set(re.findall(r"\| plan \| (\S+) \|", draft)) | set(
        re.findall(r"people decided:\*\* (.+)", draft)[0].split(", "))
    assert people == {"mara"} and all(f'"{p}"' in data for p in people)
    assert "**Record verified:** SHA-256 `" in draft and "#1010" in draft
    for heading in ("## Summary", "## Impact window", "## Timeline (UTC", "## Durations",
                    "## Links", "## Causes", "## Actions"):
        assert heading in draft
    assert "bad deploy (record #1010)" in draft and "dispatched promote-image.yml" in draft
    assert block["facts"]["workflow_run"] in draft
    assert any(s["step"] == "6. Watch the workflow run" for s in block["steps"])


def test_a_changed_record_exits_8_unless_told_to_go_on(
        drilled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One changed byte: exit 8 naming the record; --accept-unverified drafts and says so."""
    sandbox, record = drilled
    changed = tmp_path / record.name
    data = record.read_bytes()
    changed.write_bytes(data.replace(b'"outcome": "success"', b'"outcome": "sUccess"', 1))
    capsys.readouterr()
    assert cli.main(["postmortem", str(changed), "--sandbox-dir", str(sandbox)]) == 8
    captured = capsys.readouterr()
    assert str(changed) in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
    assert cli.main(["postmortem", str(changed), "--sandbox-dir", str(sandbox),
                     "--accept-unverified"]) == 0
    draft = capsys.readouterr().out
    assert "**Record NOT VERIFIED:**" in draft and "--accept-unverified" in draft
