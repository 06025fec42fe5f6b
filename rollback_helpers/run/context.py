"""What every runbook path starts with: parameters checked, config loaded, seams opened.

A run is headless (papermill: parameters decide) or interactive (JupyterLab: the
engineer decides with widgets). Both record their decisions the same way
(:meth:`RunContext.decide`), and both end with a summary; an interactive run
archives itself with :meth:`RunContext.finish`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_helpers.clock import utc_iso
from rollback_helpers.domain.config import EnvConfig, RunbookConfig, load_config
from rollback_helpers.domain.parameters import AnyParameters, P, require_reason
from rollback_helpers.domain.paths import PATHS, PathSpec
from rollback_helpers.errors import ConfigError, ConfirmationRequired, RollbackError
from rollback_helpers.hints import Option, given_as, hint
from rollback_helpers.records.store import RecordStore
from rollback_helpers.run import kernel_runs
from rollback_helpers.run.backends import Backends, open_backends
from rollback_helpers.run.lifecycle import Lifecycle
from rollback_helpers.run.lock import Lease
from rollback_helpers.run.timeline import story_length
from rollback_helpers.secrets import redact
from rollback_helpers.ui.decisions import Decision, default_operator, make_decision
from rollback_helpers.ui.display import METADATA_KEY, Report
from rollback_helpers.ui.interactive import (
    EnvironmentPicker,
    Handle,
    NotebookScreen,
    Screen,
    not_approved,
    take_pending_decisions,
)
from rollback_helpers.ui.table import Table

if TYPE_CHECKING:
    from rollback_helpers.run.notify import Notifier, Sent
    from rollback_helpers.run.walkthrough import WalkthroughFacts


@dataclass
class RunContext:
    """One run: its validated parameters, configuration and seams, and what it has done so far."""

    params: AnyParameters  # validated once, by the path's start(); never copied field by field
    cfg: RunbookConfig
    env: EnvConfig
    backends: Backends
    started_at: str
    dry_run: bool = True  # the run's mode now (an approval or a changed plan moves it)
    operator: str = ""  # the parameter, else the login name
    archive_path: str = ""  # the parameter, or the name a walkthrough reserves
    timeline: list[tuple[str, str]] = field(default_factory=list)
    screen: Screen = field(default_factory=NotebookScreen)
    decisions: list[Decision] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: secrets.token_hex(6))
    opened_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _lifecycle: Lifecycle | None = None
    _notifier: Notifier | None = None
    _announced: bool = False
    told_end: set[str] = field(default_factory=set)  # the end outcomes the team was told of

    @property
    def spec(self) -> PathSpec:
        return PATHS[self.params.path]

    @property
    def path(self) -> str:
        return self.params.path

    @property
    def interactive(self) -> bool:
        return self.params.interactive

    @property
    def reason(self) -> str:
        return self.params.reason

    @property
    def incident(self) -> str:
        return self.params.incident

    @property
    def break_lock(self) -> str:
        return self.params.break_lock

    def params_as(self, model: type[P]) -> P:
        """The parameters as the path's own model (a path's steps read their options here)."""
        if not isinstance(self.params, model):
            raise TypeError(f"This run is {self.path}'s, not {model.__name__}'s.")
        return self.params

    @property
    def lifecycle(self) -> Lifecycle:
        """The environment lock and this run's record comment (GitHub is reached lazily)."""
        if self._lifecycle is None:
            self._lifecycle = Lifecycle(
                self.backends.github(self.cfg), self.path, self.env.name, self.run_id,
                self.operator, self.backends.clock, self.cfg.lock_ttl, self.log,
                holder_pid=os.getpid() if self.interactive else os.getppid(),
                kernel=self.interactive)
        return self._lifecycle

    def take_lock(self) -> Lease:
        """Before anything changes: hold the environment's lock (a takeover is a decision)."""
        lease = self.lifecycle.acquire(break_lock=self.break_lock)
        old = self.lifecycle.taken_over
        if old is not None:
            how = given_as("break_lock", self.break_lock) if self.break_lock else \
                "automatic: the holder's process is gone on this machine"
            self.decide(f"take over the lock of {self.env.name} from {old.holder} (run "
                        f"{old.run_id}, since {old.started_at})", how, "lock")
        return lease

    def end(self) -> None:
        """The run is over (its summary): release the lock if this run holds it."""
        if self._lifecycle is not None:
            self._lifecycle.release()

    def notify(self, event: str, outcome: str, *, record: str = "", detail: str = "") -> Sent | None:
        """Tell the team (live runs only). A failed or slow delivery is a line in the notebook
        and the timeline, never an error, and costs at most ``notify_timeout`` seconds."""
        notifier = self.end_notifier()
        if notifier is None:
            return None
        from rollback_helpers.run.notify import Notice
        sent = notifier.notify(Notice(
            event, self.env.name, self.path, self.operator, outcome, run_id=self.run_id,
            record=record or self.record_url(), archive=self.archive_path, detail=detail,
            at=utc_iso(self.backends.clock.now()),
            mode="drill" if self.backends.name == "sandbox" else "live"))
        self.log(sent.line())
        print(sent.line(), flush=True)
        return sent

    def end_notifier(self) -> Notifier | None:
        """The team's channels for this run: None on a dry run or when none is configured."""
        if self.dry_run:
            return None
        if self._notifier is None:  # its module loads with a live run's first notice
            from rollback_helpers.run.notify import notifier_from_env
            self._notifier = notifier_from_env(self.env.name, os.environ,
                                               timeout=self.cfg.notify_timeout,
                                               drill=self.backends.name == "sandbox")
        return self._notifier if self._notifier.targets else None

    def end_lifecycle(self) -> Lifecycle | None:
        """The lock and record comment to close when a walkthrough is archived: None when the
        run never went live (a dry run only read the lock)."""
        life = self._lifecycle
        if life is None or (self.dry_run and life.record is None and life.lease is None):
            return None
        return life

    def record_url(self) -> str:
        """The web address of this run's record comment, once posted."""
        record = self._lifecycle.record if self._lifecycle is not None else None
        return record.html_url if record is not None else ""

    def log(self, event: str) -> None:
        """One line of the incident timeline, stamped with the run's clock."""
        self.timeline.append((utc_iso(self.backends.clock.now()), event))

    def show(self, obj: Any) -> Handle:
        return self.screen.show(obj)

    def decide(self, what: str, how: str, step: str = "") -> Decision:
        """Record one decision (a click, a tick, or a parameter) in the run and its timeline."""
        decision = make_decision(what, how=how, step=step, who=self.operator,
                                 at=self.backends.clock.now(), run_id=self.run_id)
        self.decisions.append(decision)
        self.log(f"decision: {what} ({how}, by {self.operator})")
        return decision

    def go_live(self) -> None:
        """The engineer approved: from now on the changing steps run."""
        if self.dry_run:
            require_reason(self.params)  # in the walkthrough: before the lock is taken
            self.take_lock()
            self.dry_run = False
            self.log(f"{self.path} is LIVE on {self.env.name} (approved)")

    def hold(self, step: str, *, approved: bool, gate_step: str,
             then: Callable[[], None] | None = None) -> Report | None:
        """Why a changing step must not run now (a report to show), or None to go ahead.

        ``then`` runs before a live step goes ahead: the two-person rule's wait for the
        approvals still missing, which raises if they do not come."""
        if self.interactive and not approved:
            return not_approved(step, gate_step)
        if self.dry_run:
            return Report(f"{step}: skipped (dry run)", status="skipped")
        if not self._announced:  # the first live step: tell the team the run is changing things
            self._announced = True
            plan = next((d.what for d in reversed(self.decisions) if d.step == "plan"), "")
            self.notify("start", plan or f"{self.path} is live")
        if then is not None:
            then()
        return None

    def go_dry(self, why: str) -> None:
        """Back to a dry run (the plan changed after an approval)."""
        if not self.dry_run:
            self.dry_run = True
            self.log(f"{self.path} is a dry run again: {why}")

    def incidents_dir(self) -> str:
        """Where this run is archived: ``incidents`` (``incidents/drills`` on the sandbox), or
        the store the configuration names (a URL, or ``github://…``)."""
        from rollback_helpers.records.archive import incidents_location

        return incidents_location(self.cfg.incidents_dir, drill=self.backends.name == "sandbox")

    def record_store(self) -> RecordStore:
        """The records store, reached through this run's seams."""
        from rollback_helpers.records.store import open_store
        from rollback_helpers.run.backends import github_factory

        return open_store(self.incidents_dir(), github=github_factory(self.cfg, self.backends))

    def reserve_archive_path(self) -> str:
        """Interactive runs: fix the archive's name now, so the record comment can name it."""
        if not self.archive_path:
            from rollback_helpers.run.archive import archive_name

            name = archive_name(self.env.name, self.path, dry_run=self.dry_run, now=self.opened_at)
            self.archive_path = f"{self.incidents_dir().rstrip('/')}/{name}"
        return self.archive_path

    def with_facts(self, report: Report, **facts: str) -> Report:
        """Mark ``report`` with what the run changed (the record's history reads it)."""
        report.metadata = {METADATA_KEY: {"run": {"id": self.run_id, "facts": facts}}}
        return report

    def summary_report(self, outcome: str) -> Report:
        """The timeline and the decisions; its metadata lets :meth:`finish` check the save."""
        report = Report(f"Summary: {outcome}", status="stopped" if self.dry_run else "ok",
                        table=Table(self.timeline, columns=["time (UTC)", "event"]))
        report.metadata = {METADATA_KEY: {"run": {
            "id": self.run_id, "outcome": outcome, "timeline": story_length(self.timeline),
            "events": self.events()}}}
        report.fact("decisions", len(self.decisions) or "none")
        for decision in self.decisions:
            report.fact(f"  {decision.step or 'decision'}", decision.line())
        if self.interactive:
            report.note("To archive this walkthrough: save the notebook (Ctrl+S), then run the "
                        "last cell (Finish).")
        elif self.archive_path:
            report.note(f"This notebook is archived at {self.archive_path}")
        return report

    def events(self) -> list[dict[str, str]]:
        """The timeline as the record keeps it (masked, as every output is)."""
        return [{"at": at, "event": redact(event)} for at, event in self.timeline]

    def finish(self, notebook: str | None = None) -> Report:
        """Interactive: archive the saved notebook as the incident record. Headless: a no-op."""
        if not self.interactive:
            report = Report("Finish: archived by rollback-runbook", status="ok").fact(
                "archive", self.archive_path or "—").note(
                "A headless run is archived by the command that ran it, when the run ends.")
            report.metadata = {METADATA_KEY: {"run": {"id": self.run_id, "events": self.events()}}}
            return report
        from rollback_helpers.run.walkthrough import archive_walkthrough

        return archive_walkthrough(self, notebook)

    def walkthrough_facts(self) -> WalkthroughFacts:
        """Who runs which path where, as a walkthrough's archive and end name it."""
        from rollback_helpers.run.walkthrough import WalkthroughFacts

        return WalkthroughFacts(self.path, self.env.name, self.run_id, self.operator,
                                self.dry_run, self.backends.name,
                                str(self.backends.sandbox_dir or ""), self.opened_at,
                                datetime.fromtimestamp(self.backends.clock.now(), UTC))

    @property
    def mode(self) -> str:
        if self.interactive:
            return "INTERACTIVE: a dry run until you approve the plan" if self.dry_run \
                else "INTERACTIVE: LIVE (approved)"
        return "DRY RUN (changes nothing)" if self.dry_run else "LIVE"

    def preflight_report(self, title: str) -> Report:
        token_source = "present (from the kernel's environment)" if self.backends.name == "real" \
            else "sandbox token"
        report = Report(title)
        for key, value in [("environment", self.env.name), ("app", self.env.app),
                           ("mode", self.mode), ("backend", self.backends.name),
                           ("GitHub repo", self.cfg.github_repo),
                           ("GitHub token",
                            token_source if self.backends.github_token else "MISSING"),
                           ("operator", self.operator), ("incident", self.incident or "—"),
                           ("reason", self.reason or "—")]:
            report.fact(key, value)
        if self.backends.github_token is None:  # ❌, not a fact to read past: nothing works
            report.status = "failed"
            self.show(report)
            self.backends.github(self.cfg)  # raises: no token, and how to get one
        self._lock_fact(report)
        if self.env.required_approvals > 1 and self.spec.changes:
            report.fact("approvals", f"{self.env.required_approvals} people, the operator included: "
                        "a live run waits for the others before it changes anything "
                        "(`/approve <run id>` on its plan, or the GitHub Environment's reviewers)")
        report.metadata = {METADATA_KEY: {"run": {"id": self.run_id, "step": "preflight"}}}
        if self.backends.sandbox_dir:
            report.note(f"Sandbox world: {self.backends.sandbox_dir} — nothing real is touched.")
        return report

    def _lock_fact(self, report: Report) -> None:
        lease = self._lifecycle.lease if self._lifecycle is not None else None
        if lease is not None:
            report.fact("lock", f"held by this run until {lease.expires_at} (renewed while it runs)")
            return
        if not self.spec.changes or self.backends.github_token is None:
            return
        try:
            other = self.lifecycle.held_by_other()
        except RollbackError as exc:  # GitHub unreadable: every later step needs it too
            report.status = "failed"
            report.fact("lock", f"not readable: {exc.what}")
            self.show(report)
            raise
        if other is None:
            report.fact("lock", f"free: nobody is running a live rollback on {self.env.name}")
            return
        report.status = "warning"
        report.fact("lock", f"HELD by {other.describe()}")
        report.note("Another live run holds this environment: a live run now would stop here.")


