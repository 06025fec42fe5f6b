"""The runbook in JupyterLab: gate, checklist, picker, progress, triage, decisions, archives, lab.

Widgets are driven the way a click drives them (``button.click()``, a checkbox's
value); outputs are captured with :class:`RecordingScreen`, or, for whole
notebooks, with the in-process ``frontend`` from conftest, which keeps outputs
the way JupyterLab saves them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.cli.lab import copy_notebooks, kernel_environment, lab_argv
from rollback_helpers.domain.parameters import PathAParameters
from rollback_helpers.errors import ConfigError, DriftDetected
from rollback_helpers.records import notebook_io
from rollback_helpers.run import archive
from rollback_helpers.run.context import open_run
from rollback_helpers.runbook import path_a, triage
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.decisions import Decision, make_decision
from rollback_helpers.ui.display import METADATA_KEY, Report
from rollback_helpers.ui.interactive import (
    RUN_REST,
    Checklist,
    EnvironmentPicker,
    Gate,
    RecordingScreen,
    gate_blocker,
    take_pending_decisions,
)
from rollback_helpers.ui.progress import Progress

TARGET = "registry.fly.io/renewa-one@" + digest_for("v41")


@pytest.fixture(autouse=True)
def no_leftover_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """A drill exports its world's token; another world must not see it (restored after)."""
    for var in ("GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.setenv(var, "")  # so that teardown restores the variable's first state
        monkeypatch.delenv(var)


# -- the gate ----------------------------------------------------------------------------
def gate_button(widget: Any) -> Any:
    """The gate's approval button (the first button in its box; the second runs the rest)."""
    return next(child for child in widget.children if hasattr(child, "on_click"))


def approver(log: list[str]) -> Callable[[str], Decision]:
    def approve(how: str) -> Decision:
        log.append(how)
        return make_decision("roll back staging", how=how, step="plan", who="ana")
    return approve


def test_gate_blocker_rules() -> None:
    """Disabled until resolved; a protected env needs its exact name; approval ends it."""
    blocked: dict[str, Any] = {"resolved": False, "env": "staging", "protected": False,
                               "typed": "", "approved": False}
    assert "not resolved" in gate_blocker(**blocked)
    assert gate_blocker(**(blocked | {"resolved": True})) == ""
    prod = blocked | {"resolved": True, "env": "production", "protected": True}
    assert "type production" in gate_blocker(**prod)
    assert "type production" in gate_blocker(**(prod | {"typed": "Production"}))
    assert gate_blocker(**(prod | {"typed": " production "})) == ""
    assert "Approved" in gate_blocker(**(prod | {"approved": True}))


def test_gate_button_is_disabled_until_the_plan_is_resolved() -> None:
    """An unresolved plan shows a disabled button; pressing it approves nothing."""
    log: list[str] = []
    gate = Gate("Roll back staging to sha256:7c0e", env="staging", protected=False,
                resolved=False, approve=approver(log), screen=RecordingScreen())
    assert gate.button.disabled
    gate.button.click()
    assert gate.press() is None and log == []


def test_production_gate_needs_the_environment_typed() -> None:
    """For production the button stays disabled until 'production' is typed in the box."""
    log: list[str] = []
    gate = Gate("Roll back production to sha256:7c0e", env="production", protected=True,
                resolved=True, approve=approver(log), screen=RecordingScreen())
    assert gate.name_box is not None and gate.button.disabled
    gate.name_box.value = "prod"
    assert gate.button.disabled and gate.press() is None
    gate.name_box.value = "production"
    assert not gate.button.disabled
    gate.button.click()
    assert log == ["button “Roll back production to sha256:7c0e” after typing 'production'"]
    assert gate.button.disabled and gate.name_box.disabled  # one approval per plan


def test_pressing_the_gate_writes_the_decision_in_place() -> None:
    """The pending line under the button is replaced by the decision, with its metadata."""
    screen = RecordingScreen()
    gate = Gate("Roll back staging to sha256:7c0e", env="staging", protected=False,
                resolved=True, approve=approver([]), screen=screen)
    gate.show()
    widget, line = screen.outputs
    assert widget.obj is gate.widget and "Awaiting approval" in line.text
    gate.button.click()
    assert line.updates == 1 and len(screen.outputs) == 2  # updated, not appended
    assert "Decision: roll back staging" in line.text and "by        ana" in line.text
    (recorded,) = line.obj.metadata[METADATA_KEY]["decisions"]
    assert recorded["how"].startswith("button") and recorded["who"] == "ana"


def test_the_rest_of_the_notebook_runs_from_the_gate_once_approved() -> None:
    """After the approval a second button asks the page to run the cells below (JupyterLab's
    ``notebook:run-all-below`` from the next cell); before it, that button does nothing. The
    script is stamped: a saved notebook reopened later does not run its cells by itself."""
    gate = Gate("Roll back staging to sha256:7c0e", env="staging", protected=False,
                resolved=True, approve=approver([]), screen=RecordingScreen(),
                clock=lambda: 1_700_000_000.25)
    gate.show()
    assert gate.rest.layout.display == "none" and not gate.run_rest()
    assert gate.script.outputs == ()
    gate.button.click()
    assert gate.rest.layout.display == "" and RUN_REST in gate.rest.description
    gate.rest.click()
    (output,) = gate.script.outputs
    script = output["data"]["application/javascript"]
    assert "notebook:run-all-below" in script and "1700000000250" in script
    assert "Run Selected Cell and All Below" in script  # what it says outside JupyterLab
    shown_approved = Gate("Roll back", env="staging", protected=False, resolved=True,
                          approve=approver([]), screen=RecordingScreen(),
                          approved=make_decision("roll back", how="button", step="plan",
                                                 who="ana"))
    assert shown_approved.rest.layout.display == ""  # a plan cell run again, still approved


def test_a_failing_approval_is_shown_not_lost() -> None:
    """An error in the approval callback is written under the button, and nothing is approved."""
    def refuse(how: str) -> Decision:
        raise RuntimeError("target vanished")

    screen = RecordingScreen()
    gate = Gate("Roll back", env="staging", protected=False, resolved=True, approve=refuse,
                screen=screen)
    gate.show()
    assert gate.press() is None and gate.decision is None
    assert "target vanished" in screen.outputs[1].text


# -- checklist, picker, progress -----------------------------------------------------------
def test_checklist_ticks_and_unticks_are_recorded_decisions() -> None:
    """Each checkbox change is one decision; the record line shows who ticked what."""
    screen, made = RecordingScreen(), []

    def decide(what: str, how: str) -> Decision:
        made.append(make_decision(what, how=how, step="flip", who="ana"))
        return made[-1]

    checklist = Checklist("Manual flip", ["Update the URLs", "Redeploy"], decide=decide,
                          interactive=True, screen=screen)
    checklist.show()
    checklist.boxes[0].value = True
    checklist.tick(1)
    checklist.boxes[1].value = False
    assert [d.what for d in made] == ["ticked: Update the URLs", "ticked: Redeploy",
                                      "unticked: Redeploy"]
    assert all(d.how == "checkbox" for d in made)
    assert not checklist.complete and checklist.done == [True, False]
    record = screen.outputs[-1]
    assert "☑ Update the URLs" in record.text and "ticked by ana" in record.text
    assert "☐ Redeploy" in record.text
    assert len(record.obj.metadata[METADATA_KEY]["decisions"]) == 3


def test_headless_checklist_has_no_widgets_and_nothing_ticked() -> None:
    """Headless, the checklist is text: every item still to do, no widget, no decision."""
    screen = RecordingScreen()
    checklist = Checklist("Manual flip", ["Update the URLs"], interactive=False, screen=screen,
                          decide=lambda what, how: pytest.fail("no decision headless"))
    checklist.show()
    assert checklist.boxes == [] and len(screen.outputs) == 1
    assert "☐ Update the URLs" in screen.texts()[0] and "not done" in screen.texts()[0]


def test_environment_picker_sets_env_and_hands_its_decision_to_the_run(tmp_path: Path) -> None:
    """Opening without env shows a picker and stops; the pick is recorded in the next run."""
    screen = RecordingScreen()
    with pytest.raises(ConfigError, match="No environment chosen"):
        open_run(PathAParameters(env="", interactive=True, sandbox_dir=str(tmp_path)),
                 screen=screen)
    picker = screen.outputs[0].obj
    assert picker.description == "Environment:" and "development" in picker.options
    chosen: list[str] = []
    EnvironmentPicker(["staging"], screen=screen, operator="ana", on_pick=chosen.append).pick(
        "staging")
    assert chosen == ["staging"]
    create_world("default", tmp_path)
    ctx = open_run(PathAParameters(env="staging", interactive=True, sandbox_dir=str(tmp_path)),
                   screen=screen)
    assert [d.what for d in ctx.decisions] == ["environment staging"]
    assert ctx.decisions[0].run_id == ctx.run_id and take_pending_decisions() == []


def test_progress_headless_lines_and_interactive_bar(capsys: pytest.CaptureFixture[str]) -> None:
    """Headless prints a line per state change; interactive moves a bar and prints one line."""
    headless = Progress("run 7", stages=("queued", "in_progress", "completed"))
    for elapsed, state in [(0, "queued"), (5, "in_progress"), (10, "in_progress")]:
        headless.update(elapsed, state)
    headless.close("success")
    assert capsys.readouterr().out.count("run 7:") == 3
    bar = Progress("run 7", stages=("queued", "in_progress", "completed"), interactive=True)
    bar.update(5, "in_progress")
    assert bar.bar.value == pytest.approx(2 / 3)
    bar.close("success")
    assert bar.bar.value == 1.0 and bar.bar.bar_style == "success"
    assert capsys.readouterr().out.strip().endswith("run 7: success (after 5s)")
    timed = Progress("cluster", total=300, interactive=True)
    timed.update(150, "provisioning")
    assert timed.bar.value == pytest.approx(0.5)


# -- triage ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("answers", "choice", "title"), [
    ((True, False, False, False), "path-a", "Path A"),
    ((False, True, False, False), "path-b", "Path B"),
    ((False, False, False, False), "path-b", "Path B"),
    ((True, True, False, False), "path-b", "Path B"),
    ((True, False, False, True), "related", "Migration Recovery"),
    ((None, None, True, None), "related", "Database Readonly"),
    ((False, True, True, False), "related", "Database Readonly"),
    ((True, None, False, False), "incomplete", "Answer the questions"),
])
def test_triage_recommendations(answers: tuple[bool | None, ...], choice: str,
                                title: str) -> None:
    """The runbook's rules: readonly first, then damage (Path B), migration state, else Path A."""
    rec = triage.recommend(triage.Answers(*answers))
    assert rec.choice == choice and title in rec.title
    assert bool(rec.notebook) == (choice in ("path-a", "path-b"))


