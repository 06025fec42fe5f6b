"""The run comment: one comment per live run on the bad deploy's deployment-record issue.

(Not to be confused with the deployment record itself, :mod:`rollback_helpers.domain.deployments`,
nor with the archived notebook, :mod:`rollback_helpers.records`.)

It is written before anything changes and edited in place as the run goes on::

    started → dispatched (Path A) | restored (Path B) → verified → succeeded
                                                     ↘ flip pending → flip verified
            ↘ failed | interrupted (with how to resume)

Its first line is a hidden marker, ``<!-- rollback-runbook run=<id> path=<path> env=<env> -->``,
so a later run finds it (:func:`previous_runs`) and carries on instead of acting
twice, and tells an image this rollback put there from drift. The body is
Markdown bullets rendered from one :class:`RunComment` by :func:`render_comment`,
and read back by :func:`parse_comment`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, get_args

from rollback_helpers.domain.paths import PATHS
from rollback_helpers.errors import GitHubError
from rollback_helpers.secrets import redact

RunState = Literal["started", "awaiting approval", "dispatched", "restored", "verified", "failed",
                   "interrupted", "flip pending", "flip verified", "succeeded"]
STATES: tuple[RunState, ...] = get_args(RunState)
# A run in one of these states is over: a re-run starts afresh (or reports success).
ENDED: frozenset[RunState] = frozenset({"failed", "succeeded", "flip pending", "flip verified"})
SUCCEEDED: frozenset[RunState] = frozenset({"succeeded", "flip pending", "flip verified"})
MARKER_RE = re.compile(r"<!-- rollback-runbook run=(?P<run_id>\S+) path=(?P<path>\S+) "
                       r"env=(?P<env>\S+) -->")
BULLET_RE = re.compile(r"^- \*\*(?P<label>[^*]+):\*\* (?P<value>.*)$")


@dataclass(frozen=True)
class RunComment:
    """What the run comment says about one run; every field renders as one bullet."""

    run_id: str
    path: str
    env: str
    state: RunState = "started"
    operator: str = ""
    started_at: str = ""
    updated_at: str = ""
    reason: str = ""
    incident: str = ""
    running: str = ""           # what runs now: at the start, what is rolled back from
    target: str = ""            # Path A: the image; Path B: backup → new cluster name
    workflow_run: str = ""      # Path A: the promote run's web address
    new_cluster: str = ""       # Path B: the restored cluster's id
    schema: str = ""            # Path B: the restored schema (runbook.path_b_image.Schema)
    lock: str = ""              # how the environment lock was taken (a takeover is named)
    plan: str = ""              # the plan's digest, when it awaits approval (run.approval)
    approvals: str = ""         # who approved, or who may approve and how
    resumes: str = ""           # the run id this one carries on
    tried: str = ""             # what was tried, in order
    metrics: str = ""           # the metrics verdict and its numbers (before / during / after)
    last_step: str = ""
    exit_code: str = ""
    error: str = ""
    next_step: str = ""         # what to do now (how to resume after an interruption)
    archive: str = ""
    sha256: str = ""

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def succeeded(self) -> bool:
        return self.state in SUCCEEDED

    @property
    def exit_status(self) -> int | None:
        """The exit code the comment shows (None while the run goes on, or if it is not one)."""
        text = self.exit_code.strip()
        return int(text) if text.isdigit() else None

    @property
    def workflow_run_id(self) -> int | None:
        found = re.search(r"/actions/runs/(\d+)", self.workflow_run)
        return int(found.group(1)) if found else None


LABELS: dict[str, str] = {
    "state": "state", "operator": "by", "started_at": "started", "updated_at": "updated",
    "reason": "why", "incident": "incident", "running": "runs now",
    "target": "target", "workflow_run": "workflow run", "new_cluster": "new cluster",
    "schema": "restored schema",
    "lock": "lock", "plan": "plan", "approvals": "approvals", "resumes": "resumes run",
    "tried": "tried", "metrics": "metrics", "last_step": "last step",
    "exit_code": "exit code", "error": "error", "next_step": "next", "archive": "archive",
    "sha256": "sha256",
}
CODE_FIELDS = frozenset({"running", "target", "new_cluster", "resumes", "archive", "sha256",
                         "plan", "schema"})


def marker(run_id: str, path: str, env: str) -> str:
    return f"<!-- rollback-runbook run={run_id} path={path} env={env} -->"


def _one_line(value: str) -> str:
    """Free text cannot add a bullet, a marker or a secret to the comment."""
    flat = " ".join(redact(value).split())
    return flat.replace("<!--", "<!—").replace("`", "'")


def _title(path: str) -> str:
    spec = PATHS.get(path)
    return spec.title if spec is not None else path



# GitHub turns @name and @org/team into mentions that notify people, and fetches images
# (Markdown's ![…](…), HTML's <img>) for every reader. In what the operator typed, a zero-width
# space after the @ keeps the text as written without the mention (a backslash does not escape
# it: github/cmark-gfm#181), "\!" turns an image into a link, and "&lt;" shows a tag as text.
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")
_IMAGE = re.compile(r"(?<!\\)!\[")
_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def neutralised(text: str) -> str:
    """``text`` as GitHub shows it, without pinging anyone or loading a remote image."""
    text = _MENTION.sub("@\u200b", text)
    return _TAG.sub("&lt;", _IMAGE.sub("\\\\![", text))


def render_comment(record: RunComment) -> str:
    """The comment's body: the marker, a heading, then one bullet per non-empty field."""
    lines = [marker(record.run_id, record.path, record.env),
             f"### Rollback run `{record.run_id}`: {_title(record.path)} on "
             f"{record.env}", ""]
    for name, label in LABELS.items():
        value = _one_line(str(getattr(record, name)))
        if value:
            lines.append(f"- **{label}:** "
                         + (f"`{value}`" if name in CODE_FIELDS else neutralised(value)))
    return "\n".join(lines) + "\n"


