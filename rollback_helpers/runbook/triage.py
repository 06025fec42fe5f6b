"""Which runbook path? The triage behind ``notebooks/start_here.ipynb``.

Four questions, in the runbook's words, decide the next step:

    is the database readonly?                 yes → Database Readonly Incident (fix the disk first)
    destructive migration or data corruption? yes → Path B (restore the pre-deploy backup)
    is the database intact?                   no  → Path B
    is the problem migration state?           yes → Migration Recovery
    all clear (intact, none of the above)         → Path A (image rollback, always first)

The related runbooks are named as the next step, not implemented here. For
Path A or B the engineer gets a copy of the path's notebook with ``env`` filled
in, next to ``start_here``, and a link that opens it in JupyterLab.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_helpers.domain.parameters import check_answers
from rollback_helpers.domain.paths import PATHS
from rollback_helpers.ui.decisions import Decision, decision_report, default_operator, make_decision
from rollback_helpers.ui.display import Report
from rollback_helpers.ui.interactive import Handle, NotebookScreen, Screen

QUESTIONS = {  # parameter name → the question as the runbook asks it
    "database_intact": "Is the database intact?",
    "destructive_migration_or_corruption": "Was there a destructive migration or data corruption?",
    "database_readonly": "Is the database readonly?",
    "migration_state_problem": "Is the problem migration state (not the image)?",
}
TRIAGE_PATHS = ("path-a", "path-b")  # the paths triage may recommend (domain.paths)


@dataclass(frozen=True)
class Answers:
    """``None`` is "not answered yet"."""

    database_intact: bool | None = None
    destructive_migration_or_corruption: bool | None = None
    database_readonly: bool | None = None
    migration_state_problem: bool | None = None

    def __post_init__(self) -> None:
        """Each answer is True, False or None: ``-p database_intact 0`` is a bad input."""
        check_answers({name: getattr(self, name) for name in QUESTIONS})

    def missing(self) -> list[str]:
        return [q for name, q in QUESTIONS.items() if getattr(self, name) is None]


@dataclass(frozen=True)
class Recommendation:
    choice: str        # "path-a" | "path-b" | "related" | "incomplete"
    title: str
    why: str
    next_step: str
    notebook: str = ""  # the path's notebook, for path-a and path-b

    @property
    def is_path(self) -> bool:
        return self.choice in TRIAGE_PATHS


def recommend(a: Answers) -> Recommendation:
    """The runbook's decision, from the answers given so far."""
    if a.database_readonly:
        return Recommendation(
            "related", "Database Readonly Incident runbook",
            "The database is readonly: the trigger is the disk, not the deploy.",
            "Follow the Database Readonly Incident runbook and fix the disk first; come back here "
            "if the deploy still needs rolling back.")
    if a.missing():
        return Recommendation("incomplete", "Answer the questions",
                              "Not answered yet: " + " ".join(a.missing()), "Answer them above.")
    if a.destructive_migration_or_corruption or not a.database_intact:
        return Recommendation(
            "path-b", PATHS["path-b"].title,
            "A destructive migration or data corruption: the pre-deploy backup must be restored "
            "(into a new cluster; a human flips).",
            "Open Path B. The Infisical flip in detail: the Secret Management Operations runbook.",
            PATHS["path-b"].notebook)
    if a.migration_state_problem:
        return Recommendation(
            "related", "Migration Recovery runbook",
            "The problem is migration state, not the image: rolling the image back will not "
            "fix it.",
            "Follow the Migration Recovery runbook.")
    return Recommendation(
        "path-a", PATHS["path-a"].title,
        "The database is intact and the bad deploy is code-level: re-promote the previous image.",
        "Open Path A: a dry run first, then approve the plan.", PATHS["path-a"].notebook)


def create_path_notebook(choice: str, env: str, *, folder: Path, backend: str = "sandbox",
                         source_dir: Path | None = None) -> Path:
    """A copy of the path's notebook in ``folder`` with ``env`` (and ``backend``) filled in."""
    from rollback_helpers.records.notebook_io import parameterized, read_notebook, write_notebook
    from rollback_helpers.run.archive import notebooks_dir

    name = PATHS[choice].notebook
    source = (source_dir or folder) / name
    if not source.is_file():
        source = notebooks_dir() / name
    nb = parameterized(read_notebook(source), {"env": env, "backend": backend},
                       comment="Parameters filled in by start_here")
    target = folder / f"{Path(name).stem}-{env}.ipynb"
    n = 2
    while target.exists():  # never overwrite a walkthrough in progress
        target = folder / f"{Path(name).stem}-{env}-{n}.ipynb"
        n += 1
    write_notebook(nb, target)
    return target


class Link:
    """A link that JupyterLab opens in a new tab (relative to this notebook's folder)."""

    def __init__(self, target: Path, folder: Path) -> None:
        self.relative = target.relative_to(folder).as_posix()
        root = os.environ.get("ROLLBACK_LAB_ROOT")
        try:
            self.lab_path = target.resolve().relative_to(Path(root).resolve()).as_posix() \
                if root else self.relative
        except ValueError:
            self.lab_path = self.relative

    def __repr__(self) -> str:
        return f"Open: /lab/tree/{self.lab_path}"

    def _repr_html_(self) -> str:
        return (f"<p>➡️ <a class='rb-open-link' href='{html.escape(self.relative)}'>"
                f"Open {html.escape(self.relative)}</a> "
                f"(<code>/lab/tree/{html.escape(self.lab_path)}</code>)</p>")


