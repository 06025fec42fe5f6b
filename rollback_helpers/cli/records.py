"""The incident records on the command line: where a run's record goes, and reading them.

    rollback-runbook history [--env E] [--since DATE] [--drills] [--format table|json|html]
    rollback-runbook verify-record <path-or-url>
    rollback-runbook publish-record <path-or-url>
    rollback-runbook render <path-or-url> [-o FILE]

Each takes ``--incidents-dir`` (default: the configured store) and, for records
made on the sandbox, ``--sandbox-dir`` (the drill's kept world, where its GitHub is).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rollback_helpers.cli.inputs import write_output
from rollback_helpers.errors import ConfigError
from rollback_helpers.records.archive import (
    ArchivedRecord,
    ensure_notebook,
    incidents_location,
    keep_or_explain,
    record_metadata,
    rescue_copy,
    writable_store,
)
from rollback_helpers.records.store import RecordStore, open_store, split_location
from rollback_helpers.run.backends import github_factory
from rollback_helpers.run.owner import working_copy

__all__ = ["COMMANDS", "ArchivedRecord", "add_parsers", "keep", "report_archive", "run_store", "working_copy"]
STORE_FAILED = 4  # the run went well but its record could not be stored: an outside failure


def _config() -> Any:
    from rollback_helpers.domain.config import load_config

    return load_config()


# -- a run's record ---------------------------------------------------------------------------
def run_store(location: str, sandbox_dir: str | None) -> RecordStore:
    """The run's store, checked writable before the run starts (ConfigError: exit 2)."""
    return writable_store(location, github_factory(_config(), sandbox_dir=sandbox_dir))


def keep(store: RecordStore, name: str, working: Path) -> tuple[ArchivedRecord | None, str]:
    return keep_or_explain(store, name, working, rescue_copy)


def report_archive(stored: ArchivedRecord | None, problem: str, exit_code: int) -> int:
    """Print where the record went (or why it did not); the exit code to use."""
    if stored is None:
        print(problem, file=sys.stderr)
        return exit_code or STORE_FAILED
    print(f"Archived notebook: {stored.location}")
    print(f"SHA-256: {stored.sha256}")
    return exit_code


# -- reading records ----------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    history = sub.add_parser("history", help="list the archived runs, newest first")
    history.add_argument("--env", default="", help="only this environment")
    history.add_argument("--since", default="", help="only runs started on or after this "
                         "date (YYYY-MM-DD or an ISO time, UTC)")
    history.add_argument("--drills", action="store_true", help="include drills (drills/)")
    history.add_argument("--format", choices=("table", "json", "html"), default="table")
    history.add_argument("-o", "--output", default="",
                         help="html: write the page here (a file, or a folder for "
                         "history.html) and each record's rendering beside it")
    history.add_argument("--no-verify", action="store_true",
                         help="do not check each record's SHA-256 against its issue")
    verify = sub.add_parser("verify-record", help="check a record against the SHA-256 on its "
                            "deployment-record issue (exit 0: it matches)")
    verify.add_argument("record", help="the record's path or URL, as history lists it")
    publish = sub.add_parser("publish-record", help="publish a stored record's location and "
                             "SHA-256 on its run's record comment, when the run's final edit "
                             "could not reach GitHub")
    publish.add_argument("record", help="the record's path or URL, as the run named it")
    render = sub.add_parser("render", help="write a record as a self-contained HTML page")
    render.add_argument("record", help="the record's path or URL")
    render.add_argument("-o", "--output", default="", help="the HTML file, or a folder "
                        "for <record name>.html (default: the current folder)")
    for parser in (history, verify, publish, render):
        parser.add_argument("--incidents-dir", default=None,
                            help="the records store (default: the configured incidents_dir)")
        parser.add_argument("--sandbox-dir", default=None,
                            help="a kept drill world: its GitHub holds the drill's issue "
                                 "(and a github:// store)")


def _read(location: str, sandbox_dir: str | None) -> bytes:
    store, name = split_location(location, github=github_factory(_config(),
                                                                 sandbox_dir=sandbox_dir))
    data = store.read(name)
    ensure_notebook(location, data)
    return data


