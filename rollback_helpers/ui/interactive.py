"""The runbook in JupyterLab: widgets that decide, and the decisions written into the record.

One notebook runs in two modes. Headless (papermill, ``interactive=False``) no
widget is ever created and parameters drive every decision. Interactive
(JupyterLab, ``interactive=True``) the engineer decides with widgets — nothing
that changes anything happens without a click — and every decision is written
into the notebook as an ordinary output (who, when, what it confirmed, how), so
the saved notebook reads like a headless one:

    Decision          one confirmation: what, who, at (UTC), how, step
    Screen            where outputs go: IPython's display, or RecordingScreen in tests
    Gate              the action button: disabled until the plan is resolved and, for a
                      protected environment, until its name is typed
    Checklist         checkboxes whose ticks (and unticks) are recorded as decisions
    EnvironmentPicker a dropdown for a notebook opened without ``env``

A decision output carries ``{"rollback_runbook": {"decisions": [...]}}`` as output
metadata, which :func:`rollback_helpers.run.notebook_io.decisions_in` reads back from
headless and interactive records alike.
"""

from __future__ import annotations

import getpass
import html
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from rollback_helpers.clock import utc_iso
from rollback_helpers.errors import guard_free_text
from rollback_helpers.secrets import redact
from rollback_helpers.ui.display import METADATA_KEY, Report

RUN_HINT = "Run → Run Selected Cell and All Below"


class Handle(Protocol):
    def update(self, obj: Any) -> None: ...


class Screen(Protocol):
    """Where a run shows things. ``show`` returns a handle that can replace the output later."""

    def show(self, obj: Any) -> Handle: ...


class NotebookScreen:
    """IPython's display: each ``show`` is one output of the running cell."""

    def show(self, obj: Any) -> Handle:
        from IPython.display import display

        handle = display(obj, display_id=True)  # type: ignore[no-untyped-call]
        assert handle is not None  # display_id=True always returns a handle
        return handle  # type: ignore[no-any-return]


@dataclass
class Shown:
    """One output as :class:`RecordingScreen` keeps it: the object, and how often it changed."""

    obj: Any
    updates: int = 0

    def update(self, obj: Any) -> None:
        self.obj = obj
        self.updates += 1

    @property
    def text(self) -> str:
        return repr(self.obj)


class RecordingScreen:
    """A test double for :class:`Screen`: keeps the outputs, applies handle updates in place.

    ::

        screen = RecordingScreen()
        gate = Gate(..., screen=screen); gate.show(); gate.press()
        assert "Decision: roll back" in screen.texts()[-1]
    """

    def __init__(self) -> None:
        self.outputs: list[Shown] = []

    def show(self, obj: Any) -> Shown:
        shown = Shown(obj)
        self.outputs.append(shown)
        return shown

    def texts(self) -> list[str]:
        return [o.text for o in self.outputs]

    def reports(self) -> list[Report]:
        return [o.obj for o in self.outputs if isinstance(o.obj, Report)]


# -- decisions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """One human (or parameter) decision: what it confirmed, who, when (UTC), how."""

    what: str
    who: str
    at: str
    how: str            # 'button "Roll back …"', 'parameter dry_run=False', 'checkbox', …
    step: str           # the step it belongs to: "plan", "environment", "flip checklist", …
    run_id: str = ""
    id: str = field(default_factory=lambda: secrets.token_hex(4))

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.what} — {self.how}, by {self.who} at {self.at}"

    def report(self) -> Report:
        return decision_report(f"Decision: {self.what}", [self]).fact("by", self.who).fact(
            "at (UTC)", self.at).fact("how", self.how)


def decision_report(title: str, decisions: Sequence[Decision], status: str = "decision") -> Report:
    """A report that carries ``decisions`` in its output metadata (read back by the archive)."""
    return Report(title, status=status,
                  metadata={METADATA_KEY: {"decisions": [d.as_dict() for d in decisions]}})


def make_decision(what: str, *, how: str, step: str, who: str, at: float | None = None,
                  run_id: str = "") -> Decision:
    """A decision as recorded: its text redacted, since a review's or a comment's words (not
    the operator's, so not refused) may carry a credential into the archive."""
    return Decision(redact(what), redact(who), utc_iso(time.time() if at is None else at),
                    redact(how), step, run_id)


