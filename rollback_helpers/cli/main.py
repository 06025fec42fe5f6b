"""``rollback-runbook``: run the runbook's notebooks headless, or drill them on the sandbox.

    rollback-runbook drill path-a --env staging            a game day on the embedded sandbox
    rollback-runbook run path-a --env staging              a real incident (dry run unless --live)
    rollback-runbook lab                                   the walkthrough in JupyterLab (sandbox)
    rollback-runbook init                                  a commented runbook.toml for your repository
    rollback-runbook check --backend real                  read-only preflight before the incident
    rollback-runbook scenarios | exit-codes                reference
    rollback-runbook history | verify-record | render      the archived incident records
    rollback-runbook recover [--dry-run]                   archive the records of killed runs
    rollback-runbook stats [--format json|html|openmetrics]  change-failure rate, recovery time
    rollback-runbook postmortem RECORD                     a postmortem draft from a verified record
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollback_helpers import version
from rollback_helpers.cli import check as check_command
from rollback_helpers.cli import init_config as init_command
from rollback_helpers.cli import inputs, records, run_end
from rollback_helpers.cli import postmortem as postmortem_command
from rollback_helpers.cli import recover as recover_command
from rollback_helpers.cli import stats as stats_command
from rollback_helpers.domain.paths import PATHS
from rollback_helpers.errors import EXIT_CODES, RollbackError
from rollback_helpers.hints import use_interface
from rollback_helpers.run import prestart
from rollback_helpers.run.interrupt import StopSignals

# The heavy modules (papermill, the sandbox) load inside the commands, where Ctrl-C is handled.
ADOPTION = (init_command, check_command, recover_command, stats_command, postmortem_command)
# (each: its own module, with add_parser and run)
DEFAULT_DRILL_SPEED = 20.0
# Flags that set one path's parameters: passed when given, so another path's model refuses them.
OPTIONS = ("target_digest", "allow_unrecorded_target", "watch_in_flight",
           "override_unhealthy_target", "backup_id",
           "source_cluster", "new_cluster_name", "ready_timeout", "record_number", "new_cluster",
           "old_cluster", "path_a_tried", "pitr_time")


class Parser(argparse.ArgumentParser):
    """A bad flag is a bad input: exit 2, one line naming it and where the flags are listed.

    argparse quotes the value it refused (``--speed``, an unknown ``--password=…``, a
    path holding a URL): the message is redacted, so a credential typed there is not
    echoed to the terminal or a CI log.
    """

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {inputs.masked_message(message)}\nNext: fix that flag; "
                     f"`{self.prog} --help` lists them all.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rollback-runbook", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"rollback-runbook {version.describe()}")
    sub = parser.add_subparsers(dest="command", required=True)
    drill = sub.add_parser("drill", help="run a runbook path on the embedded sandbox")
    _common(drill)
    drill.add_argument("--scenario", help="sandbox scenario name or .toml path (default: "
                       + ", ".join(f"{p}: {s.default_scenario}" for p, s in PATHS.items()) + ")")
    drill.add_argument("--dry-run", action="store_true", help="stop after the plan")
    drill.add_argument("--confirm", default="",
                       help="for a drill that is not a dry run on production: the word 'production'")
    drill.add_argument("--speed", type=inputs.seconds, default=DEFAULT_DRILL_SPEED,
                       help="virtual seconds per real second on waits (0 = instant)")
    drill.add_argument("--latency", type=inputs.latency, default={}, metavar="SEAM=S,…",
                       help="seconds per call of the sandbox's seams, e.g. github=0.25,flyctl=1.5 "
                            "(seams: github, flyctl, health, metrics; virtual time)")
    drill.add_argument("--sandbox-dir", help="keep the sandbox world here (default: a temp dir)")
    drill.add_argument("--keep-sandbox", action="store_true", help="do not delete the sandbox world")
    drill.add_argument("--teammate-approves", action="store_true",
                       help="a sandbox teammate approves the plan (the second person production "
                            "needs), so a production drill runs end to end")
    run = sub.add_parser("run", help="run a runbook path against the real Fly.io and GitHub")
    _common(run)
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--live", dest="dry_run", action="store_false",
                      help="make the changes (default: a dry run that only shows the plan)")
    mode.add_argument("--dry-run", dest="dry_run", action="store_true", default=True)
    run.add_argument("--confirm", default="", help="for a live production run: the word 'production'")
    sub.add_parser("scenarios", help="list the sandbox scenarios")
    sub.add_parser("exit-codes", help="what each exit code means")
    _lab_parser(sub)
    for command in ADOPTION:
        command.add_parser(sub)
    records.add_parsers(sub)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", choices=PATHS, help="which runbook notebook")
    p.add_argument("--env", required=True, help="development | staging | production")
    p.add_argument("--reason", default="", help="why (goes into the deployment-record comment)")
    p.add_argument("--incident", default="", help="incident id or link")
    p.add_argument("--operator", default="", help="who runs it (default: login name)")
    p.add_argument("--incidents-dir", help="archive directory (default: incidents/)")
    p.add_argument("--target-digest", help="path-a: roll back to this digest instead of resolving")
    p.add_argument("--allow-unrecorded-target", action="store_true",
                   help="path-a: accept a --target-digest that no record names")
    p.add_argument("--backup-id", help="path-b: restore this backup (default: from the record)")
    p.add_argument("--source-cluster", help="path-b: source cluster (default: the cluster map)")
    p.add_argument("--new-cluster-name", help="path-b: name for the restored cluster")
    p.add_argument("--pitr-time", nargs="?", const="default", metavar="RFC3339",
                   help="path-b: restore to a moment (v2 clusters; alone: just before the bad "
                        "deploy) instead of the backup")
    p.add_argument("--path-a-tried", metavar="WHY",
                   help="path-b: why Path A is not enough (required for a live run; recorded)")
    p.add_argument("--ready-timeout", type=inputs.positive_seconds,
                   help="path-b: seconds to wait for readiness")
    p.add_argument("--record-number", type=inputs.positive_int,
                   help="path-b: the bad deploy's record (default: the newest)")
    p.add_argument("--new-cluster", help="verify-flip: the restored cluster (default: the map's)")
    p.add_argument("--old-cluster", help="verify-flip: the replaced cluster (default: the record's)")
    p.add_argument("--break-lock", default="", metavar="WHY",
                   help="take over the environment's lock from a run whose lease expired "
                        "(recorded with WHY)")
    p.add_argument("--watch-in-flight", action="store_true",
                   help="path-a: watch a promote run already in flight instead of stopping")
    p.add_argument("--override-unhealthy-target", metavar="WHY",
                   help="path-a: roll back to a target the metrics call unhealthy (recorded with WHY)")
    p.add_argument("--quiet", action="store_true", help="do not stream cell output")


def parameters(args: argparse.Namespace, *, backend: str, archive_to: str | Path,
               sandbox_dir: str | None) -> dict[str, Any]:
    """Papermill parameters: choices and names only — never a token or password. A path's own
    options go in when given; another path's, given, is refused by the path's model."""
    params: dict[str, Any] = {"env": args.env, "backend": backend, "reason": args.reason,
                              "incident": args.incident, "operator": args.operator,
                              "archive_path": str(archive_to), "interactive": False,
                              "run_id": args.run_id}
    if PATHS[args.path].changes:  # a path that only reads has nothing to dry-run or lock
        params.update(dry_run=args.dry_run, confirm=getattr(args, "confirm", ""),
                      break_lock=args.break_lock)
    else:
        params.update({k: v for k in ("confirm", "break_lock") if (v := getattr(args, k, ""))})
    if sandbox_dir:
        params["sandbox_dir"] = sandbox_dir
    if getattr(args, "scenario", None):  # a drill: the record names the scenario drilled
        params["scenario"] = args.scenario
    params.update({k: v for k in OPTIONS if (v := getattr(args, k, None)) not in (None, False)})
    return params


def checked_incidents_dir(args: argparse.Namespace, *, backend: str, drill: bool) -> str:
    """Every input checked (flags, configuration, environment, confirmation) and, for a local
    folder, the archive's directory proven writable, before a world is built or a kernel starts.
    A bucket or a GitHub store is checked when it is opened, still before the run."""
    if not PATHS[args.path].changes:
        args.dry_run = False  # it only ever reads: there is nothing to dry-run
    from rollback_helpers.records.state_dir import state_dir
    from rollback_helpers.run.backends import check_real_prerequisites, check_scenario

    params = parameters(args, backend=backend, archive_to=Path("-"), sandbox_dir=None)
    cfg = inputs.check_command(args, params)
    # the inputs make sense: the kernel starts now, alongside the rest (main() discards it
    # if the run never launches it)
    prestart.start(*PATHS[args.path].steps)
    if drill:
        check_scenario(args.scenario)
    if backend == "real":  # a missing token or flyctl stops the run before its record exists
        check_real_prerequisites(cfg)
    state_dir()  # where a killed run's working copy waits for `recover`: usable, or exit 2
    return inputs.incidents_dir(args, cfg, drill=drill)


def cmd_drill(args: argparse.Namespace) -> int:
    with args.stop:
        return _drill(args)


def _drill(args: argparse.Namespace) -> int:
    from rollback_helpers.run.backends import (
        create_drill_world,
        discard_drill_world,
        leave_drill_world,
        sweep_abandoned_worlds,
    )

    args.scenario = args.scenario or PATHS[args.path].default_scenario
    incident = args.incident  # else the drill's, named on its world's clock once it exists
    args.incident = incident or f"DRILL-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    reason = args.reason
    args.reason = reason or f"drill: scenario {args.scenario}"
    inputs.check_sandbox(args)  # the scenario read and the world's folder usable: nothing built
    directory = checked_incidents_dir(args, backend="sandbox", drill=True)
    recover_command.recover_before_run(args.run_id)  # needs a killed drill's world: first
    for line in sweep_abandoned_worlds(spare=recover_command.worlds_of_working_copies()):
        print(line)
    sandbox_dir = Path(args.sandbox_dir or tempfile.mkdtemp(prefix="rollback-drill-"))
    saved_token = os.environ.get("GITHUB_TOKEN")
    try:
        world = create_drill_world(args.scenario, sandbox_dir, speed=args.speed,
                                   reuse=bool(args.sandbox_dir), latency=args.latency,
                                   teammate=args.teammate_approves)
        args.scenario = world.scenario  # a reused world's own: the record names what was drilled
        args.incident = incident or f"DRILL-{world.now():%Y%m%d-%H%M%S}"
        args.reason = reason or f"drill: scenario {world.scenario}"
        print(world.header(args.path, args.env))
        if world.reused:
            print(f"Acting in the existing sandbox world in {sandbox_dir} (not rebuilt).")
        os.environ["GITHUB_TOKEN"] = world.token  # the kernel reads it, as in an incident
        return _execute(args, directory, backend="sandbox", sandbox_dir=str(sandbox_dir),
                        drill=True)
    finally:
        with args.stop.held():  # no server, tunnel or temp world outlives the drill
            if saved_token is None:
                os.environ.pop("GITHUB_TOKEN", None)
            else:
                os.environ["GITHUB_TOKEN"] = saved_token
            if args.sandbox_dir:  # shared: stop only what no other process uses
                if line := leave_drill_world(sandbox_dir):
                    print(line)
            else:  # this drill's own world: nobody else acts in it
                discard_drill_world(sandbox_dir, keep_files=bool(args.keep_sandbox))
                if not args.keep_sandbox:
                    shutil.rmtree(sandbox_dir, ignore_errors=True)


def cmd_run(args: argparse.Namespace) -> int:
    with args.stop:
        directory = checked_incidents_dir(args, backend="real", drill=False)
        recover_command.recover_before_run(args.run_id)
        return _execute(args, directory, backend="real", sandbox_dir=None, drill=False)


def _execute(args: argparse.Namespace, location: str, *, backend: str,
             sandbox_dir: str | None, drill: bool) -> int:
    from rollback_helpers.run import archive
    from rollback_helpers.run.backends import record_clock
    from rollback_helpers.run.closing import finish_run

    if not PATHS[args.path].changes:
        args.dry_run = False  # it only ever reads: there is nothing to dry-run
    store = records.run_store(location, sandbox_dir)  # exit 2 if it cannot be written
    clock = record_clock(sandbox_dir)  # a drill's record: its world's time throughout
    began = datetime.fromtimestamp(clock.now(), UTC)
    name = archive.archive_name(args.env, args.path, dry_run=args.dry_run, now=began)
    if not args.quiet:
        archive.quiet_papermill_logs()
    target = store.location_of(name)
    owner = recover_command.owner(args, store, name, backend=backend, sandbox_dir=sandbox_dir, started=began)
    with records.working_copy(name, owner) as working:
        outcome = archive.execute(args.path, working, parameters(
            args, backend=backend, archive_to=target, sandbox_dir=sandbox_dir),
            log_output=not args.quiet, stop=args.stop, location=target, clock=clock)
        print()
        handover = run_end.handover(args, outcome, working, drill=drill)
        with args.stop.held():
            # bad input stops before anything is contacted: nothing to finish, nobody to tell
            quiet = args.dry_run or outcome.exit_code == 2
            # told before storing: the deliveries are part of the record (write-once, hashed)
            told = [] if quiet else run_end.announce(args, outcome, working, target, drill=drill)
            stored, problem = records.keep(store, name, working)  # once, write-once
            kept = getattr(args, "keep_sandbox", False) or getattr(args, "sandbox_dir", None)
            closing = run_end.closing(args, outcome, working, stored,
                               sandbox_dir=sandbox_dir if sandbox_dir and kept else "")
            lines = [] if quiet else [*told, *finish_run(closing, backend=backend,
                                                         sandbox_dir=sandbox_dir)]
    run_end.report(args, outcome, closing)
    for line in [*lines, *handover]:  # Path B's result last: the new cluster and what next
        print(line)
    exit_code = records.report_archive(stored, problem, outcome.exit_code)
    print(f"Exit code {exit_code}: {EXIT_CODES.get(exit_code, '')}")
    return exit_code


def cmd_scenarios(_: argparse.Namespace) -> int:
    from rollback_helpers.run.backends import sandbox_scenarios

    for name, description in sandbox_scenarios().items():
        print(f"{name:28} {description}")
    return 0


def cmd_exit_codes(_: argparse.Namespace) -> int:
    for code, meaning in EXIT_CODES.items():
        print(f"{code}  {meaning}")
    return 0


def _lab_parser(sub: Any) -> None:
    lab = sub.add_parser("lab", help="walk through the runbook in JupyterLab (sandbox by default)")
    lab.add_argument("--backend", choices=("sandbox", "real"), default="sandbox",
                     help="sandbox: a drill world (default); real: GitHub + flyctl")
    lab.add_argument("--scenario", default="default", help="sandbox scenario name or .toml path")
    lab.add_argument("--speed", type=inputs.seconds, default=DEFAULT_DRILL_SPEED,
                     help="sandbox: virtual seconds per real second on waits (0 = instant)")
    lab.add_argument("--port", type=inputs.port, default=0, help="port on 127.0.0.1 (default: a free one)")
    lab.add_argument("--workspace",
                     help="folder for the notebook copies (default: incidents/lab/<ts>)")
    lab.add_argument("--no-browser", action="store_true", help="only print the URL")


def cmd_lab(args: argparse.Namespace) -> int:
    from rollback_helpers.cli.lab import run_lab

    return run_lab(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "drill": cmd_drill, "run": cmd_run, "scenarios": cmd_scenarios, "exit-codes": cmd_exit_codes,
    "lab": cmd_lab, **{c.NAME: c.run for c in ADOPTION}, **records.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        inputs.guard_free_text_inputs(args, os.environ)
        inputs.refuse_empty_options(args)
        args.argv = argv
        # advice names flags, not notebook parameters (a drill's: the sandbox's command)
        use_interface("drill" if args.command == "drill" else "run")
        args.run_id = secrets.token_hex(6)  # this run's lock, record comment and archive
        args.stop = StopSignals()  # drill and run: SIGINT/SIGTERM stop the run, cleanly
        return COMMANDS[args.command](args)
    except RollbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `history | head`: the reader had enough; no traceback, no noise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at the final flush
        return 0
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): the run stopped where it was; the sandbox, if any, is "
              "cleaned up. Re-run the same command to start again.", file=sys.stderr)
        return 130
    finally:
        prestart.discard()  # a kernel started early that no run launched