def _sandbox_needs_world(location: str, data: bytes, sandbox_dir: str | None) -> None:
    if record_metadata(data).get("backend", "real") == "sandbox" and not sandbox_dir:
        raise ConfigError(f"{location} was made on the sandbox: its issue is in the drill's "
                          "world, not on GitHub.",
                          "Pass --sandbox-dir <the drill's --sandbox-dir> (a drill run with "
                          "--sandbox-dir keeps its world).")


def _checker(sandbox_dir: str | None) -> Callable[[str, bytes], Any]:
    """verify(location, bytes): against the sandbox's GitHub for drills, else the real one."""
    from rollback_helpers.records.verify import CachedComments, verify_bytes

    cfg = _config()
    github = github_factory(cfg, sandbox_dir=sandbox_dir)
    comments = CachedComments(lambda: github(cfg.github_repo), cfg.github_repo)

    def verify(location: str, data: bytes) -> Any:
        _sandbox_needs_world(location, data, sandbox_dir)
        return verify_bytes(location, data, comments)

    return verify


def cmd_verify_record(args: argparse.Namespace) -> int:
    data = _read(args.record, args.sandbox_dir)
    verified = _checker(args.sandbox_dir)(args.record, data)
    print(f"OK: {args.record} is the record that was archived.")
    print(f"SHA-256 {verified.sha256} matches the one published on #{verified.issue} "
          f"({verified.comment_url}).")
    return 0


def cmd_publish_record(args: argparse.Namespace) -> int:
    from rollback_helpers.run.publish import publish_record

    data = _read(args.record, args.sandbox_dir)
    _sandbox_needs_world(args.record, data, args.sandbox_dir)
    cfg = _config()
    print(publish_record(github_factory(cfg, sandbox_dir=args.sandbox_dir)(cfg.github_repo),
                         args.record, data))
    return 0


def _since(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since {text!r} is not a date.",
                          "Use YYYY-MM-DD or an ISO time such as 2026-11-27T09:00:00Z.") from None


def _store(args: argparse.Namespace) -> RecordStore:
    location = incidents_location(_config().incidents_dir, explicit=args.incidents_dir)
    return open_store(location, github=github_factory(_config(), sandbox_dir=args.sandbox_dir))


def cmd_history(args: argparse.Namespace) -> int:
    from rollback_helpers.records import history as h

    if args.env:
        _config().env(args.env)  # an environment the runbook does not know: exit 2, naming it
    filters = h.Filters(env=args.env, since=_since(args.since), drills=args.drills)
    store = _store(args)
    verify = None if args.no_verify else h.verify_cell(_checker(args.sandbox_dir))
    frame = h.history_frame(h.history_rows(store, filters, verify))
    if args.format == "json":
        print(h.as_json(frame))
    elif args.format == "table":
        print(h.as_table(frame))
    else:
        page = h.as_html(frame, _rendering_name, f"Incident records in {store.location}")
        _write_html_history(args, store, frame["record"].tolist(), page)
    return 0


def _rendering_name(location: str) -> str:
    return location.rsplit("/", 1)[-1].removesuffix(".ipynb") + ".html"


def _write_html_history(args: argparse.Namespace, store: RecordStore, locations: list[str],
                        page: str) -> None:
    if not args.output:
        print(page)
        return
    from rollback_helpers.records.render import render_html

    out = _write(args.output, "history.html", page)
    for location in locations:
        _write(str(out.parent), _rendering_name(location),
               render_html(_read(location, args.sandbox_dir)))
    print(f"Wrote {out} and {len(locations)} rendering(s) beside it.")


def _write(output: str, name: str, text: str) -> Path:
    """Write ``text`` to ``output`` (into it, as ``name``, when it is a folder or empty)."""
    out = Path(output or name)
    if out.is_dir():
        out = out / name
    return write_output(out, text, next_step="Give -o a file or folder you can write.")


def cmd_render(args: argparse.Namespace) -> int:
    from rollback_helpers.records.render import render_html

    page = render_html(_read(args.record, args.sandbox_dir))
    out = _write(args.output, _rendering_name(args.record), page)
    print(f"Rendered {args.record} → {out}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "history": cmd_history, "verify-record": cmd_verify_record,
    "publish-record": cmd_publish_record, "render": cmd_render}
