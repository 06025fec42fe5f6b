"""How a headless run ends on the command line: the team told, the record comment's closing,
the outcome reported, and a prepared Path B run's hand-over lines last."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rollback_helpers.cli import records
from rollback_helpers.errors import RollbackError
from rollback_helpers.secrets import redact

if TYPE_CHECKING:
    from rollback_helpers.run import archive
    from rollback_helpers.run.closing import Closing


def handover(args: argparse.Namespace, outcome: archive.Outcome, working: Path, *,
              drill: bool) -> list[str]:
    """A prepared Path B run's result, for its last lines (printed with --quiet too)."""
    if args.path != "path-b" or args.dry_run or not outcome.ok:
        return []
    from rollback_helpers.run.notify import handover_of

    temporary = drill and not (args.sandbox_dir or args.keep_sandbox)  # removed as it ends
    return [f"Path B {line}" for line in handover_of(working)] + ([
        "Path B drill: its world is removed as the drill ends, so the next command cannot act "
        "in it; to practise the checklist to the end, drill with --sandbox-dir DIR."]
        if temporary else [])


def announce(args: argparse.Namespace, outcome: archive.Outcome, working: Path,
              location: str, *, drill: bool) -> list[str]:
    """The run's last notification, sent from here: the kernel may be dead."""
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.run.notify import RunEnd, announce_end
    from rollback_helpers.ui.decisions import default_operator

    end = RunEnd(args.path, args.env, args.run_id, args.operator or default_operator(),
                 outcome.exit_code, outcome.outcome, working, error=outcome.error, drill=drill,
                 location=location)
    try:
        timeout = load_config().notify_timeout
    except RollbackError:
        timeout = 5.0
    sent = announce_end(end, os.environ, timeout=timeout)
    return [sent.line()] if sent is not None else []


def closing(args: argparse.Namespace, outcome: archive.Outcome, working: Path,
             stored: records.ArchivedRecord | None, *, sandbox_dir: str) -> Closing:
    from rollback_helpers.run.closing import Closing

    return Closing(args.run_id, args.path, args.env, outcome.exit_code, outcome.outcome,
                   args.dry_run, working, error=outcome.error, failed_step=outcome.failed_step,
                   last_step=outcome.last_step,
                   resume_command=shlex.join(["rollback-runbook", *map(redact, args.argv)]),
                   location=stored.location if stored else "NOT ARCHIVED (the store refused "
                   "it: see the command's output)", sha256=stored.sha256 if stored else "",
                   sandbox_dir=sandbox_dir)


def report(args: argparse.Namespace, outcome: archive.Outcome, closing: Closing) -> None:
    if outcome.ok:
        print(f"Done: {args.path} on {args.env} — {'dry run, plan only' if args.dry_run else 'success'}.")
    elif outcome.outcome == "interrupted":
        print(f"INTERRUPTED during step: {outcome.failed_step} (last completed: "
              f"{outcome.last_step})", file=sys.stderr)
        print(redact(outcome.error), file=sys.stderr)
        if not args.dry_run:
            print(f"To resume: {closing.resume_command}", file=sys.stderr)
    else:
        print(f"FAILED at step: {outcome.failed_step} (cell {outcome.failed_cell})", file=sys.stderr)
        print(redact(outcome.error), file=sys.stderr)
