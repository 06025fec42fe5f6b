"""A read-only preflight of everything an incident will need (``rollback-runbook check``).

Runbooks rot between incidents: a token expires, a workflow is renamed, a
record loses its backup id, the cluster map drifts from what is attached. Each
check reads what an incident would read, through the same clients and the same
parsing, and becomes one row per check and environment: ``✔``, ``✘`` with the
next step, or ``–`` (not checked, because a check it depends on failed).

Nothing is changed: the checks send only GET requests and read-only flyctl
commands (``auth whoami``, ``status``, ``mpg status|list|backup list``), and
flyctl's allow-list would refuse anything else before it started.

    global        GitHub token · GitHub permissions · workflow · flyctl login
    per env       app status · records · Path A target · cluster map · backup · health
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from rollback_helpers.clients.fly import Fly
from rollback_helpers.clients.github import GitHubClient, RepoAccess
from rollback_helpers.domain.config import RunbookConfig
from rollback_helpers.errors import GitHubAuthError, RollbackError
from rollback_helpers.run.backends import Backends
from rollback_helpers.runbook.preflight_env import EnvironmentChecks
from rollback_helpers.secrets import redact

T = TypeVar("T")
CheckStatus = Literal["ok", "failed", "skipped"]
MARKS: dict[CheckStatus, str] = {"ok": "✔", "failed": "✘", "skipped": "–"}
ALL_ENVS = "—"
TOKEN_NEXT = ("Run `gh auth login` (or export GITHUB_TOKEN / GH_TOKEN) with a token that can "
              "read issues and contents and write issues and actions in {repo}.")
SCOPES_NEXT = ("Use a classic token with the `repo` scope (`gh auth refresh -s repo`), or a "
               "fine-grained token on {repo} with Issues: read and write, Contents: read, "
               "Actions: read and write.")


@dataclass(frozen=True)
class CheckRow:
    check: str
    env: str             # an environment, or "—" for a check that concerns them all
    status: CheckStatus
    detail: str
    next_step: str = ""

    @property
    def mark(self) -> str:
        return MARKS[self.status]


@dataclass(frozen=True)
class PreflightResult:
    repo: str
    rows: tuple[CheckRow, ...]

    @property
    def passed(self) -> bool:
        """Everything an incident needs is there: every row is ✔."""
        return bool(self.rows) and all(row.status == "ok" for row in self.rows)

    def rows_with(self, status: str) -> list[CheckRow]:
        return [row for row in self.rows if row.status == status]

    def row(self, check: str, env: str = ALL_ENVS) -> CheckRow:
        return next(r for r in self.rows if r.check == check and r.env == env)

    def table(self) -> str:
        """One line per row, and under each ✘ (or –) what to do next."""
        width_check = max([len("check"), *(len(r.check) for r in self.rows)])
        width_env = max([len("env"), *(len(r.env) for r in self.rows)])
        lines = [f"   {'check':{width_check}}  {'env':{width_env}}  result"]
        indent = " " * (3 + width_check + 2 + width_env + 2)
        for r in self.rows:
            lines.append(f"{r.mark}  {r.check:{width_check}}  {r.env:{width_env}}  {r.detail}")
            if r.next_step and r.status != "ok":
                lines.append(f"{indent}next: {r.next_step}")
        return redact("\n".join(lines))

    def summary(self) -> str:
        failed, skipped = len(self.rows_with("failed")), len(self.rows_with("skipped"))
        if self.passed:
            return f"All {len(self.rows)} checks passed: an incident has what it needs."
        return (f"{failed} of {len(self.rows)} checks failed (✘)"
                + (f", {skipped} not checked (–)" if skipped else "")
                + ": fix each ✘ as its next step says, then run `rollback-runbook check` again.")


class Preflight:
    """Runs the checks in order; later checks use what earlier ones found (or are skipped)."""

    def __init__(self, cfg: RunbookConfig, backends: Backends) -> None:
        self.cfg = cfg
        self.backends = backends
        self.rows: list[CheckRow] = []
        self.github: GitHubClient | None = None  # set once the token is accepted
        self.fly: Fly | None = None              # set once flyctl is logged in

    # -- rows ------------------------------------------------------------------------------
    def ok(self, check: str, env: str, detail: str) -> None:
        self.rows.append(CheckRow(check, env, "ok", detail))

    def fail(self, check: str, env: str, detail: str, next_step: str) -> None:
        self.rows.append(CheckRow(check, env, "failed", detail, next_step))

    def skip(self, check: str, env: str, why: str) -> None:
        self.rows.append(CheckRow(check, env, "skipped", f"not checked: {why}"))

    def attempt(self, check: str, env: str, read: Callable[[], T]) -> T | None:
        """``read()``, or None after a ✘ row made of the error's message and next step."""
        try:
            return read()
        except RollbackError as exc:
            self.fail(check, env, exc.what, exc.next_step)
            return None

    # -- the run ---------------------------------------------------------------------------
    def run(self, envs: Sequence[str]) -> PreflightResult:
        chosen = [self.cfg.env(name) for name in envs]  # an unknown name is bad input, first
        self.check_github_token()
        self.check_workflow()
        self.check_flyctl()
        for env in chosen:
            EnvironmentChecks(self, env).run()
        return PreflightResult(self.cfg.github_repo, tuple(self.rows))

    def check_github_token(self) -> None:
        check, repo = "GitHub token", self.cfg.github_repo
        if self.backends.github_token is None:
            self.fail(check, ALL_ENVS, "None found. GITHUB_TOKEN and GH_TOKEN are unset, and `gh "
                      "auth token` gave none (or gh is not on PATH).", TOKEN_NEXT.format(repo=repo))
            self.skip("GitHub permissions", ALL_ENVS, "no GitHub token")
            return
        github = self.backends.github(self.cfg)
        try:
            access = github.access.get_repository()
        except GitHubAuthError as exc:  # refused: say where a new one comes from, not "this cell"
            self.fail(check, ALL_ENVS, exc.what, TOKEN_NEXT.format(repo=repo))
            self.skip("GitHub permissions", ALL_ENVS, "the token was not accepted")
            return
        except RollbackError as exc:
            self.fail(check, ALL_ENVS, exc.what, exc.next_step)
            self.skip("GitHub permissions", ALL_ENVS, f"{repo} could not be read")
            return
        self.github = github
        kind = "private" if access.private else "public"
        self.ok(check, ALL_ENVS, f"from {self.backends.token_source or 'the environment'}; "
                f"GitHub accepts it for {access.full_name} ({kind})")
        self.check_permissions(access)

    def check_permissions(self, access: RepoAccess) -> None:
        check, repo, perms = "GitHub permissions", self.cfg.github_repo, access.permissions
        problems = []
        if perms and not perms.get("pull"):
            problems.append("cannot read the repository (issues, contents)")
        if perms and not perms.get("push"):
            problems.append("has no write access, so it cannot dispatch the workflow or comment")
        scopes = access.token_scopes
        if scopes is not None and "repo" not in scopes and not (
                not access.private and "public_repo" in scopes):
            problems.append(f"the token's scopes ({', '.join(scopes) or 'none'}) lack `repo`")
        if problems:
            self.fail(check, ALL_ENVS, "The token " + "; ".join(problems) + ".",
                      SCOPES_NEXT.format(repo=repo))
            return
        role = ", ".join(k for k, v in perms.items() if v) or "not reported"
        said = (f"scopes {', '.join(scopes)}" if scopes is not None else
                "a fine-grained or app token (GitHub lists no scopes; the role decides)")
        self.ok(check, ALL_ENVS, f"read issues and contents, dispatch workflows (role: {role}; "
                f"{said})")

    def check_workflow(self) -> None:
        check, cfg = "workflow", self.cfg
        if self.github is None:
            self.skip(check, ALL_ENVS, "needs GitHub (see the GitHub token row)")
            return
        found = self.attempt(check, ALL_ENVS, lambda: self._github().actions.get_workflow(cfg.workflow))
        if found is None:
            return
        if found.state != "active":
            self.fail(check, ALL_ENVS, f"{found.path} is {found.state!r}: a dispatch would fail.",
                      f"Enable it: `gh workflow enable {cfg.workflow} --repo {cfg.github_repo}`.")
            return
        self.ok(check, ALL_ENVS, f"{found.path} ({found.name!r}) is active; dispatched on "
                f"{cfg.workflow_ref} with inputs {cfg.workflow_env_input}, {cfg.workflow_image_input}")

    def check_flyctl(self) -> None:
        check = "flyctl login"
        fly = self.attempt(check, ALL_ENVS, lambda: self.backends.fly(self.cfg))
        if fly is None:
            return
        email = self.attempt(check, ALL_ENVS, fly.whoami)
        if email is not None:
            self.fly = fly
            self.ok(check, ALL_ENVS, f"logged in as {email}")

    def _github(self) -> GitHubClient:
        assert self.github is not None, "checked by the caller"
        return self.github
