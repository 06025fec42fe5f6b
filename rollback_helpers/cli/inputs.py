"""The command line's inputs, checked before a sandbox is built or a kernel starts.

Every flag's value and every free-text variable (``ROLLBACK_OPERATOR``) is first
refused if it holds a credential (:func:`guard_free_text_inputs`). Numbers are
checked by argparse (``--speed nan`` is a usage error, exit 2); the
rest goes through the same models the notebooks use — configuration
(:func:`~rollback_helpers.domain.config.load_config`) and parameters
(:func:`~rollback_helpers.domain.parameters.check_parameters`) — with each
problem named by its flag. So a bad input costs no kernel start, no world and
no archive: there was no run.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_helpers.errors import ConfigError, ConfirmationRequired, guard_free_text
from rollback_helpers.secrets import redact

if TYPE_CHECKING:
    from rollback_helpers.domain.config import RunbookConfig

_FLAG_FOR = {"dry_run": "--dry-run/--live", "env": "--env", "path": "PATH"}


_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")


def masked_message(message: str) -> str:
    """An argparse error with every credential in it masked. argparse quotes a refused value
    with ``repr``, which escapes newlines and zero-width characters and doubles backslashes:
    each quoted value is read back and masked as written, then the whole message."""
    def unquoted(found: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(found[0])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return found[0]
        if not isinstance(value, str) or redact(value) == value:
            return found[0]
        return repr(redact(value))

    return redact(_QUOTED.sub(unquoted, message))


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


LATENCY_SEAMS = ("github", "flyctl", "health", "metrics")  # the sandbox's seams


def latency(text: str) -> dict[str, float]:
    """An argparse type: ``github=0.25,flyctl=1.5``, seconds per call of the sandbox's seams."""
    seams: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        seam, sep, value = (x.strip() for x in part.partition("="))
        if not sep or seam not in LATENCY_SEAMS:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not SEAM=SECONDS with SEAM one of {', '.join(LATENCY_SEAMS)}")
        try:
            seams[seam] = _number(value, positive=False)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{part!r}: {exc}") from None
    return seams


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


# Free text the environment gives a run: it goes into lease commits, comments and the archive.
FREE_TEXT_VARIABLES = ("ROLLBACK_OPERATOR",)


def guard_free_text_inputs(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Refuse (exit 2) a credential typed into any flag or a free-text variable, before anything
    starts: every flag's value may reach the archive's parameters, a record comment, a lease
    commit or a log."""
    for key, value in sorted(vars(args).items()):
        if isinstance(value, str) and value:
            guard_free_text(flag_for(key), value)
    for name in FREE_TEXT_VARIABLES:
        if value := environ.get(name, ""):
            guard_free_text(name, value)


def flag_for(key: str) -> str:
    return _FLAG_FOR.get(key, "--" + key.replace("_", "-"))


def check_command(args: argparse.Namespace, params: dict[str, Any]) -> RunbookConfig:
    """Configuration, environment, parameters, confirmation: all before anything starts."""
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.domain.parameters import check_parameters
    from rollback_helpers.domain.paths import path_spec

    given = {k: v for k, v in params.items() if k not in ("sandbox_dir", "archive_path")}
    check_parameters(args.path, given, name=flag_for, source="the command line")
    cfg = load_config()
    env = cfg.env(args.env)
    changes = path_spec(args.path).changes and not args.dry_run  # verify-flip only reads
    if env.is_protected and changes and args.confirm != env.name:
        raise ConfirmationRequired(
            f"A live {args.path} {args.command} against {env.name} needs an explicit confirmation.",
            f"Re-run with --confirm {env.name} (or --dry-run to only see the plan).")
    if changes and not getattr(args, "reason", "").strip():  # a drill's defaults to its scenario
        raise ConfigError(
            f"A live {args.path} {args.command} on {env.name} needs a reason: it goes into the "
            "deployment-record comment and the archived record.",
            'Re-run with --reason "<what is rolled back and why>" (a dry run may omit it). '
            "Nothing was contacted or changed.")
    return cfg


def incidents_dir(args: argparse.Namespace, cfg: RunbookConfig, *, drill: bool) -> str:
    """Where the archive goes (``…/drills`` for drills). A local folder is created and proven
    writable now; a bucket or a GitHub store (a URL) is checked when the run opens it."""
    from rollback_helpers.records.archive import incidents_location
    from rollback_helpers.run.archive import ensure_writable_dir

    location = incidents_location(cfg.incidents_dir, explicit=args.incidents_dir or "",
                                  drill=drill)
    if location.startswith("github:"):  # checked when the run opens it (it needs the world)
        return location
    if ":" in location.split("/", 1)[0]:  # scheme://…: a bucket, reachable and readable now
        from rollback_helpers.records.archive import writable_store

        writable_store(location, None)
        return location
    source = "--incidents-dir" if args.incidents_dir else "incidents_dir (runbook.toml or " \
        "ROLLBACK_INCIDENTS_DIR)"
    return str(ensure_writable_dir(Path(location), source=source))



# Options whose empty value would otherwise read as "not given" and fall back to a default (a
# live run on the resolved target, the configured store, the default scenario): empty is missing.
NOT_EMPTY = ("target_digest", "scenario", "backup_id", "incidents_dir", "source_cluster",
             "new_cluster_name", "new_cluster", "old_cluster", "sandbox_dir", "workspace")


def refuse_empty_options(args: argparse.Namespace) -> None:
    """An option given with an empty value (``--target-digest ""``) is bad input, never its
    default: a script whose variable came out empty must not start a run on the default."""
    for key in NOT_EMPTY:
        value = getattr(args, key, None)
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{flag_for(key)} is given but empty.",
                              f"Give {flag_for(key)} a value, or leave the flag out for its "
                              "default (nothing was started).")


def check_sandbox(args: argparse.Namespace) -> None:
    """A drill's scenario read and checked, and its ``--sandbox-dir`` usable as a folder, before
    any world is built: a bad one is exit 2 naming it, not a traceback half-way through."""
    from rollback_helpers.run.backends import check_scenario

    check_scenario(args.scenario)
    if not args.sandbox_dir:
        return
    folder = Path(args.sandbox_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--sandbox-dir {shown_path(folder)} is a file, not a folder.",
                          "Name a folder for the sandbox world (it is created if missing), or "
                          "leave the flag out for a temporary one.")
    if not folder.exists():
        _probe_folder(folder)
    elif not os.access(folder, os.W_OK):
        raise ConfigError(f"--sandbox-dir {shown_path(folder)} is not writable.",
                          "Name a folder this user can write, or leave the flag out.")


def shown_path(path: Path) -> str:
    text = redact(str(path))
    return text if len(text) <= 200 else text[:197] + "..."


def _probe_folder(folder: Path) -> None:
    """``folder`` can be created (tried, then removed again: a bad input leaves nothing)."""
    made = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(f"--sandbox-dir {shown_path(folder)} cannot be created: "
                          f"{exc.strerror or type(exc).__name__}.",
                          "Name a folder this user can create and write, or leave the flag out "
                          "for a temporary one.") from None
    for created in made:  # deepest first
        created.rmdir()


def write_output(output: str | Path, text: str, *,
                 next_step: str = "Give -o a file you can write.") -> Path:
    """Write ``text`` to the ``-o`` file (its folder made); an unwritable one is bad input."""
    out = Path(output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot write {out}: {exc.strerror or exc}.", next_step) from None
    return out