def test_triage_creates_the_path_notebook_with_env_filled_in(tmp_path: Path) -> None:
    """The copy carries env and backend as injected parameters, and is never overwritten."""
    first = triage.create_path_notebook("path-a", "staging", folder=tmp_path, backend="real")
    second = triage.create_path_notebook("path-a", "staging", folder=tmp_path)
    assert first.name == "path_a_image_rollback-staging.ipynb"
    assert second.name == "path_a_image_rollback-staging-2.ipynb"
    params = notebook_io.notebook_parameters(nbformat.read(str(first), as_version=4))
    assert params["env"] == "staging" and params["backend"] == "real"
    assert params["interactive"] is True  # the copy is for JupyterLab


def test_triage_widgets_lead_to_a_link(tmp_path: Path) -> None:
    """Answering with the toggles enables the button; pressing it records and links the copy."""
    screen = RecordingScreen()
    start = triage.Triage(triage.Answers(), interactive=True, screen=screen, operator="ana",
                          folder=tmp_path)
    start.show()
    form = screen.outputs[0].obj
    toggles = [row.children[1] for row in form.children[:4]]
    for toggle, value in zip(toggles, [True, False, False, False], strict=True):
        toggle.value = value
    assert start.button.disabled  # no environment yet
    start.env_box.value = "staging"
    assert not start.button.disabled and "Path A" in start.button.description
    assert "Next: Path A" in screen.outputs[1].text
    start.button.click()
    assert start.created is not None and start.created.is_file()
    opened = screen.outputs[2]
    assert opened.updates == 1 and "Open: /lab/tree/path_a_image_rollback-staging.ipynb" in \
        opened.text
    assert "href='path_a_image_rollback-staging.ipynb'" in opened.obj._repr_html_()
    assert start.decisions[0].who == "ana"


