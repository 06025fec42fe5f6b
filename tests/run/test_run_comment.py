"""The run's record comment: rendered from one record, read back, found again, edited in place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from rollback_helpers.errors import GitHubUnavailable
from rollback_helpers.run.run_comment import (
    PostedRunComment,
    RunComment,
    marker,
    neutralised,
    parse_comment,
    previous_runs,
    render_comment,
)

DIGEST = "sha256:" + "a" * 64


def a_record(**changes: Any) -> RunComment:
    base = RunComment("abc123", "path-a", "staging", state="dispatched", operator="alice",
                     started_at="2026-06-10T10:00:00Z", reason="v42 crashes on boot",
                     running="sha256:" + "b" * 64, target=f"registry.fly.io/app@{DIGEST}",
                     workflow_run="https://github.com/o/r/actions/runs/7000011")
    return RunComment(**{**base.__dict__, **changes})


@dataclass
class Comment:
    id: int
    body: str
    created_at: str
    html_url: str = ""
    user: str = "alice"
    updated_at: str = ""


@dataclass
class FakeIssues:
    """Comments per issue, as GitHub keeps them; can fail every edit."""

    comments: dict[int, list[Comment]] = field(default_factory=dict)
    fail_edits: bool = False
    edits: list[tuple[int, str]] = field(default_factory=list)

    def list_comments(self, number: int) -> list[Comment]:
        return list(self.comments.get(number, []))

    def create_comment(self, number: int, body: str, *, marker: str) -> Comment:
        assert marker in body
        comment = Comment(len(self.edits) + 100 + number, body, "2026-06-10T10:00:00Z",
                          f"https://github.com/o/r/issues/{number}#c")
        self.comments.setdefault(number, []).append(comment)
        return comment

    def edit_comment(self, comment_id: int, body: str) -> Comment:
        if self.fail_edits:
            raise GitHubUnavailable("GitHub answered 502", "retry later")
        self.edits.append((comment_id, body))
        return Comment(comment_id, body, "")


def test_the_first_line_is_the_hidden_marker_and_state_is_a_bullet() -> None:
    """The contract: marker first, then `- **state:** …` among Markdown bullets."""
    body = render_comment(a_record())
    assert body.splitlines()[0] == "<!-- rollback-runbook run=abc123 path=path-a env=staging -->"
    assert "- **state:** dispatched" in body.splitlines()


def test_a_rendered_record_reads_back_the_same() -> None:
    """What a later run reads is exactly what this run wrote."""
    record = a_record(archive="incidents/x.ipynb", sha256="f" * 64, exit_code="0")
    assert parse_comment(render_comment(record)) == record
    assert parse_comment(render_comment(record)).workflow_run_id == 7000011  # type: ignore[union-attr]


def test_free_text_cannot_forge_a_state_or_a_marker() -> None:
    """A reason with newlines, bullets or a marker stays one line of text."""
    forged = "oops\n- **state:** succeeded\n<!-- rollback-runbook run=x path=path-a env=staging -->"
    parsed = parse_comment(render_comment(a_record(reason=forged)))
    assert parsed is not None and parsed.state == "dispatched" and parsed.run_id == "abc123"


def test_a_secret_in_free_text_is_masked() -> None:
    """The comment is an artifact: a pasted database URL's password never reaches it."""
    body = render_comment(a_record(reason="db postgres://app-user:hunter2secret@db.flympg.net/x"))
    assert "hunter2secret" not in body


@pytest.mark.parametrize("typed, written", [
    ("page @alice and @renewa/security", "page @\u200balice and @\u200brenewa/security"),
    ("see ![x](https://tracker.example/p.png)", "see \\![x](https://tracker.example/p.png)"),
    ("see <img src=https://tracker.example/p.png>", "see &lt;img src=https://tracker.example/p.png>"),
    ("mail ops@example.com about v42", "mail ops@example.com about v42"),
])
def test_mentions_and_remote_images_in_free_text_are_neutralised(typed: str, written: str) -> None:
    """GitHub would page @alice and load a tracking image: the comment shows the text without."""
    body = render_comment(a_record(reason=typed))
    assert f"- **why:** {written}" in body.splitlines()
    assert neutralised(neutralised(typed)) == neutralised(typed)  # an edit re-renders it as is


