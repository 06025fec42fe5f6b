"""The two-person rule's judge: which /approve and /reject comments count for a run's plan."""

from __future__ import annotations

from rollback_helpers.clients.github_comments import Comment
from rollback_helpers.run.approval import (
    Judge,
    approvers,
    plan_digest,
    rejection,
    who_may_approve,
)

RUN = "a1b2c3d4e5f6"
PLAN = plan_digest("path-a", "production", "gh workflow run promote-image.yml … image=v41")
PLAN_AT = "2026-06-10T09:30:03Z"
ACCESS = {"alice": "write", "bob": "admin", "carol": "read", "ops": "admin", "dave": "none"}


def judge() -> Judge:
    asked: list[str] = []

    def permission(user: str) -> str:
        asked.append(user)
        return ACCESS.get(user, "none")

    j = Judge(RUN, PLAN, PLAN_AT, frozenset({"ops", "root"}), permission)
    j.asked = asked  # type: ignore[attr-defined]
    return j


def comment(user: str, body: str, at: str = "2026-06-10T09:31:00Z", cid: int = 1) -> Comment:
    return Comment(cid, body, user, at, at, f"https://github.com/o/r/issues/7#issuecomment-{cid}")


def test_an_approval_by_a_writer_who_is_not_the_operator_counts() -> None:
    verdicts = judge().verdicts([comment("alice", f"/approve {RUN}")])
    assert [v.counted for v in verdicts] == [True]
    assert [v.user for v in approvers(verdicts)] == ["alice"]


def test_a_self_approval_is_refused() -> None:
    """The record comment's author (the operator on GitHub) cannot approve their own run."""
    [verdict] = judge().verdicts([comment("ops", f"/approve {RUN}")])
    assert not verdict.counted and verdict.why == "the operator cannot approve their own run"
    [by_name] = judge().verdicts([comment("Root", f"/approve {RUN}")])
    assert not by_name.counted and "operator" in by_name.why


def test_an_approver_without_write_access_is_refused() -> None:
    j = judge()
    verdicts = j.verdicts([comment("carol", f"/approve {RUN}", cid=1),
                           comment("dave", f"/approve {RUN}", cid=2)])
    assert [(v.counted, v.why) for v in verdicts] == [
        (False, "carol has 'read' access, not write"), (False, "dave has 'none' access, not write")]
    assert approvers(verdicts) == []


def test_an_approval_of_another_run_is_refused() -> None:
    [verdict] = judge().verdicts([comment("alice", "/approve 0ther0run0id")])
    assert not verdict.counted and verdict.why == f"it names run 0ther0run0id, not this run ({RUN})"


def test_an_approval_of_an_older_plan_is_refused() -> None:
    """Written before this plan was posted, or naming another plan digest: it does not count."""
    j = judge()
    early, wrong = j.verdicts([comment("alice", f"/approve {RUN}", at="2026-06-10T09:30:02Z"),
                               comment("bob", f"/approve {RUN} 0123456789ab", cid=2)])
    assert not early.counted and "before this plan was posted" in early.why
    assert not wrong.counted and wrong.why == f"it approves plan 0123456789ab, not this plan ({PLAN})"
    [right] = j.verdicts([comment("bob", f"/approve {RUN} {PLAN[:8]}", cid=3)])
    assert right.counted


def test_other_runs_business_before_this_plan_is_ignored() -> None:
    assert judge().verdicts([comment("alice", "/approve 999999999999", at="2026-06-10T09:00:00Z")]) == []


def test_each_person_counts_once_and_permissions_are_asked_once() -> None:
    j = judge()
    verdicts = j.verdicts([comment("alice", f"/approve {RUN}", cid=1),
                           comment("Alice", f"/approve {RUN}", cid=2),
                           comment("alice", f"LGTM\n/approve {RUN}", cid=3)])
    assert len(verdicts) == 3 and len(approvers(verdicts)) == 1
    assert j.asked.count("alice") == 1  # type: ignore[attr-defined]


def test_a_rejection_by_a_writer_stops_the_run_and_carries_its_reason() -> None:
    verdicts = judge().verdicts([comment("bob", f"/reject {RUN} roll forward instead")])
    found = rejection(verdicts)
    assert found is not None and (found.user, found.rest) == ("bob", "roll forward instead")
    assert rejection(judge().verdicts([comment("carol", f"/reject {RUN}")])) is None


def test_text_that_only_mentions_approve_is_not_an_approval() -> None:
    assert judge().verdicts([comment("alice", f"please /approve {RUN} when ready")]) == []


def test_who_may_approve_leaves_out_the_operator() -> None:
    assert who_may_approve(["ops", "alice", "Root", "bob"], frozenset({"ops", "root"})) == [
        "alice", "bob"]


def test_a_different_plan_has_a_different_digest() -> None:
    assert plan_digest("path-a", "production", "image=v41") != plan_digest(
        "path-a", "production", "image=v40")


# -- what a reader sees, and what nobody changed (issue 16) ------------------------------------
HIDDEN_FORMS = {
    "html comment": f"Looking.\n<!-- /approve {RUN} -->",
    "fenced code": f"To approve, one writes:\n```\n/approve {RUN}\n```",
    "tilde fence": f"~~~text\n/approve {RUN}\n~~~",
    "details": f"<details><summary>how</summary>\n\n/approve {RUN}\n</details>",
    "quote": f"> /approve {RUN}\n\nNo, not yet.",
    "unclosed comment": f"<!--\n/approve {RUN}",
}


def test_a_command_a_reader_does_not_see_is_refused_and_shown() -> None:
    for form, body in HIDDEN_FORMS.items():
        [verdict] = judge().verdicts([comment("alice", body)])
        assert not verdict.counted, form
        assert "HTML comment, <details>, a code block or a quote" in verdict.why, form


def test_an_approval_with_conditions_after_it_is_refused() -> None:
    [verdict] = judge().verdicts([comment("alice", f"/approve {RUN} NOT until the DB team agrees")])
    assert not verdict.counted and "says more than the command" in verdict.why
    [also] = judge().verdicts([comment("alice", f"/approve {RUN} {PLAN} NOT until Friday")])
    assert not also.counted and "says more than the command" in also.why
    [plain] = judge().verdicts([comment("alice", f"Looks right to me.\n\n/approve {RUN} {PLAN}\n")])
    assert plain.counted


def test_an_edited_comment_is_no_approval() -> None:
    """GitHub keeps an edited comment's author; only ``updated_at`` says someone changed it."""
    edited = Comment(5, f"/approve {RUN}", "alice", "2026-06-10T09:31:00Z",
                     "2026-06-10T09:31:30Z", "https://github.com/o/r/issues/7#issuecomment-5")
    [verdict] = judge().verdicts([edited])
    assert not verdict.counted and "edited after it was posted" in verdict.why
    assert approvers([verdict]) == []
