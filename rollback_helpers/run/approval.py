"""The two-person rule: a live run that needs more approvals changes nothing until it has them.

``approvals`` per environment (default 2 for production, 1 elsewhere) counts
people, the operator included. GitHub's own gate counts first: an Environment
whose required reviewers may not approve their own deployments
(``prevent_self_review``) is one more person, checked by GitHub when the
promote run waits on it. Whatever is still missing, the runbook's own gate
collects before the first change:

1. The plan is posted in the run's record comment on the bad deploy's record
   issue: state ``awaiting approval``, the plan's digest, and who may approve.
2. A second person comments on that issue ``/approve <run-id>`` (optionally
   followed by the plan digest, nothing else) or ``/reject <run-id> [why]``, alone on
   its line and visible: a command in an HTML comment, a code fence, ``<details>`` or
   a quote is shown as refused.
3. An approval counts when it names this run (and, if it names one, this plan),
   was written after the plan was posted and never edited since (``updated_at`` equals
   ``created_at``: GitHub keeps the author of a comment someone else edited), comes
   from someone other than the operator (the runbook's account and the operator's
   name) with write access or more to the repository (GitHub's
   collaborator-permission endpoint).
   Each approver counts once. Each counted approval is a decision in the archive
   (who, when, how); each refused one is shown with the reason.

The run waits with progress (the environment lock held and renewed: one plan
per environment waits for approval at a time), up to ``approval_timeout``, then
stops with :class:`~rollback_helpers.errors.ApprovalTimeout` (exit 11) naming who
may approve; a ``/reject`` stops it with :class:`~rollback_helpers.errors.ApprovalRejected`
(exit 12). Nothing has changed in either case.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rollback_helpers.clients.github_access import WRITE
from rollback_helpers.clients.github_comments import Comment
from rollback_helpers.clock import parse_iso

COMMAND_RE = re.compile(r"^[ \t]*/(?P<verb>approve|reject)[ \t]+(?P<run>[0-9A-Za-z_-]+)"
                        r"(?:[ \t]+(?P<rest>[^\n]*))?$", re.MULTILINE)
PLAN_RE = re.compile(r"^[0-9a-f]{6,64}$")
HIDDEN_RE = re.compile(r"<!--[\s\S]*?(?:-->|\Z)|<details\b[\s\S]*?(?:</details>|\Z)"
                       r"|^[ \t]*(?P<fence>```+|~~~+)[\s\S]*?(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
                       re.MULTILINE | re.IGNORECASE)
QUOTE_RE = re.compile(r"^[ \t]*>.*$", re.MULTILINE)
ANYWHERE_RE = re.compile(r"/(?P<verb>approve|reject)[ \t]+(?P<run>[0-9A-Za-z_-]+)")


def visible_text(body: str) -> str:
    """What GitHub shows as plain text: without HTML comments, ``<details>`` blocks, fenced
    code and quotes (a command there is not one a reader sees as said)."""
    return QUOTE_RE.sub("", HIDDEN_RE.sub("", body.replace("\r\n", "\n")))


def hidden_text(body: str) -> str:
    """The parts :func:`visible_text` leaves out (to show a command there as refused)."""
    body = body.replace("\r\n", "\n")
    parts = [m.group(0) for m in HIDDEN_RE.finditer(body)]
    return "\n".join(parts + [m.group(0) for m in QUOTE_RE.finditer(HIDDEN_RE.sub("", body))])


def plan_digest(*parts: str) -> str:
    """A short digest of what is to be approved: another plan has another digest."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Verdict:
    """One ``/approve`` or ``/reject`` comment, judged against this run's plan."""

    verb: str          # "approve" or "reject"
    user: str
    at: str            # when GitHub says it was written
    url: str
    counted: bool
    why: str = ""      # why it does not count
    rest: str = ""     # a rejection's reason

    def line(self) -> str:
        what = f"/{self.verb} by {self.user} at {self.at}"
        return f"{what}: {'counted' if self.counted else 'refused — ' + self.why}"


