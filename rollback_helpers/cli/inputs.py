"""The command line's inputs, checked before a sandbox is built or a kernel starts.

Numbers are checked by argparse (``--speed nan`` is a usage error, exit 2); the
rest goes through the same models the notebooks use — configuration
(:func:`~rollback_helpers.domain.config.load_config`) and parameters
(:func:`~rollback_helpers.domain.parameters.check_parameters`) — with each
problem named by its flag. So a bad input costs no kernel start, no world and
no archive: there was no run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_helpers.errors import ConfirmationRequired

if TYPE_CHECKING:
    from rollback_helpers.domain.config import RunbookConfig

_FLAG_FOR = {"dry_run": "--dry-run/--live", "env": "--env", "path": "PATH"}


def _number(text: str, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else "≥ 0"
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds {bound}")
    return value


def seconds(text: str) -> float:
    """An argparse type: a finite number ≥ 0 (``--speed``)."""
    return _number(text, positive=False)


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number > 0 (``--ready-timeout``)."""
    return _number(text, positive=True)


def positive_int(text: str) -> int:
    """An argparse type: a whole number > 0 (``--record-number``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number > 0")
    return value


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 for any free one, up to 65535)")
    return value


def flag_for(key: str) -> str:
    return _FLAG_FOR.get(key, "--" + key.replace("_", "-"))


def check_command(args: argparse.Namespace, params: dict[str, Any]) -> RunbookConfig:
    """Configuration, environment, parameters, confirmation: all before anything starts."""
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.domain.parameters import check_parameters

    given = {k: v for k, v in params.items() if k not in ("sandbox_dir", "archive_path")}
    check_parameters(args.path, given, name=flag_for, source="the command line")
    cfg = load_config()
    env = cfg.env(args.env)
    changes = args.path != "verify-flip" and not args.dry_run  # verify-flip only reads
    if env.is_protected and changes and args.confirm != env.name:
        raise ConfirmationRequired(
            f"A live {args.path} {args.command} against {env.name} needs an explicit confirmation.",
            f"Re-run with --confirm {env.name} (or --dry-run to only see the plan).")
    return cfg


def incidents_dir(args: argparse.Namespace, cfg: RunbookConfig, *, drill: bool) -> str:
    """Where the archive goes (``…/drills`` for drills). A local folder is created and proven
    writable now; a bucket or a GitHub store (a URL) is checked when the run opens it."""
    from rollback_helpers.run.archive import ensure_writable_dir
    from rollback_helpers.run.record_archive import incidents_location

    location = incidents_location(cfg.incidents_dir, explicit=args.incidents_dir, drill=drill)
    if ":" in location.split("/", 1)[0]:  # scheme://… or github:…: not a local folder
        return location
    source = "--incidents-dir" if args.incidents_dir else "incidents_dir (runbook.toml or " \
        "ROLLBACK_INCIDENTS_DIR)"
    return str(ensure_writable_dir(Path(location), source=source))