def test_start_here_runs_headless_without_widgets(tmp_path: Path) -> None:
    """Under papermill the triage is driven by parameters and prints the command to run."""
    import papermill

    out = tmp_path / "start.ipynb"
    papermill.execute_notebook(
        str(archive.notebooks_dir() / "start_here.ipynb"), str(out), progress_bar=False,
        parameters={"interactive": False, "database_intact": False,
                    "destructive_migration_or_corruption": True, "database_readonly": False,
                    "migration_state_problem": False, "env": "production"}, cwd=str(tmp_path))
    text = out.read_text()
    assert "Next: Path B" in text and "rollback-runbook run path-b --env production" in text
    assert "widget-view" not in text and list(tmp_path.glob("path_b*")) == []


# -- Path A decisions, in process ------------------------------------------------------------
def start_a(tmp_path: Path, scenario: str = "default", **kwargs: Any) -> tuple[Any, World]:
    world_dir = tmp_path / "world"
    if not (world_dir / "world.json").is_file():
        create_world(scenario, world_dir)
    screen = kwargs.pop("screen", None)
    run = path_a.start({"env": "staging", "backend": "sandbox", "sandbox_dir": str(world_dir),
                        "operator": "ana", **kwargs}, screen=screen)
    return run, World.load(world_dir)


