"""Runs killed outright (SIGKILL, out of memory, the machine died): found and archived later.

A headless run executes its notebook into ``<state>/rollback-run-XXXX/`` with an
``owner.json`` naming its process (:mod:`rollback_helpers.run.owner`), in the user's
state folder (:mod:`rollback_helpers.records.state_dir`: ``$ROLLBACK_STATE_DIR``, else
``platformdirs``' user state folder), which survives a reboot and is found whatever
``$TMPDIR`` the recovering process has. A process
killed outright cannot archive its own record, so the folder stays behind. The
next ``run`` or ``drill`` on this machine, or ``rollback-runbook recover``,
finds every folder whose owner process is gone, and for each:

1. claims it, atomically: the folder is renamed to ``…​.recovering-<pid>-<start>``
   (one rename of a name succeeds), so two recoveries at once recover it once; a
   claim whose process is gone is claimed again;
2. marks its notebook as an interrupted run's is marked (the step that was
   running ``interrupted``, the later cells ``not run``), outcome ``interrupted``,
   exit code 137 (:class:`~rollback_helpers.errors.ProcessKilled`);
3. stores it, write-once, where the run would have stored it (an unreachable
   store: the copy is kept and the line says where);
4. makes the run's record comment's final edit (archive, SHA-256, how to resume)
   and releases the environment's lock if the dead run still holds it;
5. removes the folder (and a drill's temporary sandbox world).

A folder whose owner still runs, or without an owner file, is left alone.
Nothing here raises: each problem is one line that says what is left where.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import nbformat

from rollback_helpers.domain.config import RunbookConfig, load_config
from rollback_helpers.errors import ProcessKilled, RollbackError
from rollback_helpers.records.archive import (
    ArchivedRecord,
    keep_or_explain,
    located,
    rescue_copy,
    sha256_hex,
)
from rollback_helpers.records.notebook_io import heading_above, read_notebook, write_notebook
from rollback_helpers.records.state_dir import state_root
from rollback_helpers.records.store import RecordStore, open_store
from rollback_helpers.run import archive
from rollback_helpers.run.backends import (
    discard_drill_world,
    drill_world_exists,
    github_factory,
    record_clock,
)
from rollback_helpers.run.closing import Closing, finish_run
from rollback_helpers.run.interrupt import CellLog, mark_interrupted
from rollback_helpers.run.notify import RunEnd, announce_end
from rollback_helpers.run.owner import WORKING_PREFIX, RunOwner, process_start, read_owner
from rollback_helpers.secrets import redact
from rollback_helpers.ui.decisions import default_operator
from rollback_helpers.version import runbook_commit, runbook_version

CLAIM = ".recovering-"
KILLED = "killed (SIGKILL or the machine died)"
RECOVER = "rollback-runbook recover"


@dataclass(frozen=True)
class Orphan:
    """A working copy whose run's process is gone."""

    folder: Path
    owner: RunOwner

    @property
    def notebook(self) -> Path:
        return self.folder / self.owner.name

    @property
    def summary(self) -> str:
        mode = "dry run" if self.owner.dry_run else "live"
        return (f"run {self.owner.run_id} ({self.owner.path} on {self.owner.env}, {mode}, "
                f"{self.owner.backend}; pid {self.owner.pid}, started {self.owner.started_at})")


@dataclass(frozen=True)
class Found:
    """The working copies in the state folder: orphaned, and still running (left alone)."""

    orphans: list[Orphan]
    running: list[Orphan]


def working_root(root: str | Path | None = None) -> Path:
    """Where working copies are looked for: ``root``, else the user's state folder."""
    return Path(root) if root else state_root()


def find(root: str | Path | None = None) -> Found:
    """Every working copy with an owner file, orphaned or still running. Folders being
    recovered by a live process, and folders without an owner file, are not listed."""
    orphans: list[Orphan] = []
    running: list[Orphan] = []
    for folder in sorted(working_root(root).glob(WORKING_PREFIX + "*")):
        if not folder.is_dir() or _claimed_by_live(folder):
            continue
        owner = read_owner(folder)
        if owner is not None:
            (running if owner.alive else orphans).append(Orphan(folder, owner))
    return Found(orphans, running)


