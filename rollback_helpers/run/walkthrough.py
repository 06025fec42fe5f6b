"""Archiving an interactive walkthrough (JupyterLab) from its last cell.

:func:`archive_walkthrough` reads the notebook as the engineer saved it, derives
a headless run's metadata block from it (the first error output plays
papermill's failing cell) and writes it under the same name rules.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import nbformat

from rollback_helpers.errors import OUTCOMES, ConfigError, RollbackError
from rollback_helpers.records.archive import sha256_hex
from rollback_helpers.records.notebook_io import (
    decisions_in,
    first_error,
    notebook_parameters,
    read_notebook,
    run_identity,
    runbook_metadata,
)
from rollback_helpers.records.store import RecordStore
from rollback_helpers.run.archive import Outcome, failed_at, finished
from rollback_helpers.run.backends import BackendName
from rollback_helpers.run.closing import Closed, Closing, ended_before
from rollback_helpers.run.kernel_runs import resume_hint
from rollback_helpers.run.lifecycle import Lifecycle
from rollback_helpers.run.notify import Notifier, RunEnd, tell_end
from rollback_helpers.run.timeline import FINISHED, story_length
from rollback_helpers.ui.decisions import Decision
from rollback_helpers.ui.display import METADATA_KEY, Report
from rollback_helpers.version import runbook_commit, runbook_version


@dataclass(frozen=True)
class WalkthroughFacts:
    """Who ran which path where: what an interactive run's archive and end name."""

    path: str
    env: str
    run_id: str
    operator: str
    dry_run: bool
    backend: BackendName
    sandbox_dir: str  # a drill's world ("" on the real backend)
    opened_at: datetime  # both on the run's clock: a drill's, its world's
    now: datetime


class WalkthroughRun(Protocol):
    """What archiving needs of the interactive run (the run's context satisfies it): its facts,
    its story, where it is stored, and the lock, record comment and team its end tells."""

    timeline: list[tuple[str, str]]
    decisions: list[Decision]
    told_end: set[str]  # the outcomes the team was told of (a repeated Finish tells nobody)

    def walkthrough_facts(self) -> WalkthroughFacts: ...

    def reserve_archive_path(self) -> str: ...

    def record_store(self) -> RecordStore: ...

    def end_notifier(self) -> Notifier | None: ...

    def end_lifecycle(self) -> Lifecycle | None: ...

    def log(self, event: str) -> None: ...


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SCRIPT_MIME = "application/javascript"  # a page's script (the gate's "Run the rest"): not a record
SAVE_FIRST = "Save the notebook (Ctrl+S), then run this cell again."
INTERRUPTED = 130  # a walkthrough whose approval lapsed ends its record comment as interrupted


def saved_notebook(explicit: str | None = None) -> Path:
    """The notebook file this kernel runs: explicit, else what jupyter-server told the kernel."""
    name = explicit or os.environ.get("JPY_SESSION_NAME", "")
    path = Path(name) if name else None
    if path is not None and not path.is_absolute() and not path.is_file():
        path = Path.cwd() / path.name
    if path is None or path.suffix != ".ipynb" or not path.is_file():
        raise ConfigError(f"Cannot find this notebook's file ({name or 'JupyterLab did not say'}).",
                          "Pass it: run.finish('path_a_image_rollback.ipynb'), its path relative "
                          "to this notebook's folder.")
    return path


def unsaved_work(nb: nbformat.NotebookNode, ctx: WalkthroughRun) -> str:
    """Why the saved file does not yet hold this run's story, or ``""``."""
    run_id = ctx.walkthrough_facts().run_id
    runs = [block["run"] for block in runbook_metadata(nb) if isinstance(block.get("run"), dict)]
    if not any(run.get("id") == run_id for run in runs):
        return "The saved file does not show this run yet."
    summaries = [r for r in runs if "timeline" in r]
    mine = [r for r in summaries if r.get("id") == run_id]
    ended_in_error = first_error(nb) is not None  # a failed run's story ends at its error
    if summaries and not ended_in_error and (not mine or mine[-1]["timeline"] != story_length(ctx.timeline)):
        return ("The saved Summary is older than the run: run the Summary cell again, "
                "then save.")
    saved = {d.get("id") for d in decisions_in(nb)}
    missing = [d for d in ctx.decisions if d.id not in saved]
    if missing:
        return f"{len(missing)} decision(s) of this run are not in the saved file."
    return ""


