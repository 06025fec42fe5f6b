"""Which runbook ran: the version, and the commit read from the checkout's own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_helpers import __version__
from rollback_helpers.cli import main as cli
from rollback_helpers.version import describe, runbook_commit

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_checkout_names_its_commit_loose_packed_or_detached(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(SHA + "\n")
    assert runbook_commit(tmp_path) == SHA[:12]
    (git / "refs" / "heads" / "main").unlink()
    (git / "packed-refs").write_text(f"# pack-refs\n{SHA} refs/heads/main\n")
    assert runbook_commit(tmp_path) == SHA[:12]
    (git / "HEAD").write_text("fedcba9876543210fedcba9876543210fedcba98\n")
    assert runbook_commit(tmp_path) == "fedcba987654"


def test_a_worktree_reads_its_branch_from_the_main_repository(tmp_path: Path) -> None:
    main, tree = tmp_path / "main" / ".git", tmp_path / "tree"
    own = main / "worktrees" / "tree"
    own.mkdir(parents=True)
    tree.mkdir()
    (tree / ".git").write_text(f"gitdir: {own}\n")
    (own / "HEAD").write_text("ref: refs/heads/ux\n")
    (own / "commondir").write_text("../..\n")
    (main / "packed-refs").write_text(f"{SHA} refs/heads/ux\n")
    assert runbook_commit(tree) == SHA[:12]


def test_no_checkout_no_commit(tmp_path: Path) -> None:
    assert runbook_commit(tmp_path) == ""


def test_version_flag_prints_version_and_commit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.strip() == f"rollback-runbook {describe()}" and __version__ in out