class WithLink:
    """A report followed by a link, as one output (so a button's callback can update it)."""

    def __init__(self, report: Report, link: Link) -> None:
        self.report, self.link = report, link

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, dict(self.report.metadata)

    def __repr__(self) -> str:
        return f"{self.report!r}\n{self.link!r}"

    def _repr_html_(self) -> str:
        return self.report._repr_html_() + self.link._repr_html_()


def recommendation_report(rec: Recommendation, env: str) -> Report:
    report = Report(f"Next: {rec.title}",
                    status="pending" if rec.choice == "incomplete" else "ok")
    report.fact("why", rec.why).fact("next step", rec.next_step)
    if rec.is_path and env:
        path = rec.choice
        report.fact("headless", f"rollback-runbook run {path} --env {env}  "
                                "(a dry run; --live to act)")
        report.fact("drill", f"rollback-runbook drill {path} --env {env}")
    return report


class Triage:
    """The start_here notebook's one object: questions, recommendation, the path's notebook."""

    def __init__(self, answers: Answers, *, env: str = "", backend: str = "sandbox",
                 interactive: bool = False, screen: Screen | None = None, operator: str = "",
                 folder: Path | None = None) -> None:
        self.answers, self.env, self.backend = answers, env, backend
        self.interactive, self.screen = interactive, screen or NotebookScreen()
        self.operator = operator or default_operator()
        self.folder = folder or Path.cwd()
        self.decisions: list[Decision] = []
        self.created: Path | None = None
        self._result: Handle | None = None
        self._opened: Handle | None = None

    @property
    def recommendation(self) -> Recommendation:
        return recommend(self.answers)

    def show(self) -> None:
        """Headless: the recommendation from the parameters. Interactive: the questions."""
        if not self.interactive:
            self.screen.show(recommendation_report(self.recommendation, self.env))
            return
        self._build_widgets()
        self.screen.show(self.form)
        self._result = self.screen.show(recommendation_report(self.recommendation, self.env))
        self._opened = self.screen.show(Report("No notebook created yet", status="pending").note(
            "Answer the questions and choose the environment; then press the button."))

    def answer(self, name: str, value: bool | None) -> None:
        """What clicking Yes/No does (tests call it directly)."""
        self.answers = Answers(**{**self.answers.__dict__, name: value})
        self._refresh()

    def choose_env(self, env: str) -> None:
        self.env = env or ""
        self._refresh()

    def open_path(self) -> Path | None:
        """What the button does: record the choice, create the path's notebook, link to it."""
        rec = self.recommendation
        if not rec.is_path or not self.env:
            return None
        self.created = create_path_notebook(rec.choice, self.env, folder=self.folder,
                                            backend=self.backend)
        decision = make_decision(f"{rec.title} for {self.env}: created {self.created.name}",
                                 how="button", step="triage", who=self.operator)
        self.decisions.append(decision)
        record = decision_report(f"Decision: {rec.title} for {self.env}", [decision])
        record.fact("by", decision.who).fact("at (UTC)", decision.at).fact("notebook",
                                                                           self.created.name)
        record.note("Open it with the link below, then Run → Run All Cells: it stops at the "
                    "plan, and nothing changes until you press its button.")
        opened = WithLink(record, Link(self.created, self.folder))
        if self._opened is not None:  # a click's new outputs would be lost: update in place
            self._opened.update(opened)
        else:
            self.screen.show(opened)
        return self.created

    def _open_path_or_explain(self) -> None:
        try:
            self.open_path()
        except Exception as exc:  # a callback's error would vanish into the kernel log
            if self._opened is not None:
                self._opened.update(Report("Could not create the notebook", status="failed")
                                    .note(f"{type(exc).__name__}: {exc}"))

    # -- widgets -------------------------------------------------------------------
    def _build_widgets(self) -> None:
        import ipywidgets as w

        rows: list[Any] = []
        for name, question in QUESTIONS.items():
            buttons = w.ToggleButtons(options=[("Yes", True), ("No", False)], value=None,
                                      description="", style={"button_width": "70px"})
            buttons.add_class(f"rb-q-{name}")
            buttons.observe(_bind(self.answer, name), names="value")
            rows.append(w.HBox([w.Label(question, layout=w.Layout(width="420px")), buttons]))
        self.env_box = w.Dropdown(options=["development", "staging", "production"],
                                  value=self.env or None, description="Environment:",
                                  style={"description_width": "initial"})
        self.env_box.add_class("rb-env")
        self.env_box.observe(lambda change: self.choose_env(change["new"]), names="value")
        self.button = w.Button(description="Create the notebook", button_style="primary",
                               layout=w.Layout(width="max-content"), disabled=True)
        self.button.add_class("rb-open-path")
        self.button.on_click(lambda _button: self._open_path_or_explain())
        self.form = w.VBox([*rows, self.env_box, self.button])
        self._refresh()

    def _refresh(self) -> None:
        rec = self.recommendation
        if self._result is not None:
            self._result.update(recommendation_report(rec, self.env))
        if hasattr(self, "button"):
            self.button.disabled = not (rec.is_path and self.env)
            self.button.description = (f"Create the {rec.title.split(' —')[0]} notebook for "
                                       f"{self.env}" if rec.is_path and self.env
                                       else "Create the notebook")


def _bind(answer: Callable[[str, bool | None], None], name: str) -> Callable[[Any], None]:
    return lambda change: answer(name, change["new"])
