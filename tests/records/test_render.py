"""render: a record as one self-contained HTML page — outcome first, code behind a toggle,
secrets masked, nothing fetched from the network."""

from __future__ import annotations

import re

import nbformat

from rollback_helpers.records.render import banner, render_html
from rollback_helpers.ui.display import METADATA_KEY

PASSWORD = "pw-Zq81xTTe02"
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2"


def record(**block: object) -> bytes:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("run = path_a.start({'env': 'staging'})  # ONE-CALL-CELL")
    code.outputs = [nbformat.v4.new_output(
        "stream", name="stdout",
        text=f"connecting to postgres://app-user:{PASSWORD}@db.internal:5432/app\n"
             f"Authorization: Bearer {TOKEN}\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Path A — image rollback"), code]
    nb.metadata[METADATA_KEY] = {
        "path": "path-a", "env": "staging", "exit_code": 5, "outcome": "workflow-failed",
        "dry_run": False, "mode": "headless", "failed_step": "Watch the workflow run",
        "error": "WorkflowFailed: run 7000011 ended 'failure'", "archive": "s3://b/inc/r.ipynb",
        "parameters": {"env": "staging", "reason": "v42 crashes"},
        "decisions": [{"at": "2026-11-27T10:00:00Z", "who": "alice", "step": "plan",
                       "what": "roll back staging", "how": "parameter dry_run=False"}],
        **block}
    return nbformat.writes(nb).encode()


def test_the_page_opens_with_the_outcome_parameters_and_decisions() -> None:
    """Banner, then parameters and decisions, all before the notebook's first cell."""
    page = render_html(record())
    outcome = page.index('id="rb-outcome"')
    assert "WORKFLOW-FAILED: path-a on staging (live, headless), exit code 5" in page
    assert "Watch the workflow run" in page[outcome:outcome + 400]
    first_cell = page.index("Path A — image rollback</h1>") if "image rollback</h1>" in page \
        else page.index("ONE-CALL-CELL")
    for shown_first in ("<h2>Parameters</h2>", "v42 crashes", "<h2>Decisions</h2>",
                        "roll back staging"):
        assert outcome < page.index(shown_first) < first_cell


def test_the_code_is_behind_a_toggle_and_nothing_is_fetched() -> None:
    """The code is in the page but hidden until the checkbox is ticked; no remote script or
    stylesheet is referenced."""
    page = render_html(record())
    assert "ONE-CALL-CELL" in page
    assert '<input type="checkbox" id="rb-show-code"' in page
    assert "#rb-show-code:not(:checked) ~ main .jp-Cell-inputWrapper{display:none}" in page
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?://", page)


def test_secrets_stay_masked() -> None:
    """A password in a URL and a token in an output never reach the page."""
    page = render_html(record())
    assert PASSWORD not in page and TOKEN not in page
    assert "app-user:****@db.internal" in page


def test_banner_words() -> None:
    """Live success, dry run, failure, and a record with no outcome read differently."""
    assert banner({"exit_code": 0, "dry_run": False})[1].startswith("SUCCESS")
    assert banner({"exit_code": 0, "dry_run": True})[0] == "rb-dry"
    assert banner({"exit_code": 3, "outcome": "precondition-failed",
                   "failed_step": "Resolve"})[1].startswith("PRECONDITION-FAILED")
    assert banner({})[1].startswith("NO OUTCOME RECORDED")
