"""``rollback-runbook check``: a read-only preflight of everything an incident will need.

    rollback-runbook check                              the sandbox's default world
    rollback-runbook check --backend real               the real GitHub and Fly.io
    rollback-runbook check --env staging --scenario check-no-backup

It prints one row per check and environment (✔, ✘ with its next step, or – when
a check it depends on failed) and exits 0 only when every row is ✔; otherwise 3
(see docs/exit-codes.md). It changes nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_helpers.errors import ConfigError, PreconditionFailed

if TYPE_CHECKING:
    from rollback_helpers.run.backends import Backends

NAME = "check"
EXIT_NOT_READY = PreconditionFailed.exit_code
DEFAULT_SCENARIO = "default"


def add_parser(sub: Any) -> None:
    check = sub.add_parser(NAME, help="read-only preflight: is everything an incident needs there?")
    check.add_argument("--env", action="append", dest="envs", metavar="ENV",
                       help="check this environment (repeatable; default: every configured one)")
    check.add_argument("--backend", choices=("sandbox", "real"), default="sandbox",
                       help="sandbox: a drill world (default); real: GitHub and flyctl")
    check.add_argument("--scenario",
                       help=f"sandbox scenario name or .toml path (default: {DEFAULT_SCENARIO})")
    check.add_argument("--sandbox-dir", help="sandbox: keep the world here (default: a temp dir)")


def run(args: argparse.Namespace) -> int:
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.runbook.preflight import Preflight

    if args.backend == "real" and (args.scenario or args.sandbox_dir):
        raise ConfigError("--scenario and --sandbox-dir choose a sandbox world; --backend real "
                          "checks the real GitHub and Fly.io.", "Drop one of them.")
    args.scenario = args.scenario or DEFAULT_SCENARIO
    cfg = load_config()
    envs = args.envs or list(cfg.environments)
    for name in envs:
        cfg.env(name)  # bad input before anything is contacted
    with _backends(args, cfg.github_repo) as (backends, where):
        result = Preflight(cfg, backends).run(envs)
    print(f"Preflight of {cfg.github_repo} ({', '.join(envs)}) on {where}\n")
    print(result.table())
    print()
    print(result.summary())
    return 0 if result.passed else EXIT_NOT_READY


@contextmanager
def _backends(args: argparse.Namespace, repo: str) -> Iterator[tuple[Backends, str]]:
    """The seams to check through; a sandbox world is built first and stopped after."""
    from rollback_helpers.run.backends import (
        create_drill_world,
        discard_drill_world,
        leave_drill_world,
        open_backends,
    )

    if args.backend == "real":
        backends = open_backends("real")
        try:
            yield backends, "the real GitHub and Fly.io"
        finally:
            backends.close()
        return
    sandbox_dir = Path(args.sandbox_dir or tempfile.mkdtemp(prefix="rollback-check-"))
    try:
        # a world already in --sandbox-dir is acted in, never rebuilt under its other users
        world = create_drill_world(args.scenario, sandbox_dir, speed=0,
                                   reuse=bool(args.sandbox_dir))
        if world.repo != repo:
            raise ConfigError(
                f"The configuration names {repo}, but the sandbox world holds {world.repo}.",
                "Check your own repository with --backend real; run sandbox checks where no "
                "runbook.toml applies (or point ROLLBACK_RUNBOOK_CONFIG at one for the sandbox).")
        backends = open_backends("sandbox", sandbox_dir=str(sandbox_dir))
        try:
            yield backends, f"sandbox scenario {world.scenario!r} — {world.description}"
        finally:
            backends.close()
    finally:
        if args.sandbox_dir:  # shared: stop only what no other process uses
            leave_drill_world(sandbox_dir)
        else:
            discard_drill_world(sandbox_dir)  # its servers' data too, wherever it lives
            shutil.rmtree(sandbox_dir, ignore_errors=True)