def open_run(params: AnyParameters, *, screen: Screen | None = None,
             beside: Callable[[RunContext], Callable[[], None]] | None = None) -> RunContext:
    """Open the seams for a run whose parameters were validated (nothing is contacted before).

    Interactive runs always start as a dry run: the plan's button, not a
    parameter, makes them live. Without ``env`` they show an environment picker.
    ``beside``: starts reads that may overlap with taking a live run's lock (their results
    are used only once it is held) and returns how to wait for them if it is refused.
    """
    cfg = load_config(params.config_overrides())
    operator = params.operator or default_operator()
    screen = screen or NotebookScreen()
    if params.interactive and not params.env:
        EnvironmentPicker(sorted(cfg.environments), screen=screen, operator=operator).show()
        raise ConfigError("No environment chosen yet.",
                          "Pick one in the list above, then run this cell and the ones below "
                          "(Run → Run Selected Cell and All Below).")
    env_cfg = cfg.env(params.env)
    spec = PATHS[params.path]
    live = spec.changes and not params.dry_run and not params.interactive
    if live:
        require_reason(params)
    if live and env_cfg.is_protected and params.confirm != env_cfg.name:
        raise ConfirmationRequired(
            f"A live {spec.name} run against {env_cfg.name} needs an explicit confirmation.",
            hint("Re-run with ", Option("confirm", env_cfg.name), " (or ", Option("dry_run", True),
                 " to only see the plan)."))
    if params.interactive and ":" not in cfg.incidents_dir.split("/", 1)[0]:
        # archived from JupyterLab at the end: prove a local folder is writable now (a bucket
        # or a GitHub store is checked when the walkthrough's store is opened)
        from rollback_helpers.run.archive import ensure_writable_dir

        drills = "drills" if params.backend == "sandbox" else ""
        ensure_writable_dir(Path(cfg.incidents_dir) / drills,
                            source="incidents_dir (runbook.toml or ROLLBACK_INCIDENTS_DIR)")
    sandbox_dir = params.sandbox_dir
    if params.backend == "sandbox" and not sandbox_dir:
        sandbox_dir = os.environ.get("ROLLBACK_SANDBOX_DIR") or None  # `rollback-runbook lab`
    backends = open_backends(params.backend, scenario=params.scenario or spec.default_scenario,
                             sandbox_dir=sandbox_dir, cfg=cfg)
    ctx = RunContext(params, cfg, env_cfg, backends, utc_iso(backends.clock.now()), dry_run=not live,
                     operator=operator, archive_path=params.archive_path, screen=screen)
    ctx.run_id = params.run_id or ctx.run_id
    ctx.opened_at = datetime.fromtimestamp(backends.clock.now(), UTC)  # a drill's: its world's
    ctx.log(f"{spec.name} started on {env_cfg.name} ({ctx.mode}, backend {backends.name})")
    settle = beside(ctx) if beside is not None else None
    if live:  # before anything is changed; reads that started beside it are used once it is held
        try:
            ctx.take_lock()
        except BaseException:
            if settle is not None:
                settle()
            raise
    if params.interactive:  # the kernel's run before this one (a Run All Cells) ends here
        for line in kernel_runs.replace(ctx):
            ctx.show(Report("The walkthrough's previous run", status="warning").note(line))
    for earlier in take_pending_decisions():  # the picker's choice, made before the run opened
        ctx.decisions.append(replace(earlier, run_id=ctx.run_id))
        ctx.log(f"decision: {earlier.what} ({earlier.how}, by {earlier.who} at {earlier.at})")
        ctx.show(ctx.decisions[-1].report())
    return ctx