def default_operator() -> str:
    """Who decides, when nobody said: ``$ROLLBACK_OPERATOR``, else the login name.

    The name goes into lease commits, comments and the archive: a credential in
    ``ROLLBACK_OPERATOR`` is refused (exit 2), as in any other free text.
    """
    if named := os.environ.get("ROLLBACK_OPERATOR"):
        return guard_free_text("ROLLBACK_OPERATOR", named)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


Decide = Callable[[str, str], Decision]  # (what, how) -> the recorded decision


def not_approved(step: str, gate_step: str) -> Report:
    """What a changing step shows, interactively, before the engineer pressed the button."""
    return Report(f"{step}: skipped: not approved", status="skipped").note(
        f"Press the button in step {gate_step}, then run this cell and the ones below "
        f"({RUN_HINT}).")


# -- the action gate -------------------------------------------------------------------
def gate_blocker(*, resolved: bool, env: str, protected: bool, typed: str, approved: bool) -> str:
    """Why the action button is disabled, or ``""`` when it may be pressed."""
    if approved:
        return "Approved: run the cells below."
    if not resolved:
        return "The plan is not resolved yet: run the steps above first."
    if protected and typed.strip() != env:
        return f"{env} is protected: type {env} in the box to enable the button."
    return ""


class Gate:
    """The one button that turns a dry run into a live one, and the record of pressing it.

    ``approve(how)`` is called on a valid press; it switches the run to live and
    returns the recorded :class:`Decision`, which replaces the pending line below the
    button. A press while the gate is blocked does nothing.
    """

    def __init__(self, label: str, *, env: str, protected: bool, resolved: bool,
                 approve: Callable[[str], Decision], screen: Screen,
                 approved: Decision | None = None) -> None:
        import ipywidgets as w

        self.label, self.env, self.protected, self.resolved = label, env, protected, resolved
        self.decision = approved
        self._approve, self._screen = approve, screen
        self._handle: Handle | None = None
        self.name_box = w.Text(placeholder=f"type {env} to enable the button",
                               description="Environment:",
                               style={"description_width": "initial"}) if protected else None
        self.button = w.Button(description=label, button_style="danger", icon="play",
                               tooltip=label, layout=w.Layout(width="max-content"))
        self.hint = w.HTML()
        self.button.on_click(lambda _button: self.press())
        if self.name_box is not None:
            self.name_box.observe(lambda _change: self._refresh(), names="value")
        self.widget = w.VBox([*([self.name_box] if self.name_box else []), self.button, self.hint])
        self.widget.add_class("rb-gate")
        self._refresh()

    @property
    def typed(self) -> str:
        return self.name_box.value if self.name_box is not None else ""

    @property
    def blocker(self) -> str:
        return gate_blocker(resolved=self.resolved, env=self.env, protected=self.protected,
                            typed=self.typed, approved=self.decision is not None)

    def _refresh(self) -> None:
        blocker = self.blocker
        self.button.disabled = bool(blocker)
        if self.name_box is not None:
            self.name_box.disabled = self.decision is not None
        if self.decision is not None:
            self.button.description = f"Approved: {self.label}"
            self.button.button_style = "success"
        hint = blocker or "Pressing the button records your approval and makes the run live."
        self.hint.value = f"<i>{html.escape(hint)}</i>"

    def pending(self) -> Report:
        return Report("Awaiting approval", status="pending").note(
            f"Nothing changes until you press “{self.label}”; the cells below skip until then.")

    def show(self) -> None:
        self._screen.show(self.widget)
        shown = self.decision.report() if self.decision else self.pending()
        self._handle = self._screen.show(shown)

    def press(self) -> Decision | None:
        """What a click does (tests call it directly). Ignored while the gate is blocked."""
        if self.blocker:
            return None
        how = f"button “{self.label}”" + (f" after typing {self.env!r}" if self.protected else "")
        try:
            self.decision = self._approve(how)
        except Exception as exc:  # a callback's error would vanish into the kernel log
            self._update(Report("Not approved", status="failed").note(str(exc)))
            return None
        self._refresh()
        self._update(self.decision.report().note(
            f"Now run the cells below ({RUN_HINT} on the next cell)."))
        return self.decision

    def _update(self, report: Report) -> None:
        if self._handle is not None:
            self._handle.update(report)


# -- the checklist ---------------------------------------------------------------------
class DecidingRun(Protocol):
    """What a checklist needs of the run it belongs to (the run layer's context satisfies it)."""

    interactive: bool
    screen: Screen

    def decide(self, what: str, how: str, step: str = "") -> Decision: ...