def through_plan(run: Any) -> None:
    run.current_state()
    run.resolve_target()
    run.plan()


@pytest.mark.parametrize(("env", "dry_run", "confirm", "what", "how"), [
    ("staging", True, "", "dry run: show the plan, change nothing", "parameter dry_run=True"),
    ("staging", False, "", f"roll back staging to {TARGET}", "parameter dry_run=False"),
    ("production", False, "production", "roll back production to registry.fly.io/renewa-one@",
     'parameter dry_run=False, parameter confirm="production"'),
])
def test_headless_plan_records_the_parameter_decision(tmp_path: Path, env: str, dry_run: bool,
                                                     confirm: str, what: str, how: str) -> None:
    """Headless, the plan step records what the parameters decided, like a click would."""
    screen = RecordingScreen()
    run, _ = start_a(tmp_path, env=env, dry_run=dry_run, confirm=confirm, screen=screen)
    through_plan(run)
    (decision,) = run.ctx.decisions
    assert decision.what.startswith(what)
    assert (decision.how, decision.who, decision.step) == (how, "ana", "plan")
    at = next(i for i, o in enumerate(screen.outputs) if getattr(o.obj, "title", "") == "Plan")
    plan, line, *recorded = screen.outputs[at:]  # the metrics tables come before the plan
    assert plan.obj.title == "Plan" and "Decision: " + what in line.text
    # a live run records itself on the bad deploy's record before anything changes
    assert [o.obj.title.split(" #")[0] for o in recorded] == ([] if dry_run else ["Run recorded on"])
    assert not any(hasattr(o.obj, "on_click") or hasattr(o.obj, "children")
                   for o in screen.outputs)  # no widget, ever


def test_interactive_steps_skip_until_the_button_is_pressed(tmp_path: Path) -> None:
    """Without approval the changing steps say so, and nothing in the world changes."""
    screen = RecordingScreen()
    run, world = start_a(tmp_path, interactive=True, dry_run=False, screen=screen)
    through_plan(run)
    assert run.ctx.dry_run  # dry_run=False is not an approval
    for step in (run.dispatch, run.watch, run.verify, run.update_records):
        report = step()
        assert "skipped: not approved" in report.title and "step 4" in report.notes[0]
    assert [c for c in world.calls() if c["mutating"]] == []
    assert "not approved" in run.summary().title