def _claimed_by_live(folder: Path) -> bool:
    _, sep, claim = folder.name.partition(CLAIM)
    pid, _, started_ms = claim.partition("-")
    if not sep or not pid.isdigit() or not started_ms.isdigit():
        return False
    started = process_start(int(pid))
    return started is not None and abs(started - int(started_ms) / 1000) < 0.05


def claim(orphan: Orphan) -> Orphan | None:
    """The orphan, renamed to a name only this process uses; None if another took it first."""
    me = os.getpid()
    started_ms = round((process_start(me) or 0.0) * 1000)
    base = orphan.folder.name.partition(CLAIM)[0]
    claimed = orphan.folder.with_name(f"{base}{CLAIM}{me}-{started_ms}")
    try:
        orphan.folder.rename(claimed)
    except OSError:
        return None
    return Orphan(claimed, orphan.owner)


def _unclaim(orphan: Orphan) -> Path:
    """Give the folder its name back, for a later recovery; where it is now."""
    original = orphan.folder.with_name(orphan.folder.name.partition(CLAIM)[0])
    try:
        orphan.folder.rename(original)
    except OSError:
        return orphan.folder
    return original


# -- the notebook ---------------------------------------------------------------------------
def cells_run(nb: nbformat.NotebookNode) -> CellLog:
    """Which code cells had started and which had finished, from papermill's saved statuses."""
    log = CellLog()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        if status in ("running", "completed", "failed"):
            log.started.append(index)
        if status == "completed":
            log.finished.append(index)
    return log


def mark_killed(notebook: Path, owner: RunOwner, *, by: str) -> archive.Outcome:
    """Mark the dead run's notebook as interrupted (exit 137) and stamp its outcome; a
    notebook whose outcome was already stamped (the run had ended) keeps it. A notebook
    never written, or cut off mid-write (its bytes kept aside), becomes the unrun notebook."""
    cut = _cut_off(notebook)
    stamped = archive.read_outcome(notebook) if _written(notebook) else {}
    if stamped.get("outcome"):
        known = {f.name for f in fields(archive.Outcome)}
        return archive.Outcome(**{k: v for k, v in stamped.items() if k in known})
    if not _written(notebook):
        write_notebook(read_notebook(archive.notebook_of(owner.path)), notebook)
    last_write = _last_write(notebook, owner)
    nb = read_notebook(notebook)
    cells = cells_run(nb)
    step = heading_above(nb, cells.running) if cells.running is not None else "between steps"
    last = heading_above(nb, max(cells.finished)) if cells.finished else "none"
    mark_interrupted(nb, cells, KILLED)
    write_notebook(nb, notebook)
    outcome = _killed_outcome(owner, step, last, cells.running, last_write, by)
    if cut is not None:
        outcome = replace(outcome, error=f"{outcome.error} Its notebook was cut off mid-write: "
                          f"those bytes are kept at {cut}.")
    return archive.stamp_metadata(notebook, outcome)


def _last_write(notebook: Path, owner: RunOwner) -> datetime:
    """When the dead run last wrote its notebook, on the run's own clock: a drill's, its
    world's time (where the run left it), else the file's modification time."""
    if owner.backend != "sandbox":
        return datetime.fromtimestamp(notebook.stat().st_mtime, UTC)
    if owner.sandbox_dir and drill_world_exists(owner.sandbox_dir):
        return datetime.fromtimestamp(record_clock(owner.sandbox_dir).now(), UTC)
    try:  # the world is gone (a reboot): no later moment of its clock is known
        return datetime.fromisoformat(owner.started_at)
    except ValueError:
        return datetime.fromtimestamp(notebook.stat().st_mtime, UTC)


def _written(notebook: Path) -> bool:
    return notebook.is_file() and notebook.stat().st_size > 0