class Checklist:
    """Steps a human does by hand, ticked off in the notebook; every tick is a decision.

    Headless it shows the items unticked (a human does them after the run).
    Interactive it shows checkboxes; each tick or untick calls ``decide`` and
    rewrites the record line below them.
    """

    def __init__(self, title: str, items: Sequence[str], *, decide: Decide, interactive: bool,
                 screen: Screen) -> None:
        self.title, self.items = title, list(items)
        self.done = [False] * len(self.items)
        self.decisions: list[Decision] = []
        self._decide, self.interactive, self._screen = decide, interactive, screen
        self._handle: Handle | None = None
        self.boxes: list[Any] = []
        if interactive:
            self._build()

    def _build(self) -> None:
        import ipywidgets as w

        for index, item in enumerate(self.items):
            box = w.Checkbox(value=False, description=item, indent=False,
                             layout=w.Layout(width="auto"))
            box.observe(lambda change, i=index: self.tick(i, bool(change["new"])), names="value")
            self.boxes.append(box)
        self.widget = w.VBox(self.boxes)
        self.widget.add_class("rb-checklist")

    @classmethod
    def for_run(cls, ctx: DecidingRun, title: str, items: Sequence[str], *,
                step: str = "checklist") -> Checklist:
        """A checklist whose ticks are the run's decisions (headless or interactive, as the run)."""
        return cls(title, items, decide=lambda what, how: ctx.decide(what, how, step),
                   interactive=ctx.interactive, screen=ctx.screen)

    @property
    def complete(self) -> bool:
        return all(self.done)

    def record(self) -> Report:
        report = decision_report(self.title, self.decisions,
                                 status="ok" if self.complete else "pending")
        last = {d.what.split(": ", 1)[1]: d for d in self.decisions}
        for item, done in zip(self.items, self.done, strict=True):
            who = f"ticked by {last[item].who} at {last[item].at}" if done else "not done"
            report.fact(("☑ " if done else "☐ ") + item, who)
        if not self.interactive:
            report.note("A human does these steps after this run; tick them in JupyterLab "
                        "(`rollback-runbook lab`) or note them in the incident.")
        return report

    def show(self) -> None:
        if self.interactive:
            self._screen.show(self.widget)
        self._handle = self._screen.show(self.record())

    def tick(self, index: int, value: bool = True) -> Decision | None:
        """What clicking the checkbox does (tests call it directly)."""
        if self.done[index] == value:
            return None
        self.done[index] = value
        if self.boxes and self.boxes[index].value != value:
            self.boxes[index].value = value  # its observer lands back here, a no-op
        decision = self._decide(("ticked: " if value else "unticked: ") + self.items[index],
                                "checkbox")
        self.decisions.append(decision)
        if self._handle is not None:
            self._handle.update(self.record())
        return decision


# -- the environment picker --------------------------------------------------------------
_PENDING: list[Decision] = []


def take_pending_decisions() -> list[Decision]:
    """Decisions made before a run was opened (the environment picker); each is handed over once."""
    taken = list(_PENDING)
    _PENDING.clear()
    return taken


def set_kernel_variable(name: str, value: Any) -> None:
    """Set a notebook variable (as if the engineer edited the parameters cell)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.user_ns[name] = value


class EnvironmentPicker:
    """A dropdown shown when a notebook is opened without ``env``; picking sets ``env``."""

    def __init__(self, environments: Sequence[str], *, screen: Screen, operator: str,
                 on_pick: Callable[[str], None] = lambda env: set_kernel_variable("env", env)
                 ) -> None:
        import ipywidgets as w

        self._screen, self.operator, self._on_pick = screen, operator, on_pick
        self._handle: Handle | None = None
        self.dropdown = w.Dropdown(options=list(environments), value=None,
                                   description="Environment:",
                                   style={"description_width": "initial"})
        self.dropdown.add_class("rb-env-picker")
        self.dropdown.observe(lambda change: self.pick(change["new"]), names="value")

    def show(self) -> None:
        self._screen.show(self.dropdown)
        self._handle = self._screen.show(Report("Choose the environment", status="pending").note(
            "Pick the environment to roll back, then run this cell and the ones below "
            f"({RUN_HINT})."))

    def pick(self, env: str | None) -> Decision | None:
        if not env:
            return None
        decision = make_decision(f"environment {env}", how="dropdown", step="environment",
                                 who=self.operator)
        _PENDING.append(decision)
        self._on_pick(env)
        if self._handle is not None:
            self._handle.update(decision.report().note(
                f"Now run this cell and the ones below ({RUN_HINT})."))
        return decision