def test_interactive_approval_rolls_back_once(tmp_path: Path) -> None:
    """Pressing the gate makes the run live; the steps roll back; a second dispatch is refused."""
    screen = RecordingScreen()
    run, _ = start_a(tmp_path, interactive=True, screen=screen)
    through_plan(run)
    gate_widget = next(o.obj for o in screen.outputs if hasattr(o.obj, "children"))
    button = gate_button(gate_widget)
    assert "Roll back staging to sha256:" in button.description
    button.click()
    assert not run.ctx.dry_run and run.ctx.decisions[0].how.startswith("button")
    assert run.ctx.archive_path.endswith("-staging-path-a.ipynb")  # reserved for the comment
    run.dispatch()
    run.watch()
    assert run.verify().status == "ok"
    assert "Updated deployment record" in run.update_records().title
    assert "already dispatched" in run.dispatch().title
    world = World.load(tmp_path / "world")
    assert {m["image"] for m in world.state["fly"]["apps"]["renewa-one-staging"]["machines"]} \
        == {"v41"}
    assert len(world.state["github"]["runs"]) == 1


def test_the_same_plan_keeps_its_approval_and_another_plan_needs_a_new_one(
        tmp_path: Path) -> None:
    """Resolving the target again after approving keeps the approval while the plan (what
    runs, what it rolls back to) is the same; once what runs has changed (here: drift, so no
    plan at all), it is dropped."""
    screen = RecordingScreen()
    run, _ = start_a(tmp_path, interactive=True, screen=screen)
    through_plan(run)
    run.approve("button")
    run.resolve_target()
    assert not run.ctx.dry_run and run.approval is not None  # the same plan: still approved
    world = World.load(tmp_path / "world")
    for machine in world.state["fly"]["apps"]["renewa-one-staging"]["machines"]:
        machine["image"] = "v41"  # someone else rolled back meanwhile: another plan
    world.save()
    run.current_state()
    with pytest.raises(DriftDetected):
        run.resolve_target()
    assert run.ctx.dry_run and run.approval is None and "not approved" in run.dispatch().title