def archive_walkthrough(ctx: WalkthroughRun, notebook: str | None = None) -> Report:
    """Archive the saved notebook of an interactive run, with a headless run's metadata block."""
    try:
        saved = saved_notebook(notebook)
    except ConfigError as exc:  # not JupyterLab (nbval, another editor): say how, do not fail
        return Report("Finish: not archived", status="stopped").note(exc.what).note(exc.next_step)
    nb = read_notebook(saved)
    problem = unsaved_work(nb, ctx)
    if problem:
        return Report("Finish: not archived yet", status="stopped").note(problem).note(SAVE_FIRST)
    reserved = ctx.reserve_archive_path()
    store = ctx.record_store()
    outcome, closing = _stamp_and_close(nb, saved, ctx, reserved)
    told = _tell_end(ctx, nb, closing)  # before storing: the deliveries are part of the record
    report = Report("Finish: archived", status="ok" if outcome.ok else "warning")
    try:
        stored, data = store.put_new(reserved.rsplit("/", 1)[-1],
                                     lambda location: _final_bytes(nb, report, outcome, location))
    except RollbackError as exc:
        failed = Report("Finish: NOT archived", status="failed").note(exc.what).note(
            exc.next_step or "Run this cell again once the store is reachable.")
        return _with_lines(ctx, failed, told)
    digest = sha256_hex(data)
    ctx.log(f"{FINISHED}archived at {stored.location} (sha256 {digest})")
    # then, as the command line does after a headless run: the record comment's final edit
    # (state, exit code, last step, archive, SHA-256) and the lock's release
    life = ctx.end_lifecycle()
    closed = life.close(replace(closing, location=stored.location, sha256=digest)) \
        if life is not None else Closed()
    report = _with_lines(ctx, _archived_report(report, outcome, stored.location, digest),
                         [*told, *closed.lines])
    if closed.edit_failed:
        report.status = "warning"
    return report


def _stamp_and_close(nb: nbformat.NotebookNode, saved: Path, ctx: WalkthroughRun,
                     reserved: str) -> tuple[Outcome, Closing]:
    """The record's metadata block, and what the run's end needs (as the command line's)."""
    life = ctx.end_lifecycle()
    issue = _keep_record_comment(nb, life.record_block() if life is not None else None)
    run = ctx.walkthrough_facts()
    outcome = stamp_walkthrough(nb, saved, run, reserved)
    code, ended = outcome.exit_code, outcome.outcome
    if run.dry_run and life is not None and life.record is not None:
        # approved, then the plan changed and nobody approved again: never carried out
        life.update_record(state="interrupted", next_step=resume_hint(run.path))
        code, ended = INTERRUPTED, OUTCOMES[INTERRUPTED]
    return outcome, Closing(
        run.run_id, run.path, run.env, code, ended, run.dry_run,
        saved, error=outcome.error, failed_step=outcome.failed_step,
        last_step=outcome.last_step, location=reserved, sandbox_dir=run.sandbox_dir,
        record_issue=issue,
        comment_id=life.record.comment_id if life is not None and life.record is not None
        else None)


def _with_lines(ctx: WalkthroughRun, report: Report, lines: list[str]) -> Report:
    for line in lines:
        ctx.log(FINISHED + line)
        report.note(line)
    return report


def _tell_end(ctx: WalkthroughRun, nb: nbformat.NotebookNode, closing: Closing) -> list[str]:
    """The run's last notification, as the command line sends it: once per outcome, even
    across a kernel restart (the record comment already showing this end means it was sent)."""
    notifier = ctx.end_notifier()
    if notifier is None:
        return []
    told = f"{closing.outcome} (exit code {closing.exit_code})"
    life = ctx.end_lifecycle()
    if told in ctx.told_end or (life is not None and ended_before(life.github, closing)):
        return [f"notification: not sent again (the team was already told: {told})"]
    ctx.told_end.add(told)
    run = ctx.walkthrough_facts()
    sent = tell_end(notifier, RunEnd(
        run.path, run.env, run.run_id, run.operator, closing.exit_code, closing.outcome,
        closing.archive, error=closing.error, drill=run.backend == "sandbox",
        location=closing.location), nb)
    return [sent.line()]


