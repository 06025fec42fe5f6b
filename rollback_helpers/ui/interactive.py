"""The runbook in JupyterLab: widgets that decide, and the decisions written into the record.

One notebook runs in two modes. Headless (papermill, ``interactive=False``) no
widget is ever created and parameters drive every decision. Interactive
(JupyterLab, ``interactive=True``) the engineer decides with widgets — nothing
that changes anything happens without a click — and every decision is written
into the notebook as an ordinary output (who, when, what it confirmed, how), so
the saved notebook reads like a headless one:

    Screen            where outputs go: IPython's display, or RecordingScreen in tests
    Gate              the action button: disabled until the plan is resolved and, for a
                      protected environment, until its name is typed
    Checklist         checkboxes whose ticks (and unticks) are recorded as decisions
    EnvironmentPicker a dropdown for a notebook opened without ``env``

The decisions themselves (what, who, at (UTC), how, step) and the outputs that carry
them into the record are :mod:`.decisions`.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rollback_helpers.ui.decisions import Decide, Decision, decision_report, make_decision
from rollback_helpers.ui.display import Report

RUN_HINT = "Run → Run Selected Cell and All Below"
RUN_REST = "Run the rest of the notebook"  # the gate's second button does RUN_HINT for you


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


def not_approved(step: str, gate_step: str) -> Report:
    """What a changing step shows, interactively, before the engineer pressed the button."""
    return Report(f"{step}: skipped: not approved", status="skipped").note(
        f"Press the button in step {gate_step}, then run this cell and the ones below "
        f"({RUN_HINT}).")


# -- the action gate -------------------------------------------------------------------
def gate_blocker(*, resolved: bool, env: str, protected: bool, typed: str, approved: bool) -> str:
    """Why the action button is disabled, or ``""`` when it may be pressed."""
    if approved:
        return f"Approved: press “{RUN_REST}” to run the cells below."
    if not resolved:
        return "The plan is not resolved yet: run the steps above first."
    if protected and typed.strip() != env:
        return f"{env} is protected: type {env} in the box to enable the button."
    return ""


RUN_REST_FRESH = 60.0  # seconds: a saved notebook reopened later never runs its cells by itself
# JupyterLab (``rollback-runbook lab`` exposes the app to the page): select the cell after the
# button's and run it and all below. Anywhere else it says which menu item does the same.
RUN_REST_SCRIPT = """(() => {
  const made = %(made)d, key = "rb-run-rest-" + made;
  if (Math.abs(Date.now() - made) > %(fresh)d || window[key]) return;
  window[key] = true;
  const fallback = () => { element.textContent = %(fallback)s; };
  const app = window.jupyterapp;
  if (!app) { fallback(); return; }
  let tries = 0;
  const go = () => {
    const panel = [...app.shell.widgets("main")].find(w => w.content && w.node.contains(element));
    const nb = panel && panel.content;
    const index = nb ? nb.widgets.findIndex(cell => cell.node.contains(element)) : -1;
    if (index < 0) { if (++tries < 40) { setTimeout(go, 50); } else { fallback(); } return; }
    app.shell.activateById(panel.id);
    nb.activeCellIndex = index + 1;
    app.commands.execute("notebook:run-all-below");
  };
  setTimeout(go, 0);
})();"""


def run_rest_script(made: float) -> str:
    """The page's side of “Run the rest of the notebook”, stamped with when it was made."""
    return RUN_REST_SCRIPT % {"made": int(made * 1000), "fresh": int(RUN_REST_FRESH * 1000),
                              "fallback": json.dumps(f"Select the next cell, then {RUN_HINT}.")}


class Gate:
    """The one button that turns a dry run into a live one, and the record of pressing it.

    ``approve(how)`` is called on a valid press; it switches the run to live and
    returns the recorded :class:`Decision`, which replaces the pending line below the
    button. A press while the gate is blocked does nothing. Once approved, a second
    button runs the rest of the notebook (JupyterLab's "Run Selected Cell and All Below"
    from the next cell), so nobody hunts for the menu item.
    """

    def __init__(self, label: str, *, env: str, protected: bool, resolved: bool,
                 approve: Callable[[str], Decision], screen: Screen,
                 approved: Decision | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        import ipywidgets as w

        self.label, self.env, self.protected, self.resolved = label, env, protected, resolved
        self.decision = approved
        self._approve, self._screen, self._clock = approve, screen, clock
        self._handle: Handle | None = None
        self.name_box = w.Text(placeholder=f"type {env} to enable the button",
                               description="Environment:",
                               style={"description_width": "initial"}) if protected else None
        self.button = w.Button(description=label, button_style="danger", icon="play",
                               tooltip=label, layout=w.Layout(width="max-content"))
        self.hint = w.HTML()
        self.rest = w.Button(description=RUN_REST, icon="forward", tooltip=RUN_REST,
                             layout=w.Layout(width="max-content", display="none"))
        self.rest.add_class("rb-run-rest")
        self.script = w.Output()  # where the page's side of the rest button runs
        self.button.on_click(lambda _button: self.press())
        self.rest.on_click(lambda _button: self.run_rest())
        if self.name_box is not None:
            self.name_box.observe(lambda _change: self._refresh(), names="value")
        self.widget = w.VBox([*([self.name_box] if self.name_box else []), self.button,
                              self.rest, self.hint, self.script])
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
            self.rest.layout.display = ""
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
            f"Now run the cells below: press “{RUN_REST}” (or {RUN_HINT} on the next cell)."))
        return self.decision

    def run_rest(self) -> bool:
        """What the rest button does: the page runs the cells after this one (JupyterLab's
        ``notebook:run-all-below``). Only once approved; False (nothing run) before."""
        if self.decision is None:
            return False
        self.script.outputs = ({"output_type": "display_data", "metadata": {},
                                "data": {"application/javascript": run_rest_script(self._clock()),
                                         "text/plain": ""}},)
        return True

    def _update(self, report: Report) -> None:
        if self._handle is not None:
            self._handle.update(report)


# -- the checklist ---------------------------------------------------------------------
class DecidingRun(Protocol):
    """What a checklist needs of the run it belongs to (the run layer's context satisfies it)."""

    screen: Screen

    @property
    def interactive(self) -> bool: ...

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