# -- walkthrough archives: JupyterLab's record vs papermill's ------------------------------------
def walkthrough(tmp_path: Path, frontend: Callable[[Any], Any], scenario: str,
                monkeypatch: pytest.MonkeyPatch, *, approve: bool = True,
                incidents: str = "") -> tuple[Any, Path]:
    """The Path A notebook as an engineer runs it in JupyterLab: Run All, press, run the rest
    (archived to ``incidents``, default ``tmp_path/incidents``)."""
    world = tmp_path / "world"
    create_world(scenario, world)
    saved = tmp_path / "lab" / "path_a_image_rollback-staging.ipynb"
    saved.parent.mkdir()
    nb = notebook_io.parameterized(notebook_io.read_notebook(
        archive.notebooks_dir() / "path_a_image_rollback.ipynb"),
        {"env": "staging", "sandbox_dir": str(world)}, comment="start_here")
    monkeypatch.setenv("ROLLBACK_INCIDENTS_DIR", incidents or str(tmp_path / "incidents"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(saved))
    monkeypatch.chdir(saved.parent)
    lab = frontend(nb)
    lab.save(saved)  # JupyterLab opens a file that exists
    lab.run_from(0)
    plan = lab.index("run.plan()")
    assert "Awaiting approval" in lab.texts(plan)
    if approve:
        gate_button(lab.widgets(plan)[0]).click()
        assert "Decision: roll back staging" in lab.texts(plan)
        lab.run_from(lab.index("run.dispatch()"))
    return lab, saved


def headless_record(tmp_path: Path, scenario: str) -> Any:
    incidents = tmp_path / "headless"
    cli.main(["drill", "path-a", "--env", "staging", "--scenario", scenario, "--speed", "0",
              "--quiet", "--sandbox-dir", str(tmp_path / "hworld"), "--incidents-dir",
              str(incidents)])
    (record,) = incidents.glob("*.ipynb")
    return nbformat.read(str(record), as_version=4)


@pytest.mark.e2e
def test_walkthrough_archive_has_the_structure_of_a_headless_record(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Same parameters, steps, metadata keys, outcome and decisions; only the mode differs."""
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch)
    finish = lab.index("run.finish()")
    assert "Finish: not archived yet" in lab.texts(finish)  # not saved yet
    lab.save(saved)
    lab.run(finish)
    assert "Finish: archived" in lab.texts(finish)
    (archived,) = (tmp_path / "incidents" / "drills").glob("*-staging-path-a.ipynb")
    record = nbformat.read(str(archived), as_version=4)
    interactive, headless = record.metadata[METADATA_KEY], headless_record(tmp_path, "default")
    assert notebook_io.record_structure(record) == notebook_io.record_structure(headless)
    assert interactive["mode"] == "interactive" and headless.metadata[METADATA_KEY]["mode"] == \
        "headless"
    assert interactive["decisions"][0]["how"].startswith("button")
    assert "widget-view" not in archived.read_text()  # controls are not the record
    assert "Finish: archived" in archived.read_text()
    # one clock, the world's (the scenario's day, not today): the name, the start, the seconds
    world_now = datetime.fromtimestamp(World.load(tmp_path / "world").now, UTC)
    assert world_now.date() != datetime.now(UTC).date()
    assert archived.name.startswith(f"{world_now:%Y%m%d}")
    assert interactive["started_at"].startswith(f"{world_now:%Y-%m-%d}")
    assert 0 <= interactive["seconds"] < 3600
    comment = World.load(tmp_path / "world").state["github"]["comments"]["1010"][0]["body"]
    assert str(archived) in comment  # the record comment names the archive
    digest = hashlib.sha256(archived.read_bytes()).hexdigest()
    assert f"- **sha256:** `{digest}`" in comment  # and the SHA-256 of the bytes stored


@pytest.mark.e2e
def test_a_failed_walkthrough_is_archived_like_a_failed_headless_run(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The first error output plays papermill's failing cell: same outcome, exit code, step."""
    lab, saved = walkthrough(tmp_path, frontend, "workflow-fails", monkeypatch)
    lab.save(saved)
    finish = lab.index("run.finish()")
    lab.run(finish)
    assert "Finish: archived" in lab.texts(finish), lab.texts(finish)
    (archived,) = (tmp_path / "incidents" / "drills").glob("*.ipynb")
    mine = archive.read_outcome(archived)
    theirs = headless_record(tmp_path, "workflow-fails").metadata[METADATA_KEY]
    for key in ("outcome", "exit_code", "failed_step"):
        assert mine[key] == theirs[key], key
    assert mine["exit_code"] == 5
    # the same error; its next step in each one's interface: the cell here, the command there
    assert mine["error"].partition("\nNext:")[0] == theirs["error"].partition("\nNext:")[0]
    assert "run the cell that failed again" in mine["error"]
    assert "re-run the same command" in theirs["error"]


def test_finish_refuses_a_save_older_than_the_run(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Saved before the approval: finish says to save, and archives nothing."""
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch, approve=False)
    lab.save(saved)
    gate_button(lab.widgets(lab.index("run.plan()"))[0]).click()  # approved after the save
    finish = lab.index("run.finish()")
    lab.run(finish)
    assert "not archived yet" in lab.texts(finish) and "Ctrl+S" in lab.texts(finish)
    # The run proved the incidents directory writable when it opened; nothing was archived in it.
    assert list((tmp_path / "incidents").rglob("*.ipynb")) == []


def test_finish_names_the_fix_when_the_notebook_file_is_unknown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without JPY_SESSION_NAME (not JupyterLab) or a path, finish says how to pass the path."""
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    run, _ = start_a(tmp_path, interactive=True, screen=RecordingScreen())
    report = run.finish()
    assert report.status == "stopped" and "not archived" in report.title
    assert "run.finish('path_a_image_rollback.ipynb')" in repr(report)
    assert "archived by rollback-runbook" in start_a(
        tmp_path, screen=RecordingScreen())[0].finish().title


def test_decisions_are_read_back_once_each_in_notebook_order() -> None:
    """Outputs that repeat a decision (a re-shown plan) list it once."""
    one = make_decision("a", how="x", step="s", who="w")
    two = make_decision("b", how="x", step="s", who="w")
    outputs = [Report("r", metadata={METADATA_KEY: {"decisions": [d.as_dict() for d in ds]}})
               for ds in ([one], [one, two])]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", data={"text/plain": repr(r)}, metadata=r.metadata)
        for r in outputs])])
    assert [d["what"] for d in notebook_io.decisions_in(nb)] == ["a", "b"]