def _cut_off(notebook: Path) -> Path | None:
    """A notebook that is not readable JSON (killed mid-write) is moved aside: where to."""
    if not _written(notebook):
        return None
    try:
        read_notebook(notebook)
    except (ValueError, KeyError, AttributeError):  # not JSON, or not a notebook
        kept = rescue_copy(notebook)
        notebook.unlink()
        return kept
    return None


def _killed_outcome(owner: RunOwner, step: str, last: str, cell: int | None,
                    last_write: datetime, by: str) -> archive.Outcome:
    try:
        seconds = (last_write - datetime.fromisoformat(owner.started_at)).total_seconds()
    except ValueError:
        seconds = 0.0
    return archive.Outcome(  # the run's id from its owner: the kernel may have died before the
        # notebook was saved with the output that names it
        path=owner.path, env=owner.env, run_id=owner.run_id,
        archive=f"{owner.store.rstrip('/')}/{owner.name}",
        exit_code=ProcessKilled.exit_code, outcome=ProcessKilled.outcome,
        error=f"ProcessKilled: the run's process (pid {owner.pid}) was {KILLED} during "
              f"{step!r}; the last completed step was {last!r}. Archived afterwards by {by}.",
        failed_step=step, failed_cell=cell, last_step=last, dry_run=owner.dry_run,
        backend=owner.backend, started_at=owner.started_at, runbook_version=runbook_version(),
        runbook_commit=runbook_commit(),
        finished_at=last_write.isoformat(timespec="seconds"), seconds=round(max(seconds, 0), 2))


# -- the store, the record comment, the lock ---------------------------------------------------
def store_once(store: RecordStore, owner: RunOwner, notebook: Path
               ) -> tuple[ArchivedRecord | None, str]:
    """Store the notebook write-once; a record already stored under its name with exactly
    these bytes (a recovery that died after storing it) is not stored twice."""
    original = notebook.read_bytes()
    location = store.location_of(owner.name)
    expected = located(original, location)
    with contextlib.suppress(RollbackError, OSError):
        if store.read(owner.name) == expected:
            return ArchivedRecord(location, owner.name, sha256_hex(expected), len(expected)), ""
    return keep_or_explain(store, owner.name, notebook, rescue_copy)


def closing_of(orphan: Orphan, outcome: archive.Outcome, stored: ArchivedRecord | None) -> Closing:
    owner = orphan.owner
    return Closing(owner.run_id, owner.path, owner.env, outcome.exit_code, outcome.outcome,
                   owner.dry_run, orphan.notebook, error=outcome.error,
                   failed_step=outcome.failed_step, last_step=outcome.last_step,
                   resume_command=shlex.join(owner.command),
                   location=stored.location if stored else "NOT ARCHIVED (the store refused "
                   "it: see the output of the run that recovered it)",
                   sha256=stored.sha256 if stored else "", sandbox_dir=owner.sandbox_dir or "")


def announce(owner: RunOwner, outcome: archive.Outcome, notebook: Path, *,
             timeout: float) -> list[str]:
    """The run's last notification (ROLLBACK_NOTIFY…), which the dead run never sent; its
    deliveries go into the notebook before it is stored. Sent once: not again for a notebook
    whose deliveries are already in it."""
    if owner.dry_run or outcome.exit_code == 2 or "notifications" in archive.read_outcome(notebook):
        return []
    operator = str(outcome.parameters.get("operator") or "") or default_operator()
    sent = announce_end(RunEnd(owner.path, owner.env, owner.run_id, operator, outcome.exit_code,
                               outcome.outcome, notebook, error=outcome.error,
                               drill=owner.backend == "sandbox",
                               location=f"{owner.store.rstrip('/')}/{owner.name}"),
                        os.environ, timeout=timeout)
    return [sent.line()] if sent is not None else []


def finish_record(cfg: RunbookConfig, owner: RunOwner, closing: Closing) -> list[str]:
    """The record comment's final edit and the lock's release, as the dead run would have."""
    if owner.dry_run or closing.exit_code == 2:
        return []  # nothing was posted, nothing was locked
    if owner.backend == "sandbox" and not (owner.sandbox_dir
                                           and drill_world_exists(owner.sandbox_dir)):
        where = f" ({owner.sandbox_dir})" if owner.sandbox_dir else ""
        return [f"The drill's sandbox world{where} is gone: there is no record comment to finish."]
    return finish_run(closing, backend=owner.backend, sandbox_dir=owner.sandbox_dir, cfg=cfg)


