"""A postmortem draft in Markdown, made only from an archived record.

Everything in the draft is read from the record: its metadata block (outcome,
parameters, decisions, facts, the run's timeline, each step's start and end) and
its outputs (the run comment's address). Times are copied to the second, names as
written; durations are differences of those times. What the record does not say
is left out, or written as "not in the record". Causes and actions are left empty
for the team. The text passes through :func:`~rollback_helpers.secrets.redact`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollback_helpers.records.notebook_io import runbook_metadata
from rollback_helpers.records.stats import parse_time, run_facts
from rollback_helpers.records.stats_report import duration
from rollback_helpers.secrets import redact

PATH_TITLES = {"path-a": "Path A — image rollback", "path-b": "Path B — database break-glass",
               "verify-flip": "Path B — verify the flip"}
DECISION_EVENT = re.compile(r"^decision: .*, by (?P<who>[^(),]+?)(?: at \S+)?\)$")
KNOWN_FACTS = ("from_image", "to_image", "workflow_run", "new_cluster")


@dataclass(frozen=True)
class Verification:
    """What ``verify-record`` said: verified, or why not (and the draft goes on anyway)."""

    verified: bool
    text: str


def _second(text: Any) -> str:
    when = parse_time(text)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else str(text or "")


def _between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "not in the record"
    return duration((end - start).total_seconds())


def _comment_url(data: bytes) -> str:
    import nbformat

    nb = nbformat.reads(data.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    urls = [str(b["record_comment"].get("url", "")) for b in runbook_metadata(nb)
            if isinstance(b.get("record_comment"), dict)]
    return next((u for u in reversed(urls) if u), "")


def draft(location: str, data: bytes, verification: Verification) -> str:
    """The Markdown draft for the record ``data`` read from ``location``."""
    block: dict[str, Any] = json.loads(data.decode("utf-8")).get("metadata", {}).get(
        "rollback_runbook", {})
    params = _mapping(block.get("parameters"))
    facts = _mapping(block.get("facts"))
    timeline = [e for e in block.get("timeline", []) if isinstance(e, dict)]
    run = run_facts(location, block, drill=block.get("backend") == "sandbox")
    bad_deploy = _bad_deploy(timeline)
    lines = [f"# Postmortem draft: {PATH_TITLES.get(run.path, run.path)} on {run.env}", "",
             f"Drafted by `rollback-runbook postmortem` from the record `{location}`.",
             f"**Record {'verified' if verification.verified else 'NOT VERIFIED'}:** "
             f"{verification.text}", ""]
    lines += _summary(block, params, facts, run.record_issue)
    lines += _impact(bad_deploy, run.moments.get("recovered"), run.started, run.path)
    lines += _timeline(timeline, bad_deploy)
    lines += _decisions(block.get("decisions", []), timeline)
    lines += _steps(block.get("steps", []), block.get("backend") == "sandbox")
    lines += _did(block, run.path)
    lines += _durations(bad_deploy[1] if bad_deploy else None, run.started, run.moments,
                        run.waits, block.get("seconds"))
    lines += _evidence(facts)
    lines += _links(location, facts, _comment_url(data))
    lines += ["## Causes", "", "_To be written by the team._", "",
              "## Actions", "", "_To be written by the team._", ""]
    return redact("\n".join(lines))


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _bad_deploy(timeline: list[dict[str, Any]]) -> tuple[str, datetime] | None:
    for event in timeline:
        text = str(event.get("event", ""))
        if text.startswith("bad deploy: ") and " deployed " in text:
            when = parse_time(text.rsplit(" deployed ", 1)[1].strip())
            if when is not None:
                return text.removeprefix("bad deploy: ").split(",")[0], when
    return None


def _summary(block: dict[str, Any], params: dict[str, Any], facts: dict[str, Any],
             issue: int | None) -> list[str]:
    rows = [("environment", block.get("env")), ("path", block.get("path")),
            ("outcome", f"{block.get('outcome')} (exit {block.get('exit_code')})"),
            ("mode", f"{'dry run' if block.get('dry_run', True) else 'live'}, "
                     f"{block.get('mode', 'headless')}, backend {block.get('backend', '?')}"),
            ("incident", params.get("incident")), ("reason", params.get("reason")),
            ("operator", params.get("operator")), ("run id", block.get("run_id")),
            ("deployment record", f"#{issue}" if issue else None),
            ("started", _second(block.get("started_at"))),
            ("finished", _second(block.get("finished_at")))]
    if facts.get("from_image") or facts.get("to_image"):
        rows.append(("image", f"{facts.get('from_image', '?')} → {facts.get('to_image', '?')}"))
    if facts.get("new_cluster"):
        rows.append(("restored into", facts["new_cluster"]))
    if block.get("failed_step"):
        rows.append(("failed at", f"{block['failed_step']}: {block.get('error', '')}"))
    return ["## Summary", ""] + [f"- **{k}:** {v}" for k, v in rows if v not in (None, "")] + [""]


def _impact(bad: tuple[str, datetime] | None, recovered: datetime | None,
            started: datetime | None, path: str) -> list[str]:
    lines = ["## Impact window", ""]
    if bad is None:
        lines.append("- **from:** not in the record (it names no bad deploy's time)")
    else:
        lines.append(f"- **from:** {_second(bad[1].isoformat())} (the bad deploy, {bad[0]})")
    if recovered is None:
        what = "the flip is verified by verify-flip's record" if path == "path-b" else \
            "this run did not verify a recovery"
        lines.append(f"- **to:** not in the record ({what})")
    else:
        lines.append(f"- **to:** {_second(recovered.isoformat())} (recovered: verified)")
        lines.append(f"- **length:** {_between(bad[1] if bad else started, recovered)}"
                     + ("" if bad else " (from the rollback's start)"))
    return lines + [""]


def _timeline(timeline: list[dict[str, Any]], bad: tuple[str, datetime] | None) -> list[str]:
    lines = ["## Timeline (UTC, the run's clock)", "", "| time | event |", "| --- | --- |"]
    if bad is not None:
        lines.append(f"| {_second(bad[1].isoformat())} | bad deploy ({bad[0]}) |")
    for event in timeline:
        text = str(event.get("event", "")).replace("|", "\\|")
        lines.append(f"| {_second(event.get('at'))} | {text} |")
    if not timeline:
        lines.append("| — | the record keeps no timeline (made before the runbook kept one) |")
    return lines + [""]


def _decided_in(timeline: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(time, who) of each ``decision: … (how, by who)`` line of the timeline."""
    found = []
    for event in timeline:
        match = DECISION_EVENT.match(str(event.get("event", "")))
        if match:
            found.append((_second(event.get("at")), match["who"]))
    return found