def _keep_record_comment(nb: nbformat.NotebookNode, where: dict[str, Any] | None) -> int | None:
    """The record comment's issue; the notebook names the comment, as a headless record does.

    A walkthrough posts its record comment when the plan's button is pressed, from the
    button's callback, whose outputs have no cell to go to: the Finish cell's output
    carries it instead (for verify-record, history and the end notification's link)."""
    named = run_identity(nb).get("record_issue")
    if where is None or named is not None:
        return int(named) if named is not None else None
    for cell in _finish_cells(nb):
        cell.outputs = [nbformat.from_dict(  # type: ignore[no-untyped-call]
            {"output_type": "display_data", "data": {"text/plain": ""},
             "metadata": {METADATA_KEY: {"record_comment": where}}})]
    return int(where["issue"])


def _archived_report(report: Report, outcome: Outcome, location: str, digest: str) -> Report:
    report.fact("archive", location).fact("sha256", digest)
    report.fact("outcome", f"{outcome.outcome} (exit code {outcome.exit_code})")
    report.fact("decisions", len(outcome.decisions))
    if outcome.failed_step:
        report.note(f"Failed step: {outcome.failed_step} — {outcome.error}")
    report.note("Records are never overwritten: running this cell again (after saving) "
                "archives a new copy.")
    return report


def _final_bytes(nb: nbformat.NotebookNode, report: Report, outcome: Outcome,
                 location: str) -> bytes:
    """The archived notebook: its Finish cell shows where it went, its metadata says so."""
    told = nb.metadata.get(METADATA_KEY, {}).get("notifications")
    nb.metadata[METADATA_KEY] = asdict(replace(outcome, archive=location)) | (
        {"notifications": told} if told else {})
    _replace_finish_output(nb, _archived_report(Report(report.title, status=report.status),
                                                outcome, location, "published on the run's "
                                                "record comment"))
    return (nbformat.writes(nb) + "\n").encode()  # type: ignore[no-untyped-call,no-any-return]


def stamp_walkthrough(nb: nbformat.NotebookNode, saved: Path, run: WalkthroughFacts,
                      target: str) -> Outcome:
    """The metadata block for an interactive run, set on ``nb`` (widgets are dropped)."""
    _drop_widgets(nb)
    common: dict[str, Any] = {
        "path": run.path, "env": run.env, "archive": str(target), "mode": "interactive",
        "dry_run": run.dry_run, "backend": run.backend,
        "started_at": run.opened_at.isoformat(timespec="seconds"), "operator": run.operator,
        "runbook_version": runbook_version(), "runbook_commit": runbook_commit()}
    error = first_error(nb)
    outcome = failed_at(error[1], error[2], error[0], saved, common) if error \
        else Outcome(exit_code=0, outcome=OUTCOMES[0], **common)
    seconds = (run.now - run.opened_at).total_seconds()
    outcome = replace(finished(outcome, seconds), parameters=notebook_parameters(nb),
                      decisions=decisions_in(nb), **run_identity(nb))
    nb.metadata[METADATA_KEY] = asdict(outcome)
    return outcome


def _drop_widgets(nb: nbformat.NotebookNode) -> None:
    """Widgets are controls, not the record: the decision lines they wrote are."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not {WIDGET_MIME, SCRIPT_MIME} & set(o.get("data", {}))]


def _finish_cells(nb: nbformat.NotebookNode) -> list[Any]:
    return [cell for cell in nb.cells if cell.cell_type == "code"
            and "finish" in cell.get("metadata", {}).get("tags", [])]


def _replace_finish_output(nb: nbformat.NotebookNode, report: Report) -> None:
    for cell in _finish_cells(nb):
        data = {"text/plain": repr(report), "text/html": report._repr_html_()}
        kept = [o.get("metadata", {}) for o in cell.get("outputs", [])
                if METADATA_KEY in o.get("metadata", {})]  # the record comment it names
        cell.outputs = [nbformat.from_dict(  # type: ignore[no-untyped-call]
            {"output_type": "display_data", "data": data, "metadata": kept[0] if kept else {}})]