# -- the lab command's pieces --------------------------------------------------------------
def test_lab_copies_clean_notebooks_and_fills_in_a_real_backend(tmp_path: Path) -> None:
    """The workspace gets output-free copies; --backend real is set as an injected parameter."""
    source = tmp_path / "src"
    source.mkdir()
    nb = notebook_io.read_notebook(archive.notebooks_dir() / "start_here.ipynb")
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="old")]
    notebook_io.write_notebook(nb, source / "start_here.ipynb")
    (copy,) = copy_notebooks(tmp_path / "ws", backend="real", source=source)
    copied = notebook_io.read_notebook(copy)
    assert all(not c.get("outputs") for c in copied.cells if c.cell_type == "code")
    assert notebook_io.notebook_parameters(copied)["backend"] == "real"


def test_lab_environment_keeps_real_tokens_away_from_the_sandbox(tmp_path: Path) -> None:
    """The sandbox lab's kernels get the sandbox token, the world and the archive folder."""
    env = kernel_environment({"GITHUB_TOKEN": "ghp_real", "GH_TOKEN": "ghp_real2",
                              "JUPYTER_TOKEN": "x", "PATH": os.environ["PATH"]},
                             workspace=tmp_path, incidents=tmp_path / "inc",
                             sandbox_dir=tmp_path / ".sandbox", sandbox_token="ghs_sandbox1")
    assert env["GITHUB_TOKEN"] == "ghs_sandbox1" and "GH_TOKEN" not in env
    assert "JUPYTER_TOKEN" not in env and env["JUPYTER_TOKEN_FILE"].startswith(str(tmp_path))
    assert env["ROLLBACK_SANDBOX_DIR"] == str(tmp_path / ".sandbox")
    assert env["ROLLBACK_INCIDENTS_DIR"] == str(tmp_path / "inc")
    real = kernel_environment({"GITHUB_TOKEN": "ghp_real"}, workspace=tmp_path,
                              incidents=tmp_path, sandbox_dir=None)
    assert real["GITHUB_TOKEN"] == "ghp_real" and "ROLLBACK_SANDBOX_DIR" not in real


def test_lab_listens_on_loopback_only(tmp_path: Path) -> None:
    """The server binds 127.0.0.1 on the given port and never hunts for another one."""
    argv = lab_argv(tmp_path, 8123)
    assert "--ServerApp.ip=127.0.0.1" in argv and "--ServerApp.port=8123" in argv
    assert "--ServerApp.port_retries=0" in argv and "--no-browser" in argv
    assert not any("token" in a.lower() for a in argv)  # the token is in a 0600 file
    assert "--LabApp.expose_app_in_browser=True" in argv  # the gate's "Run the rest" button


@pytest.mark.e2e
def test_a_live_walkthrough_tells_the_team_once_when_it_is_archived(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The first change sends 'start'; the Finish cell sends the last event, once."""
    from webhook_receiver import receiver

    with receiver("ok") as rec:
        monkeypatch.setenv("ROLLBACK_NOTIFY_DRILLS", rec.url())
        lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch)
        lab.save(saved)
        finish = lab.index("run.finish()")
        lab.run(finish)
        lab.save(saved)
        lab.run(finish)  # archiving again updates the archive, not the team
    assert rec.events() == ["start", "success"]
    assert rec.bodies[1]["outcome"] == "exit 0: success" and rec.bodies[1]["archive"].endswith(
        "-staging-path-a.ipynb")


def test_a_decision_is_recorded_with_its_credentials_masked() -> None:
    """A review's comment (someone else's words, not refused) cannot carry a password into the
    archive through a decision."""
    from rollback_helpers.ui.interactive import make_decision

    decision = make_decision("approved the deployment", step="approval", who="bob",
                             how="GitHub environment review: use password S3cr3tPw1234 now")
    assert "S3cr3tPw1234" not in decision.how and decision.what == "approved the deployment"