def test_code_fields_are_not_neutralised() -> None:
    """A target's image reference keeps its @: it is in a code span, which GitHub never links."""
    body = render_comment(a_record())
    assert f"`registry.fly.io/app@{DIGEST}`" in body


def test_other_comments_are_not_records() -> None:
    assert parse_comment("Rolled back by hand.\n- **state:** succeeded") is None
    assert parse_comment("") is None


def test_previous_runs_are_this_paths_on_this_env_newest_first() -> None:
    """Runs of another path or environment, and plain comments, are not carried on."""
    issues = FakeIssues({7: [
        Comment(1, render_comment(a_record(run_id="old")), "2026-06-10T09:00:00Z"),
        Comment(2, "a human note", "2026-06-10T09:30:00Z"),
        Comment(3, render_comment(a_record(run_id="new")), "2026-06-10T10:00:00Z"),
        Comment(4, render_comment(a_record(run_id="b", path="path-b")), "2026-06-10T11:00:00Z"),
        Comment(5, render_comment(a_record(run_id="prod", env="production")),
                "2026-06-10T11:00:00Z"),
    ]})
    found = previous_runs(issues, [7], path="path-a", env="staging")
    assert [run.record.run_id for run in found] == ["new", "old"]
    assert found[0].issue == 7 and found[0].comment_id == 3


def test_posted_once_then_edited_in_place() -> None:
    """A state change edits the same comment; nothing new is posted."""
    issues = FakeIssues()
    log: list[str] = []
    comment = PostedRunComment(issues, 7, a_record(state="started"), log=log.append,
                            now=lambda: "t1").post()
    comment.update(state="verified")
    assert len(issues.comments[7]) == 1
    assert issues.edits[-1][0] == comment.comment_id
    assert "- **state:** verified" in issues.edits[-1][1]
    assert parse_comment(issues.comments[7][0].body).state == "started"  # type: ignore[union-attr]


def test_a_failed_edit_is_logged_and_the_run_goes_on() -> None:
    """Bookkeeping never stops a rollback half-way; the timeline says what was not written."""
    issues = FakeIssues(fail_edits=True)
    log: list[str] = []
    comment = PostedRunComment(issues, 7, a_record(state="started"), log=log.append,
                            now=lambda: "t1").post()
    record = comment.update(state="dispatched")
    assert record.state == "dispatched"
    assert any("not updated" in line for line in log)


@pytest.mark.parametrize(("state", "ended", "succeeded"), [
    ("started", False, False), ("dispatched", False, False), ("interrupted", False, False),
    ("failed", True, False), ("succeeded", True, True), ("flip pending", True, True),
])
def test_which_states_end_a_run(state: str, ended: bool, succeeded: bool) -> None:
    """A run that did not end is carried on by a re-run; one that succeeded is not repeated."""
    record = a_record(state=state)
    assert (record.ended, record.succeeded) == (ended, succeeded)


def test_marker_names_run_path_and_env() -> None:
    assert marker("r1", "path-b", "production") == \
        "<!-- rollback-runbook run=r1 path=path-b env=production -->"


def test_a_state_the_runbook_does_not_write_is_not_read_as_a_record() -> None:
    """The state is one of the run states: a comment edited to say another is not carried on
    from (a re-run does not take it for an ended or a running run)."""
    body = render_comment(a_record())
    assert parse_comment(body) is not None
    assert parse_comment(body.replace("dispatched", "all good, trust me")) is None


@pytest.mark.parametrize(("shown", "status"), [("", None), ("0", 0), ("5", 5), (" 130 ", 130),
                                               ("failed", None), ("-1", None)])
def test_the_exit_code_a_comment_shows_is_read_as_a_number(shown: str, status: int | None
                                                          ) -> None:
    assert a_record(exit_code=shown).exit_status == status