def parse_comment(body: str) -> RunComment | None:
    """The record a comment body renders, or None if it is not a run's record comment."""
    first = body.lstrip().splitlines()[0] if body.strip() else ""
    found = MARKER_RE.fullmatch(first.strip())
    if found is None:
        return None
    by_label = {label: name for name, label in LABELS.items()}
    values: dict[str, Any] = {}
    for line in body.splitlines():
        bullet = BULLET_RE.match(line.strip())
        if bullet and bullet["label"] in by_label:
            name = by_label[bullet["label"]]
            value = bullet["value"].strip()
            values[name] = value[1:-1] if name in CODE_FIELDS and value[:1] == "`" else value
    if values.get("state", "started") not in STATES:
        return None  # not a state the runbook writes: not a record it can carry on from
    return RunComment(found["run_id"], found["path"], found["env"], **values)


class CommentApi(Protocol):
    """What the record comment needs from the GitHub client."""

    def list_comments(self, number: int) -> Any: ...

    def create_comment(self, number: int, body: str, *, marker: str) -> Any: ...

    def edit_comment(self, comment_id: int, body: str) -> Any: ...


@dataclass(frozen=True)
class FoundRun:
    """A run's record comment found on an issue."""

    issue: int
    comment_id: int
    html_url: str
    record: RunComment
    author: str = ""            # who wrote the comment (GitHub's ``user``)

    def by(self, account: str) -> bool:
        """Whether the runbook's own account wrote it (only then does it count)."""
        return bool(account) and self.author.lower() == account.lower()

    def ignored(self) -> str:
        """One line for a step's output: a marker from someone else, not believed."""
        return (f"Ignored a record comment by {self.author or 'an unknown author'} that carries "
                f"the marker of run {self.record.run_id} ({self.record.state}): {self.html_url}. "
                "Only the runbook's own account writes run records.")


def previous_runs(github: CommentApi, numbers: Iterable[int], *, path: str,
                  env: str) -> list[FoundRun]:
    """The record comments of earlier runs of ``path`` on ``env``, newest first, whoever wrote
    them (:func:`own_runs` keeps those of the runbook's account)."""
    found: list[tuple[str, FoundRun]] = []
    for number in numbers:
        for comment in github.list_comments(number):
            record = parse_comment(comment.body)
            if record is not None and record.path == path and record.env == env:
                found.append((comment.created_at, FoundRun(
                    number, comment.id, comment.html_url, record, str(comment.user))))
    return [run for _, run in sorted(found, key=lambda pair: pair[0], reverse=True)]


def own_runs(found: Iterable[FoundRun], account: str) -> tuple[list[FoundRun], list[FoundRun]]:
    """(the runs the runbook's ``account`` recorded, the comments anyone else wrote with a
    marker): only the first count; the second are reported, never acted on."""
    listed = list(found)
    return [r for r in listed if r.by(account)], [r for r in listed if not r.by(account)]


class PostedRunComment:
    """This run's run comment: posted once, then edited in place.

    Edits after the first post are best effort: a GitHub failure is written to the
    run's timeline (``log``) and the run goes on; the command line makes the final
    edit again after the notebook ends.
    """

    def __init__(self, github: CommentApi, number: int, record: RunComment, *,
                 log: Callable[[str], None], now: Callable[[], str]) -> None:
        self.github = github
        self.number = number
        self.record = record
        self.comment_id: int | None = None
        self.html_url = ""
        self.last_error = ""  # why the last edit did not reach GitHub ("" once one does)
        self._log = log
        self._now = now

    def post(self) -> PostedRunComment:
        """Create the comment (idempotent: the marker is looked for after an ambiguous failure)."""
        record = replace(self.record, updated_at=self._now())
        comment = self.github.create_comment(
            self.number, render_comment(record),
            marker=marker(record.run_id, record.path, record.env))
        self.record, self.comment_id, self.html_url = record, comment.id, comment.html_url
        self._log(f"record comment on #{self.number}: state {record.state}")
        return self

    def update(self, *, state: RunState | None = None, **changes: str) -> RunComment:
        """Change the state and some fields and edit the comment in place; a failure is logged,
        not raised."""
        self.record = replace(self.record, updated_at=self._now(),
                              state=state or self.record.state, **changes)
        if self.comment_id is None:
            return self.record
        try:
            self.github.edit_comment(self.comment_id, render_comment(self.record))
        except GitHubError as exc:
            self.last_error = exc.what
            self._log(f"record comment on #{self.number} not updated ({exc.what}); "
                      "it is retried when the run ends")
            return self.record
        self.last_error = ""
        if state is not None:
            self._log(f"record comment on #{self.number}: state {self.record.state}")
        return self.record