def _config(owner: RunOwner) -> RunbookConfig:
    """The configuration the dead run read (its file, if it still exists)."""
    named = owner.config_file if owner.config_file and Path(owner.config_file).is_file() else None
    return load_config(config_file=named)


# -- one orphan, all of them ------------------------------------------------------------------
@dataclass(frozen=True)
class Recovery:
    """What recovering one orphan did: lines to print; ``archived`` once its record is stored."""

    lines: list[str]
    archived: bool


def recover(orphan: Orphan, *, by: str = RECOVER) -> Recovery | None:
    """Recover one orphan (claimed first); None if another process took it first."""
    claimed = claim(orphan)
    if claimed is None:
        return None
    try:
        recovery = _recover_claimed(claimed, by)
    except Exception as exc:  # noqa: BLE001 - recovery never fails the run that does it
        left = _unclaim(claimed)
        return Recovery([f"Could not recover {orphan.summary}: "
                         f"{redact(f'{type(exc).__name__}: {exc}')}. Its notebook is left in "
                         f"{left}; `{RECOVER}` tries again."], archived=False)
    shutil.rmtree(claimed.folder, ignore_errors=True)
    return recovery


def _recover_claimed(orphan: Orphan, by: str) -> Recovery:
    owner = orphan.owner
    outcome = mark_killed(orphan.notebook, owner, by=by)
    cfg = _config(owner)
    told = announce(owner, outcome, orphan.notebook, timeout=cfg.notify_timeout)
    store = open_store(owner.store, github=github_factory(cfg, sandbox_dir=owner.sandbox_dir))
    stored, problem = store_once(store, owner, orphan.notebook)
    closing = closing_of(orphan, outcome, stored)
    comment = [*told, *finish_record(cfg, owner, closing)]
    if owner.backend == "sandbox" and owner.sandbox_dir and not owner.keep_sandbox:
        discard_drill_world(owner.sandbox_dir)  # the drill's own world, as the drill would have
        shutil.rmtree(owner.sandbox_dir, ignore_errors=True)
    return Recovery([_recovered_line(orphan, outcome, stored, problem),
                     *(f"  {line}" for line in comment)], archived=stored is not None)


def _recovered_line(orphan: Orphan, outcome: archive.Outcome, stored: ArchivedRecord | None,
                    problem: str) -> str:
    owner = orphan.owner
    what = (f"interrupted: {KILLED}, during {outcome.failed_step}"
            if outcome.outcome == "interrupted" and outcome.exit_code == ProcessKilled.exit_code
            else f"it had ended ({outcome.outcome}, exit {outcome.exit_code}) and was killed "
                 "while its record was stored")
    where = (f"archived {stored.location} (SHA-256 {stored.sha256})" if stored
             else problem.replace("\n", " ").rstrip("."))
    then = ("re-run it to see the plan again" if owner.dry_run else
            f"to resume, run `{shlex.join(owner.command)}`")
    return f"Recovered run {owner.run_id} ({owner.path} on {owner.env}, {what}): {where}. Next: {then}."


def find_orphans(root: str | Path | None = None) -> tuple[list[Orphan], str]:
    """The orphans in the state folder, and a line if they could not be looked for. Never raises."""
    try:
        return find(root).orphans, ""
    except Exception as exc:  # noqa: BLE001 - recovery never fails the run that does it
        return [], (f"Could not look for killed runs in {working_root(root)}: {redact(str(exc))}. "
                    f"Run `{RECOVER}` later.")


def recover_all(root: str | Path | None = None, *, by: str = RECOVER) -> list[str]:
    """Recover every orphaned working copy in the state folder; lines to print. Never raises."""
    orphans, problem = find_orphans(root)
    if problem:
        return [problem]
    done = [recover(orphan, by=by) for orphan in orphans]
    return [line for recovery in done if recovery is not None for line in recovery.lines]
