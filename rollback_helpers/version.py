"""Which runbook ran: the package's version and, from a git checkout, its commit.

Every record carries both (``runbook_version``, ``runbook_commit``), and
``rollback-runbook --version`` prints them. The commit is read from the checkout's
``.git`` files (a worktree's too), never by running git: the command runner starts
only the programs a run needs. An installed wheel has no checkout: its commit is "".
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"  # the package's (pyproject.toml's); rollback_helpers.__version__ is this
CHECKOUT = Path(__file__).resolve().parent.parent


def runbook_version() -> str:
    return __version__


def runbook_commit(checkout: Path = CHECKOUT) -> str:
    """The commit the checkout's HEAD names (12 hex digits), or "" if it is not a checkout."""
    try:
        git = _git_dir(checkout / ".git")
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        return _ref(git, head.removeprefix("ref: "))[:12]
    except (OSError, ValueError):
        return ""


def describe() -> str:
    """``0.1.0 (commit 1a2b3c4d5e6f)``, or the version alone."""
    commit = runbook_commit()
    return f"{runbook_version()} (commit {commit})" if commit else runbook_version()


def _git_dir(dot_git: Path) -> Path:
    if dot_git.is_file():  # a worktree: "gitdir: <path>"
        target = dot_git.read_text().strip().removeprefix("gitdir: ")
        return (dot_git.parent / target).resolve()
    return dot_git


def _ref(git: Path, ref: str) -> str:
    common = git
    if (git / "commondir").is_file():  # a worktree's branches live in the main repository
        common = (git / (git / "commondir").read_text().strip()).resolve()
    for base in (git, common):
        if (base / ref).is_file():
            return (base / ref).read_text().strip()
    for base in (git, common):
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name == ref:
                    return sha
    raise ValueError(f"{ref} not found")