@dataclass
class Judge:
    """Judges comments for one run and one version of its plan."""

    run_id: str
    plan: str
    plan_at: str
    operators: frozenset[str]           # lower-case logins/names that may not approve
    permission: Callable[[str], str]
    _permissions: dict[str, str] = field(default_factory=dict)

    def verdicts(self, comments: Iterable[Comment]) -> list[Verdict]:
        found: list[Verdict] = []
        for comment in comments:
            shown = visible_text(comment.body)
            for match in COMMAND_RE.finditer(shown):
                verdict = self._judge(comment, match)
                if verdict is not None:
                    found.append(verdict)
            if not COMMAND_RE.search(shown):
                found.extend(self._hidden(comment))
        return found

    def _hidden(self, comment: Comment) -> list[Verdict]:
        """Commands for this run that a reader of the issue does not see: refused, shown."""
        return [Verdict(m["verb"], comment.user, comment.created_at, comment.html_url, False,
                        "it is inside an HTML comment, <details>, a code block or a quote, "
                        "not a command on its own line")
                for m in ANYWHERE_RE.finditer(hidden_text(comment.body))
                if m["run"] == self.run_id]

    def _judge(self, comment: Comment, match: re.Match[str]) -> Verdict | None:
        verb, run, rest = match["verb"], match["run"], (match["rest"] or "").strip()
        after = parse_iso(comment.created_at) >= parse_iso(self.plan_at)
        if run != self.run_id and not after:
            return None  # another run's business, from before this plan
        base = Verdict(verb, comment.user, comment.created_at, comment.html_url, False, rest=rest)
        why = self._refusal(verb, run, rest, comment.user, after)
        if not why and verb == "approve" and comment.updated_at != comment.created_at:
            why = (f"it was edited after it was posted (at {comment.updated_at}); anyone with "
                   "write access can edit a comment, so only an unedited one counts")
        return replace_verdict(base, counted=not why, why=why)

    def _refusal(self, verb: str, run: str, rest: str, user: str, after: bool) -> str:
        if run != self.run_id:
            return f"it names run {run}, not this run ({self.run_id})"
        if not after:
            return f"it was written before this plan was posted ({self.plan_at})"
        named = rest.split()[0] if verb == "approve" and rest.split() else ""
        if verb == "approve" and rest and not (len(rest.split()) == 1 and PLAN_RE.fullmatch(named)):
            return (f"it says more than the command ({rest!r}); an approval is `/approve "
                    f"{self.run_id}` alone on its line, optionally with the plan digest")
        if named and PLAN_RE.fullmatch(named) and not self.plan.startswith(named):
            return f"it approves plan {named}, not this plan ({self.plan})"
        if verb == "approve" and user.lower() in self.operators:
            return "the operator cannot approve their own run"
        access = self._access(user)
        if access not in WRITE:
            return f"{user} has {access!r} access, not write"
        return ""

    def _access(self, user: str) -> str:
        if user not in self._permissions:
            self._permissions[user] = self.permission(user)
        return self._permissions[user]


def replace_verdict(verdict: Verdict, *, counted: bool, why: str) -> Verdict:
    return Verdict(verdict.verb, verdict.user, verdict.at, verdict.url, counted, why, verdict.rest)


def approvers(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The counted approvals, one per person (their first)."""
    seen: dict[str, Verdict] = {}
    for verdict in verdicts:
        if verdict.verb == "approve" and verdict.counted:
            seen.setdefault(verdict.user.lower(), verdict)
    return list(seen.values())


def rejection(verdicts: Sequence[Verdict]) -> Verdict | None:
    return next((v for v in verdicts if v.verb == "reject" and v.counted), None)


def who_may_approve(writers: Sequence[str], operators: frozenset[str]) -> list[str]:
    return [w for w in writers if w and w.lower() not in operators]
