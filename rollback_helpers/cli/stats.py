"""`rollback-runbook stats`: change-failure rate and recovery time, per environment and period.

    rollback-runbook stats [--env E ...] [--since DATE] [--until DATE]
                           [--format table|json|html|openmetrics] [-o FILE]

Reads the deployment-record issues of each environment and the records store
(``--incidents-dir``, default the configured one, with its ``drills/``), and changes
nothing. The figures and how each is counted: ``docs/stats.md``.
"""

from __future__ import annotations

import argparse
import shutil
from datetime import UTC, datetime
from typing import Any

from rollback_helpers.cli.inputs import write_output
from rollback_helpers.errors import ConfigError

NAME = "stats"
FORMATS = ("table", "json", "html", "openmetrics")


def add_parser(sub: Any) -> None:
    stats = sub.add_parser(NAME, help="deploys, rollbacks, change-failure rate and recovery "
                           "time per environment, from the records (reads only)")
    stats.add_argument("--env", action="append", default=[],
                       help="only this environment (repeat for several; default: all configured)")
    stats.add_argument("--since", default="", help="from this date or ISO time, UTC (inclusive)")
    stats.add_argument("--until", default="", help="to this date or ISO time, UTC (exclusive)")
    stats.add_argument("--format", choices=FORMATS, default="table")
    stats.add_argument("-o", "--output", default="", help="write to this file instead of stdout")
    stats.add_argument("--incidents-dir", default=None,
                       help="the records store (default: the configured incidents_dir)")
    stats.add_argument("--sandbox-dir", default=None,
                       help="a kept drill world: its GitHub holds the deployment records")


def moment(flag: str, text: str) -> datetime | None:
    """``--since``/``--until`` as an aware UTC time (a date is its midnight, UTC)."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a date.",
                          "Use YYYY-MM-DD or an ISO time such as 2026-11-27T09:00:00Z.") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.domain.deployments import record_from_issue
    from rollback_helpers.records import stats, stats_report
    from rollback_helpers.records.archive import incidents_location
    from rollback_helpers.records.store import open_store
    from rollback_helpers.run.backends import github_factory

    period = stats.Period(moment("--since", args.since), moment("--until", args.until))
    cfg = load_config()
    envs = list(dict.fromkeys(args.env)) or sorted(cfg.environments)
    env_configs = [cfg.env(name) for name in envs]  # an unknown name: exit 2, naming it
    factory = github_factory(cfg, sandbox_dir=args.sandbox_dir)
    github = factory(cfg.github_repo)
    deploys = [d for env in env_configs for d in stats.deploys_of(
        record_from_issue(issue, env=env.name, rolled_back_label=cfg.rolled_back_label)
        for issue in github.issues.iter_issues(env.record_labels))]
    store = open_store(incidents_location(cfg.incidents_dir, explicit=args.incidents_dir),
                       github=factory)
    figures = stats.compute(deploys, stats.read_runs(store), envs=envs, period=period)
    if args.format == "json":
        text = stats_report.as_json(figures)
    elif args.format == "openmetrics":
        text = stats_report.as_openmetrics(figures)
    elif args.format == "html":
        text = stats_report.as_html(figures, f"Rollback stats: {', '.join(envs)}")
    else:
        text = stats_report.as_table(figures, shutil.get_terminal_size((100, 24)).columns)
    _emit(args.output, text)
    return 0


def _emit(output: str, text: str) -> None:
    if not output:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    print(f"Wrote {write_output(output, text)}")