def _decisions(decisions: Any, timeline: list[dict[str, Any]]) -> list[str]:
    rows = [d for d in decisions if isinstance(d, dict)] if isinstance(decisions, list) else []
    lines = ["## Decisions and approvals", ""]
    if not rows:
        logged = _decided_in(timeline)
        if logged:
            return lines + ["The record's decision list is empty; its timeline logs "
                            + ", ".join(f"{who} at {at}" for at, who in logged)
                            + " (above).", ""]
        return lines + ["None recorded.", ""]
    lines += ["| time | step | who | what | how |", "| --- | --- | --- | --- | --- |"]
    for d in rows:
        cells = [_second(d.get("at")), d.get("step", ""), d.get("who", ""), d.get("what", ""),
                 d.get("how", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return lines + [""]


def _steps(steps: Any, sandbox: bool) -> list[str]:
    rows = [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []
    lines = ["## Steps", ""]
    if not rows:
        return lines + ["The record keeps no step times.", ""]
    if sandbox:
        lines += ["Step times are the machine's clock; a drill's timeline is its sandbox's "
                  "virtual clock, so the two differ.", ""]
    lines += ["| step | started | ended | took |", "| --- | --- | --- | --- |"]
    for s in rows:
        took = _between(parse_time(s.get("started_at")), parse_time(s.get("ended_at")))
        lines.append(f"| {s.get('step', '')} | {_second(s.get('started_at'))} | "
                     f"{_second(s.get('ended_at'))} | {took} |")
    return lines + [""]


def _did(block: dict[str, Any], path: str) -> list[str]:
    lines = ["## What the runbook did, and what was left to people", ""]
    outcome = block.get("outcome")
    ran = [s.get("step") for s in block.get("steps", []) if isinstance(s, dict)]
    lines.append(f"- **the runbook ran:** {', '.join(map(str, ran)) or 'not in the record'}")
    timeline = [e for e in block.get("timeline", []) if isinstance(e, dict)]
    people = sorted({str(d.get("who")) for d in block.get("decisions", [])
                     if isinstance(d, dict) and d.get("who")} | {
        who for _, who in _decided_in(timeline)})
    lines.append(f"- **people decided:** {', '.join(people) or 'nobody (recorded)'}")
    if path == "path-b":
        lines.append("- **left to people:** the flip (secrets, cluster map, redeploy), by the "
                     "checklist in the record; verify-flip checks it afterwards")
    if outcome != "success":
        lines.append(f"- **left to people:** the run ended `{outcome}` at "
                     f"{block.get('failed_step') or block.get('last_step') or 'a step not named'}")
    return lines + [""]


def _durations(deployed: datetime | None, started: datetime | None,
               moments: dict[str, datetime], waits: dict[str, float], seconds: Any) -> list[str]:
    rows = [("bad deploy → rollback started", _between(deployed, started)),
            ("started → dispatched", _between(started, moments.get("dispatched"))),
            ("dispatched → on target", _between(moments.get("dispatched"),
                                                moments.get("on_target"))),
            ("bad deploy → recovered", _between(deployed, moments.get("recovered")))]
    rows += [(f"waiting on {name}", duration(value)) for name, value in sorted(waits.items())]
    if isinstance(seconds, int | float):
        rows.append(("the run, start to end", duration(float(seconds))))
    return ["## Durations", ""] + [f"- **{k}:** {v}" for k, v in rows] + [""]


def _evidence(facts: dict[str, Any]) -> list[str]:
    extra = {k: v for k, v in facts.items() if k not in KNOWN_FACTS}
    lines = ["## Evidence", ""]
    if not extra:
        return lines + ["The record holds no metrics evidence.", ""]
    return lines + [f"- **{k}:** {v}" for k, v in sorted(extra.items())] + [""]


def _links(location: str, facts: dict[str, Any], comment: str) -> list[str]:
    rows = [("record", location), ("workflow run", facts.get("workflow_run")),
            ("run comment", comment)]
    return ["## Links", ""] + [f"- **{k}:** {v}" for k, v in rows if v] + [""]
