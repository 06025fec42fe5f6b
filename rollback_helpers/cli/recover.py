"""``rollback-runbook recover``: archive the records of runs whose process was killed outright.

    rollback-runbook recover [--dry-run]

A run killed by SIGKILL, out of memory or a dying machine leaves its executed
notebook in a private folder of the user's state folder (``$ROLLBACK_STATE_DIR``, else
``~/.local/state/rollback-runbook`` or the platform's equivalent), whatever ``$TMPDIR``
was. Every ``run`` and ``drill`` recovers such records when it starts; this command does
it on its own, or (``--dry-run``) only lists them. See :mod:`rollback_helpers.run.recover`.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from rollback_helpers.records.store import RecordStore, local_path
from rollback_helpers.run.owner import RunOwner

NAME = "recover"
STORE_FAILED = 4  # a killed run's record could not be stored (as for a run: cli.records)


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(NAME, help="archive the records of runs whose process was killed "
                            "(SIGKILL, out of memory, the machine died)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only list them: nothing is claimed, stored, edited or removed")


def run(args: argparse.Namespace) -> int:
    from rollback_helpers.run import recover as r

    found = r.find()
    for orphan in found.running:
        print(f"Still running, left alone: {orphan.summary} in {orphan.folder}")
    if args.dry_run:
        for orphan in found.orphans:
            print(f"Killed, not archived yet: {orphan.summary} in {orphan.folder}; its record "
                  f"goes to {orphan.owner.store.rstrip('/')}/{orphan.owner.name}")
        print(f"{len(found.orphans)} killed run(s) to recover in {r.working_root()}; run "
              f"`{r.RECOVER}` to archive them.")
        return 0
    from rollback_helpers.run.headless import sweep_kernel_dirs

    if kernels := sweep_kernel_dirs():
        print(f"Removed {kernels} kernel folder(s) left by killed runs.")
    done = [recovery for orphan in found.orphans if (recovery := r.recover(orphan)) is not None]
    for recovery in done:
        for line in recovery.lines:
            print(line)
    if not done:
        print(f"No killed runs to recover in {r.working_root()}.")
    return 0 if all(recovery.archived for recovery in done) else STORE_FAILED


def recover_before_run(run_id: str) -> None:
    """At the start of a run or drill: recover earlier killed runs; never fails this one."""
    from rollback_helpers.run.headless import sweep_kernel_dirs
    from rollback_helpers.run.recover import RECOVER, find_orphans, recover

    sweep_kernel_dirs()  # the private folders of kernels whose command was killed

    orphans, problem = find_orphans()
    if problem:
        print(problem, flush=True)
    if orphans:
        print(f"Archiving the record of {len(orphans)} run(s) killed earlier on this machine "
              f"first (as `{RECOVER}` would)…", flush=True)
    for orphan in orphans:
        recovery = recover(orphan, by=f"run {run_id} as it started")
        for line in recovery.lines if recovery is not None else []:
            print(line, flush=True)


def worlds_of_working_copies() -> frozenset[Path]:
    """The sandbox worlds named by a working copy still in the state folder (a run going on,
    or a killed one whose recovery is pending or under way)."""
    from rollback_helpers.run.owner import WORKING_PREFIX, read_owner
    from rollback_helpers.run.recover import working_root

    owners = (read_owner(folder) for folder in working_root().glob(WORKING_PREFIX + "*"))
    return frozenset(Path(o.sandbox_dir) for o in owners if o is not None and o.sandbox_dir)


def owner(args: argparse.Namespace, store: RecordStore, name: str, *, backend: str,
          sandbox_dir: str | None, started: datetime | None = None) -> RunOwner:
    """This process as the owner of the run's working copy (what recovery needs); ``started``:
    on the run's clock (a drill's world's), else now."""
    local = local_path(store)
    named = os.environ.get("ROLLBACK_RUNBOOK_CONFIG") or "runbook.toml"
    return RunOwner.this_process(
        run_id=args.run_id, path=args.path, env=args.env, dry_run=bool(args.dry_run),
        backend=backend, store=str(local.resolve()) if local else store.location, name=name,
        argv=list(args.argv), sandbox_dir=sandbox_dir,
        keep_sandbox=bool(getattr(args, "keep_sandbox", True) or getattr(args, "sandbox_dir", "")),
        cwd=os.getcwd(), config_file=str(Path(named).resolve()) if Path(named).is_file() else "",
        started_at=started.isoformat(timespec="seconds") if started else "")
